"""Recipes: the bad-recipe corpus (exact FILE:LINE:COL findings), interpolation, env files, schemas."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import DATA, ROOT, run_cli
from vexrun.errors import RecipeError
from vexrun.recipe.interpolate import interpolate, read_env_file
from vexrun.recipe.loader import load_recipe

BAD = DATA / "recipes" / "bad"
GOLDEN = DATA / "recipes" / "expected"
BAD_RECIPES = sorted(p.name for p in BAD.glob("*.yaml"))
# The environment every corpus recipe is checked under (nothing else leaks in from the test runner).
CORPUS_ENV = {"VEXRUN_TEST_INJECT": "out.vmig.jsonl\nrun:\n  state_dir: /etc", "VEXRUN_TEST_DIR": "/tmp"}


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VEXRUN_TEST")}
    return {**env, **CORPUS_ENV}


@pytest.mark.parametrize("name", BAD_RECIPES)
def test_bad_recipe_findings_match_golden(name: str, update_goldens: bool) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "vexrun", "validate", f"tests/data/recipes/bad/{name}"],
        cwd=ROOT,
        env=_clean_env(),
        capture_output=True,
        text=True,
    )
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.returncode == 1
    golden = GOLDEN / name.replace(".yaml", ".txt")
    if update_goldens:
        GOLDEN.mkdir(exist_ok=True)
        golden.write_text(proc.stdout)
    assert proc.stdout == golden.read_text()


@pytest.mark.parametrize("name", BAD_RECIPES)
@pytest.mark.parametrize("verb", ["run", "plan", "check", "status"])
def test_bad_recipes_never_traceback(name: str, verb: str) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "vexrun", verb, f"tests/data/recipes/bad/{name}"],
        cwd=ROOT,
        env=_clean_env(),
        capture_output=True,
        text=True,
    )
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert proc.returncode == 1, proc.stderr
    first = proc.stderr.splitlines()[0]
    assert first.startswith(f"tests/data/recipes/bad/{name}:") and "error[" in first


def test_json_findings(tmp_path: Path) -> None:
    res = run_cli("validate", "--format", "json", "tests/data/recipes/bad/unknown-keys.yaml")
    report = json.loads(res.out)
    assert report["valid"] is False
    assert report["findings"][0] == {
        "file": "tests/data/recipes/bad/unknown-keys.yaml",
        "line": 2,
        "column": 1,
        "severity": "error",
        "code": "unknown-field",
        "path": "sourc",
        "message": "unknown field (did you mean 'source'?)",
    }


def test_interpolation_grammar(tmp_path: Path) -> None:
    secret = tmp_path / "token.txt"
    secret.write_text("s3cr3t-from-file\n")
    data = {
        "a": "${A}",
        "b": "${UNSET:-fallback}",
        "c": "${EMPTY:-used when empty}",
        "d": "pre-${A}-post $$HOME and $ alone",
        "e": "${file:token.txt}",
        "f": ["${A}", {"g": "${A}"}],
        "n": 5,
        "${A}": "keys are not interpolated",
    }
    res = interpolate(data, {"A": "alpha", "EMPTY": ""}, tmp_path)
    assert res.problems == []
    out = res.data
    assert out["a"] == "alpha" and out["b"] == "fallback" and out["c"] == "used when empty"
    assert out["d"] == "pre-alpha-post $HOME and $ alone"
    assert out["e"] == "s3cr3t-from-file"
    assert out["f"] == ["alpha", {"g": "alpha"}] and out["n"] == 5
    assert out["${A}"] == "keys are not interpolated"
    assert [r.name for r in res.refs[("e",)]] == ["token.txt"]

    bad = interpolate(
        {"x": "${MISSING}", "y": "${MISSING:?tell the user}", "z": "${NL}", "w": "${EMPTY:?must not be empty}"},
        {"NL": "a\nb", "EMPTY": ""},
        tmp_path,
    )
    assert sorted((p, c, m) for p, c, m in bad.problems) == [
        (("w",), "missing-env", "must not be empty"),
        (("x",), "missing-env", "MISSING is not set"),
        (("y",), "missing-env", "tell the user"),
        (("z",), "newline-in-value", "the value of NL contains a newline; refused"),
    ]


def test_env_file_is_explicit(tmp_path: Path) -> None:
    (tmp_path / "in.vmig.jsonl").write_text('{"id": "a", "text": "t", "vex_version": "1.0.0"}\n')
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "version: 1\nsource: {type: vmig, path: in.vmig.jsonl}\ntarget: {type: vmig, path: '${OUT_NAME}'}\n"
    )
    (tmp_path / ".env").write_text("OUT_NAME=from-dotenv.vmig.jsonl\n")
    env = {k: v for k, v in os.environ.items() if k != "OUT_NAME"}
    with pytest.raises(RecipeError) as err:
        load_recipe(recipe, env=env)
    assert "r.yaml:3:28: error[missing-env] target.path: OUT_NAME is not set" in err.value.findings[0]
    envfile = tmp_path / "ci.env"
    envfile.write_text('# comment\nexport OUT_NAME="out file.vmig.jsonl"\nOTHER=1 # trailing\n')
    assert read_env_file(envfile) == {"OUT_NAME": "out file.vmig.jsonl", "OTHER": "1"}
    doc = load_recipe(recipe, env=env, env_file=envfile)
    assert doc.targets[0].path == "out file.vmig.jsonl"
    # the real environment wins over the file
    doc = load_recipe(recipe, env={**env, "OUT_NAME": "env.vmig.jsonl"}, env_file=envfile)
    assert doc.targets[0].path == "env.vmig.jsonl"
    res = run_cli("run", "--env-file", str(envfile), str(recipe))
    assert res.code == 0, res.output
    assert (tmp_path / "out file.vmig.jsonl").exists()
    bad = tmp_path / "bad.env"
    bad.write_text("this is not a dotenv line\n")
    res = run_cli("validate", "--env-file", str(bad), str(recipe))
    assert res.code == 2 and f"{bad}:1: expected KEY=value" in res.err


def test_recipes_shipped_in_the_repo_are_valid() -> None:
    recipes = sorted([*ROOT.glob("recipes/*.yaml"), *ROOT.glob("examples/**/*.yaml")], key=lambda p: str(p))
    recipes = [r for r in recipes if ".github" not in r.parts and "gitops" not in r.parts]
    assert recipes, "the repository ships recipes"
    for recipe in recipes:
        res = run_cli("validate", str(recipe.relative_to(ROOT)), env={"DATABASE_URL": ""})
        assert res.code == 0, res.output
        assert recipe.read_text().startswith("# yaml-language-server: $schema="), recipe


def test_merge_keys_and_anchors(tmp_path: Path) -> None:
    (tmp_path / "in.vmig.jsonl").write_text('{"id": "a", "text": "t", "vex_version": "1.0.0"}\n')
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "version: 1\nsource: &src {type: vmig, path: in.vmig.jsonl}\ntargets:\n  - <<: *src\n    path: out.vmig.jsonl\n"
    )
    doc = load_recipe(recipe)
    assert doc.targets[0].path == "out.vmig.jsonl" and doc.targets[0].type == "vmig"
