"""Secrets never leak: a canary key used for a whole run against the loopback OpenAI fake must not appear in
any output, log, plan, checkpoint, report, event, exception or output file."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli
from vexrun.testing.fake_api import Fault, openai_server
from vexrun.vmig import Record, VmigWriter

CANARY = "sk-canary-7d41c9a0e2b34f6d8c1e5a9b3f7d2c6e"
FILE_CANARY = "file-canary-b8e2d4f6a1c3e5d7f9a2b4c6d8e0f1a3"


def _setup(tmp_path: Path, base_url: str, *, key_ref: str = "${OPENAI_API_KEY}") -> Path:
    with VmigWriter(tmp_path / "in.vmig.jsonl") as w:
        for i in range(40):
            w.write(Record(id=f"r{i}", text=f"memory number {i} about the canary test"))
    recipe = tmp_path / "secret.yaml"
    recipe.write_text(
        f"""version: 1
source: {{type: vmig, path: in.vmig.jsonl}}
embed:
  type: openai
  base_url: {base_url}
  model: text-embedding-3-small
  dimensions: 64
  api_key: "{key_ref}"
  batch_size: 16
  max_retries: 3
targets:
  - {{type: vmig, path: out.vmig.jsonl}}
  - {{type: sqlite, path: out.db}}
run: {{batch_size: 20}}
"""
    )
    return recipe


def _everything_written(root: Path) -> bytes:
    blobs = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            blobs.append(path.read_bytes())
    return b"\n".join(blobs)


def test_env_secret_never_leaks(tmp_path: Path) -> None:
    with openai_server(api_keys=[CANARY]) as srv:
        recipe = _setup(tmp_path, srv.url("/v1"))
        env = {"OPENAI_API_KEY": CANARY}
        outputs = [
            run_cli("validate", str(recipe), env=env),
            run_cli("plan", str(recipe), env=env),
            run_cli("plan", "--json", str(recipe), env=env),
            run_cli("check", str(recipe), env=env),
            run_cli("run", "--json", str(recipe), env=env),
            run_cli("status", "--json", str(recipe), env=env),
            run_cli("--debug", "run", str(recipe), env=env),
        ]
        assert outputs[4].code == 0, outputs[4].output
        assert srv.stats.requests > 0 and not srv.violations
        # a failing run: the server now refuses the key (401), and retries a 5xx
        srv.fail(Fault.server_error(503))
        wrong = run_cli("run", "--fresh", str(recipe), env={"OPENAI_API_KEY": CANARY + "-wrong"})
        assert wrong.code == 1 and "refused" in wrong.err
        outputs.append(wrong)
    for res in outputs:
        assert CANARY not in res.output
        assert "Traceback" not in res.output
    plan = json.loads(outputs[2].out)
    assert plan["secrets"] == [
        {
            "field": "embed.api_key",
            "refs": [{"kind": "env", "name": "OPENAI_API_KEY", "set": True, "default": False}],
            "literal": False,
        }
    ]
    embed = next(s for s in plan["stages"] if s["stage"] == "embed")
    assert embed["settings"]["api_key"] == "${OPENAI_API_KEY}"
    assert "${OPENAI_API_KEY} (set)" in outputs[1].out
    assert CANARY.encode() not in _everything_written(tmp_path)


def test_missing_secret_is_shown_by_plan_and_refused_by_run(tmp_path: Path) -> None:
    recipe = _setup(tmp_path, "http://127.0.0.1:9/v1")
    plan = run_cli("plan", str(recipe), env={"OPENAI_API_KEY": None})
    assert plan.code == 0, plan.output
    assert "embed.api_key  ${OPENAI_API_KEY} (MISSING)" in plan.out
    res = run_cli("run", str(recipe), env={"OPENAI_API_KEY": None})
    assert res.code == 1
    assert "secret.yaml:8:12: error[missing-env] embed.api_key: OPENAI_API_KEY is not set" in res.err


def test_file_secret_and_literal_secret(tmp_path: Path) -> None:
    (tmp_path / "key.txt").write_text(FILE_CANARY + "\n")
    with openai_server(api_keys=[FILE_CANARY]) as srv:
        recipe = _setup(tmp_path, srv.url("/v1"), key_ref="${file:key.txt}")
        res = run_cli("run", str(recipe))
        assert res.code == 0, res.output
        plan = run_cli("plan", str(recipe))
        assert "embed.api_key  ${file:key.txt} (set)" in plan.out
        literal = _setup(tmp_path, srv.url("/v1"), key_ref=FILE_CANARY)
        warned = run_cli("validate", str(literal))
        assert warned.code == 0
        assert "warning[literal-secret] embed.api_key: a secret is written into the recipe" in warned.out
        lit_plan = run_cli("plan", str(literal))
        assert "written into the recipe" in lit_plan.out
    for out in (res.output, plan.output, warned.output, lit_plan.output):
        assert FILE_CANARY not in out
    state = tmp_path / ".vexrun"
    assert FILE_CANARY.encode() not in _everything_written(state)


def test_a_keyword_of_a_secret_field_is_no_secret(tmp_path: Path) -> None:
    """``dsn: embedded`` names the local server: no literal-secret warning, and the word is never masked
    (registered as a secret, it turned every later "embedded 100" in the progress lines into "*** 100")."""
    from vexrun.recipe.loader import load_recipe
    from vexrun.redact import redact

    (tmp_path / "in.vmig.jsonl").write_bytes(b"")
    recipe = tmp_path / "local.yaml"
    body = "version: 1\nsource: {{type: vmig, path: in.vmig.jsonl}}\ntarget: {{type: {t}, dsn: {dsn}}}\n"
    for store in ("pgvector", "langgraph-postgres"):
        recipe.write_text(body.format(t=store, dsn="embedded"))
        doc = load_recipe(recipe)
        assert not doc.warnings, doc.warnings
        assert doc.model.target.dsn.get_secret_value() == "embedded"
        assert redact("embedded 100 (cached 0)") == "embedded 100 (cached 0)"
    literal = "postgresql://u:Lit3ral-pw-9c1e@127.0.0.1:5/db"
    recipe.write_text(body.format(t="pgvector", dsn=f'"{literal}"'))
    assert [w.code for w in load_recipe(recipe).warnings] == ["literal-secret"]
    assert redact(f"connect {literal}") == "connect ***"


def test_an_unset_list_of_keys_is_missing_in_the_plan_and_an_error_for_the_run(tmp_path: Path) -> None:
    """`api_keys: "${KEYS}"` (one string, split on commas) with KEYS unset: `vexrun plan` shows it MISSING and
    exits 0, as for any secret; `vexrun run` refuses with the place of the reference."""
    (tmp_path / "conversations.json").write_text("[]")
    recipe = tmp_path / "keys.yaml"
    recipe.write_text(
        """version: 1
mode: extract
source: {type: claude-export, path: conversations.json}
llm:
  providers:
    - type: groq
      api_keys: "${VEXRUN_TEST_UNSET_KEYS}"
embed: {type: fake, dims: 16}
target: {type: vmig, path: out.vmig.jsonl}
"""
    )
    plan = run_cli("plan", str(recipe), env={"VEXRUN_TEST_UNSET_KEYS": None})
    assert plan.code == 0, plan.output
    assert "llm.providers[0].api_keys[0]  ${VEXRUN_TEST_UNSET_KEYS} (MISSING)" in plan.out
    res = run_cli("run", str(recipe), env={"VEXRUN_TEST_UNSET_KEYS": None})
    assert res.code == 1
    assert "keys.yaml:7:17: error[missing-env] llm.providers[0].api_keys: VEXRUN_TEST_UNSET_KEYS is not set" in res.err
