"""The GitOps workflows in examples/gitops/ run: each job is executed step by step (tests/workflow_runner.py),
vexrun's composite action (action.yml) included, in a fresh virtual environment that installs vexrun the way
the workflow does (the action at its pinned ref, served from a snapshot of this checkout), with the secrets
replaced by test values, the backup at a local smart-HTTP git server with a token, and the recipe's embedder
at the loopback OpenAI-compatible fake. Afterwards the backup is restored on a fresh state directory, byte for
byte, and the signature verifies with the public key the team committed.

Departures from the files, each listed here and asserted to be all there is:
* ``actions/checkout`` (both spellings): the repository's ``examples/`` and the committed ``.vexrun/`` public
  key copied into the workspace;
* ``actions/setup-python`` and Forgejo's ``container: python:3.12-slim``: a fresh venv, first on PATH (and
  this test's own venv taken off PATH);
* Forgejo's "Install git and node (for checkout)" (apt-get in the container): git must be on PATH;
* job ``env:`` overrides: ``BACKUP_URL`` (the local server), ``VEXRUN_REPO`` (the snapshot, for the GitHub
  job's pinned fetch), and Forgejo's absolute ``/tmp/…`` state directories (into the test's tmp);
* added to the job env: ``OPENAI_BASE_URL`` (the fake; the recipe reads it for exactly this).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import ROOT, run_cli
from vexrun.testing.fake_api import openai_server
from vexrun.testing.git_servers import BareRepo, GitHttpServer, git
from workflow_runner import Runner, WorkflowError, snapshot_repo

GITOPS = ROOT / "examples" / "gitops"
WORKFLOWS = {"github-actions.yml": "x-access-token", "forgejo-actions.yml": "team-memory"}
OWNER = "team-memory"
TOKEN = "tok-CANARY-gitops-5e2a"
PASS = "pass-CANARY-gitops-77d1"
OPENAI_KEY = "sk-CANARY-gitops-0b9c"
EXPORT = "out/nightly/memories.vmig.jsonl"

pytestmark = pytest.mark.slow


def _pinned_ref() -> str:
    doc = yaml.safe_load((GITOPS / "github-actions.yml").read_text())
    ref = str(doc["jobs"]["backup"]["env"]["VEXRUN_REF"])
    forgejo = yaml.safe_load((GITOPS / "forgejo-actions.yml").read_text())
    uses = [s["uses"] for s in forgejo["jobs"]["backup"]["steps"] if "vexrun/vexrun@" in str(s.get("uses"))]
    assert uses == [f"https://codeberg.org/vexrun/vexrun@{ref}"], "both workflows pin the same ref"
    return ref


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> str:
    """vexrun's repository as it is in this checkout (tracked and new files, .gitignore honoured), committed
    and tagged with the ref the workflows pin: what the forge would serve at that ref."""
    return snapshot_repo(tmp_path_factory.mktemp("vexrun-snapshot"), ROOT, _pinned_ref())


def _person_sets_up(tmp: Path, url: str, username: str) -> tuple[str, str]:
    """What a person does once (examples/gitops/README.md): a CI signing key, and the backup itself.
    Returns the key's JSON (the VEXRUN_SIGNING_KEY secret) and its public key (committed)."""
    env = {"XDG_CONFIG_HOME": str(tmp / "person-cfg"), "VEXRUN_PASSPHRASE": PASS, "VEXRUN_GIT_TOKEN": TOKEN}
    res = run_cli("keys", "generate", "--no-passphrase", "--comment", "ci", env=env)
    assert res.code == 0, res.output
    (key,) = (tmp / "person-cfg" / "vexrun" / "keys").glob("*.key")
    res = run_cli("sync", "--state-dir", str(tmp / "person-sync"), "init", url, "--username", username, env=env)
    assert res.code == 0, res.output
    return key.read_text(), key.with_suffix(".pub").read_text()


def _fresh_python(runner: Runner) -> None:
    venv = runner.temp / "python"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    runner.path_prepend.append(str(venv / "bin"))


def _checkout(pub: str) -> Any:
    def do(runner: Runner, step: dict[str, Any]) -> None:
        shutil.copytree(ROOT / "examples", runner.workspace / "examples", ignore=shutil.ignore_patterns(".vexrun"))
        (runner.workspace / ".vexrun").mkdir()
        (runner.workspace / ".vexrun" / "ci-signer.pub").write_text(pub)

    return do


def _git_on_path(runner: Runner, step: dict[str, Any]) -> None:
    assert shutil.which("git", path=runner.env["PATH"]), "git is needed on the runner"


def _process_env() -> dict[str, str]:
    """The runner's own environment: this test's venv and anything pointing into it taken away, so the job
    finds only the vexrun it installs itself."""
    venv_bin = str(Path(sys.prefix) / "bin")
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin)
    drop = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "VEXRUN_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PATH"] = path
    return env


def run_workflow(name: str, tmp: Path, snapshot: str, workflow: Path | None = None) -> tuple[Runner, dict[str, Any]]:
    """Run the backup job of examples/gitops/NAME (or of ``workflow``, a changed copy) against local services.
    Returns the runner and what the test needs to check the result; raises WorkflowError if the job fails."""
    username = WORKFLOWS[name]
    workflow = workflow or GITOPS / name
    doc = yaml.safe_load(workflow.read_text())
    job = doc["jobs"]["backup"]
    (tmp / "srv").mkdir()
    BareRepo(tmp / "srv" / "memory-backup.git")
    with GitHttpServer(tmp / "srv", token=TOKEN, username=username) as srv, openai_server(api_keys=[OPENAI_KEY]) as api:
        url = srv.url_for("memory-backup.git")
        signing_key, pub = _person_sets_up(tmp, url, username)
        (tmp / "ws").mkdir()
        (tmp / "runner-temp").mkdir()
        overrides = {"BACKUP_URL": url}
        if "VEXRUN_REPO" in job["env"]:
            overrides["VEXRUN_REPO"] = snapshot
        for var, value in job["env"].items():  # Forgejo's container paths
            if str(value).startswith("/tmp/"):
                overrides[var] = str(tmp / "container-tmp" / Path(value).name)

        def remote_action(ref: str) -> Path:
            dest = tmp / "actions" / f"vexrun@{ref}"
            git("clone", "-q", "--depth", "1", "--branch", ref, snapshot, str(dest))
            return dest

        runner = Runner(
            workspace=tmp / "ws",
            temp=tmp / "runner-temp",
            env=_process_env(),
            secrets={
                "OPENAI_API_KEY": OPENAI_KEY,
                "VEXRUN_BACKUP_TOKEN": TOKEN,
                "VEXRUN_PASSPHRASE": PASS,
                "VEXRUN_SIGNING_KEY": signing_key,
            },
            github={"repository_owner": OWNER, "repository": f"{OWNER}/recipes", "run_id": "4242"},
            overrides=overrides,
            extra_env={"OPENAI_BASE_URL": api.url("/v1")},
            replacements={
                "actions/checkout": ("copy the repository into the workspace", _checkout(pub)),
                "https://code.forgejo.org/actions/checkout": ("copy the repository into the workspace", _checkout(pub)),
                "actions/setup-python": ("a fresh venv first on PATH", lambda r, s: _fresh_python(r)),
                "Install git and node (for checkout)": ("git must be on PATH (no apt-get here)", _git_on_path),
            },
            remote_actions={"https://codeberg.org/vexrun/vexrun": remote_action},
        )
        if "container" in job:  # the job's image brings its own Python: a fresh venv stands in for it
            _fresh_python(runner)
        try:
            runner.run_job(workflow, "backup")
        finally:
            (tmp / "job.log").write_text(runner.output())
        facts = {"url": url, "pub": pub, "embed_requests": api.stats.requests, "git_log": srv.log_path.read_text()}
        facts["restored"] = _restore(tmp, url, username)
    return runner, facts


def _restore(tmp: Path, url: str, username: str) -> Path:
    """A laptop: a fresh state directory, the URL, the token and the passphrase; pull the newest generation."""
    env = {"XDG_CONFIG_HOME": str(tmp / "laptop-cfg"), "VEXRUN_PASSPHRASE": PASS, "VEXRUN_GIT_TOKEN": TOKEN}
    state = str(tmp / "laptop-sync")
    res = run_cli("sync", "--state-dir", state, "init", "--restore", url, "--username", username, env=env)
    assert res.code == 0, res.output
    out = tmp / "laptop" / "memories.vmig.jsonl"
    out.parent.mkdir()
    res = run_cli("sync", "--state-dir", state, "pull", "--out", str(out), env=env)
    assert res.code == 0, res.output
    return out


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_the_workflow_runs_and_its_backup_restores(name: str, tmp_path: Path, snapshot: str) -> None:
    try:
        runner, facts = run_workflow(name, tmp_path, snapshot)
    except WorkflowError as exc:
        pytest.fail(f"{exc}\n(full log: {tmp_path / 'job.log'})")
    replaced = sorted(s.how for s in runner.log if s.how.startswith("replaced"))
    expected = {
        "github-actions.yml": [
            "replaced: a fresh venv first on PATH",
            "replaced: copy the repository into the workspace",
        ],
        "forgejo-actions.yml": [
            "replaced: copy the repository into the workspace",
            "replaced: git must be on PATH (no apt-get here)",
        ],
    }[name]
    assert replaced == expected
    ran = [s.name for s in runner.log if s.how == "run"]
    assert [n for n in ran if n.startswith(("Install vexrun", "Validate", "Plan", "Run the", "Sign", "Push"))] == [
        "Install vexrun at this action's ref",
        "Validate the recipe",
        "Plan (into the job summary)",
        "Run the recipe",
        "Sign the output",
        "Push the encrypted backup",
    ]
    log = runner.output()
    assert "pushed generation 2" in log and "valid:" in log, log
    assert facts["embed_requests"] > 0  # the recipe's embedder really went to the fake
    assert f"user={WORKFLOWS[name]}" in facts["git_log"]  # the user name the forge expects
    summary = runner.summary_file.read_text()
    assert "vexrun plan" in summary and "embed" in summary
    export = runner.workspace / EXPORT
    assert facts["restored"].read_bytes() == export.read_bytes()
    res = run_cli(
        "verify", str(facts["restored"]), "--sig", f"{export}.sig",
        "--pubkey", str(runner.workspace / ".vexrun" / "ci-signer.pub"), "--json",
    )  # fmt: skip
    assert res.code == 0, res.output
    assert json.loads(res.out)["statement"]["file"]["name"] == "memories.vmig.jsonl"
    for secret in (TOKEN, PASS, OPENAI_KEY):
        assert secret not in log and secret not in summary


def test_the_workflow_fails_without_the_extra_its_recipe_needs(tmp_path: Path, snapshot: str) -> None:
    """The nightly recipe embeds with OpenAI: install vexrun without the ``llm`` extra and the job must fail, at a
    vexrun step, with the reason as an annotation."""
    text = (GITOPS / "github-actions.yml").read_text()
    assert text.count("extras: sync,llm") == 1
    broken = tmp_path / "github-actions.yml"
    broken.write_text(text.replace("extras: sync,llm", "extras: sync"))
    (tmp_path / "job").mkdir()
    with pytest.raises(WorkflowError) as info:
        run_workflow("github-actions.yml", tmp_path / "job", snapshot, workflow=broken)
    message = str(info.value)
    assert "step 'Validate the recipe' failed" in message or "step 'Run the recipe' failed" in message, message
    assert "::error" in message and "llm" in message, message


def test_the_workflows_pin_vexrun_and_never_install_it_by_name() -> None:
    for name in WORKFLOWS:
        text = (GITOPS / name).read_text()
        assert "pip install" not in text, name  # the action installs itself, at its own ref
    action = (ROOT / "action.yml").read_text()
    assert '"$GITHUB_ACTION_PATH' in action or "$GITHUB_ACTION_PATH" in action
    assert "pip install" in action and "vexrun[" not in action
