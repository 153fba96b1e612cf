"""vexrun's pre-commit hook (.pre-commit-hooks.yaml) through the real ``pre-commit`` tool: a scratch repository
that uses the hook at a pinned ref of a snapshot of this checkout, one good recipe, one bad recipe, one bad
``.vmig.jsonl`` file. The hook must reject what is bad (naming file, line and column) and accept what is good,
on a machine where the secrets the recipes reference are not set (a developer's laptop, a fork's pull request).
Also: action.yml and the example workflows are valid against the published Actions schemas (the copies
check-jsonschema vendors; offline), and use only what both GitHub and Forgejo Actions run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from vexrun.testing.data import write_synthetic
from vexrun.testing.git_servers import git
from workflow_runner import snapshot_repo

GOOD = """# yaml-language-server: $schema=https://example.invalid/recipe.schema.json
version: 1
name: notes
source: {type: vmig, path: ../data/notes.vmig.jsonl}
embed:
  type: openai
  model: text-embedding-3-small
  api_key: ${OPENAI_API_KEY}
target: {type: sqlite, path: ../out/notes.db}
"""
BAD = """version: 1
name: broken
source: {type: vmig, paht: notes.vmig.jsonl}
target: {type: sqlite, path: out.db, batch: 3}
"""


def _precommit(repo: Path, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "OPENAI_", "PYTHONPATH"))}
    env.update(PRE_COMMIT_HOME=str(home), PRE_COMMIT_COLOR="never", NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", *args],
        cwd=repo, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


@pytest.mark.slow
def test_the_hook_rejects_the_bad_and_accepts_the_good(tmp_path: Path) -> None:
    url = snapshot_repo(tmp_path / "vexrun", ROOT, "v-test")
    repo = tmp_path / "team"
    git("init", "-q", "-b", "main", str(repo))
    (repo / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {url}\n    rev: v-test\n    hooks:\n      - id: vexrun-validate\n"
    )
    (repo / "recipes").mkdir()
    (repo / "recipes" / "good.yaml").write_text(GOOD)
    (repo / "recipes" / "bad.yaml").write_text(BAD)
    (repo / "data").mkdir()
    write_synthetic(repo / "data" / "notes.vmig.jsonl", 20, dims=8)
    (repo / "data" / "broken.vmig.jsonl").write_text('{"id": "a", "text": "x"}\n{"id": "a"\n')
    (repo / "notes.txt.yaml").write_text("not: a recipe\n")  # not matched by the hook's files pattern
    git("add", "-A", cwd=repo)
    home = tmp_path / "pre-commit-home"

    good = _precommit(repo, "run", "--files", "recipes/good.yaml", "notes.txt.yaml", home=home)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "vexrun validate" in good.stdout and "Passed" in good.stdout

    bad = _precommit(repo, "run", "--files", "recipes/bad.yaml", home=home)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "Failed" in bad.stdout
    assert "recipes/bad.yaml:3:" in bad.stdout and "paht" in bad.stdout
    assert "recipes/bad.yaml:4:" in bad.stdout and "batch" in bad.stdout

    everything = _precommit(repo, "run", "--all-files", home=home)
    assert everything.returncode == 1
    assert "data/broken.vmig.jsonl:2" in everything.stdout, everything.stdout
    assert "recipes/good.yaml" not in everything.stdout.replace("recipes/good.yaml: valid", "")
    assert "notes.txt.yaml" not in everything.stdout

    # and as a git hook, on a commit
    assert _precommit(repo, "install", home=home).returncode == 0
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t"}
    env.update(GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    env.pop("VIRTUAL_ENV", None)
    commit = subprocess.run(["git", "commit", "-qm", "recipes"], cwd=repo, env=env, capture_output=True, text=True)
    assert commit.returncode != 0 and "recipes/bad.yaml:3:" in commit.stdout + commit.stderr


def test_the_hook_definition() -> None:
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "vexrun-validate" and hook["language"] == "python"
    assert hook["entry"].startswith("vexrun validate")
    pattern = re.compile(hook["files"])
    good = ("recipes/nightly.yaml", "team/recipes/x.yml", "ops/backup.vexrun.yaml", "x.vmig.jsonl", "a/b.vmig.jsonl.gz")
    for path in good:
        assert pattern.search(path), path
    for path in ("docker-compose.yaml", ".github/workflows/ci.yml", "notes.jsonl", "recipes/sub/x.txt"):
        assert not pattern.search(path), path


def _check_jsonschema(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *map(str, files)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_action_and_workflows_match_the_published_schemas() -> None:
    res = _check_jsonschema("vendor.github-actions", ROOT / "action.yml")
    assert res.returncode == 0, res.stdout + res.stderr
    res = _check_jsonschema("vendor.github-workflows", *sorted((ROOT / "examples" / "gitops").glob("*-actions.yml")))
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_schema_check_catches_a_broken_action(tmp_path: Path) -> None:
    broken = tmp_path / "action.yml"
    broken.write_text((ROOT / "action.yml").read_text().replace("using: composite", "using: compost"))
    assert _check_jsonschema("vendor.github-actions", broken).returncode == 1


def test_the_action_uses_only_what_forgejo_runs_too() -> None:
    """Forgejo / Gitea Actions (act) run composite actions with the same action.yml, but not every GitHub
    feature: every run step names its shell (bash), expressions stay inside ``env:`` (never spliced into a
    script, which would also be a script-injection hole), and the only contexts are inputs, github.action_path
    (as the GITHUB_ACTION_PATH variable), env and runner."""
    doc = yaml.safe_load((ROOT / "action.yml").read_text())
    assert doc["runs"]["using"] == "composite"
    assert set(doc) <= {"name", "description", "author", "branding", "inputs", "outputs", "runs"}
    for name, spec in doc["inputs"].items():
        assert set(spec) <= {"description", "required", "default"}, name
        assert isinstance(spec.get("default", ""), str), name
    for step in doc["runs"]["steps"]:
        assert set(step) <= {"name", "shell", "env", "run"}, step
        assert step["shell"] == "bash"
        assert "${{" not in step["run"], step["name"]
        for value in step.get("env", {}).values():
            assert str(value).startswith("${{ inputs."), value
