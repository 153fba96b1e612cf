"""Vex's flags on `vexrun migrate|import|export`: one test per row of the README's "From Vex" table.

Most rows are checked on the recipe the flags build (``--print-recipe``, in this process); the acceptance command
and a key typed on the command line run for real (the key against the loopback OpenAI-compatible fake)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import ROOT, run_cli, vx
from vexrun.migrate import build_recipe, recipe_text
from vexrun.providers.llm.settings import AUTO_ORDER, BUILTIN_PROVIDERS
from vexrun.recipe.loader import load_recipe
from vexrun.testing.fake_api import chat_server
from vexrun.vexflags import CASCADE_ORDER, KEY_ENVS, VexFlags, apply_vex, command_line

EXPORT = str(ROOT / "tests" / "data" / "exports" / "claude" / "conversations.json")
CANARY = "gsk_vexflags_CANARY_7"
CANARY2 = "gsk_vexflags_CANARY_8"


def _recipe(capsys: pytest.CaptureFixture[str], *args: str, verb: str = "migrate") -> tuple[dict[str, Any], str]:
    if verb == "migrate" and "--from" not in args:
        args = ("--from", "claude-export", "--file", EXPORT, "--to", "sqlite", "--db", "m.db", *args)
    code, out, err = vx(capsys, verb, *args, "--print-recipe")
    assert code == 0, err
    return yaml.safe_load(out), err


def _fails(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, _, err = vx(capsys, "migrate", "--from", "claude-export", "--file", EXPORT, "--to", "sqlite", *args)
    assert code == 2 and "Traceback" not in err, err
    return err


# --- commands -------------------------------------------------------------------------------------------------


def test_row_migrate_acceptance_command_runs(tmp_path: Path) -> None:
    """`vex migrate --from claude-export --to vektor --file F --db D --mode raw`."""
    res = run_cli(
        "migrate",
        "--from",
        "claude-export",
        "--to",
        "sqlite",
        "--file",
        EXPORT,
        "--db",
        "memory.db",
        "--mode",
        "raw",
        "--json",
        cwd=tmp_path,
    )
    assert res.code == 0, res.output
    written = json.loads(res.out)["counts"]["store"]["target (sqlite)"]["written"]
    db = sqlite3.connect(tmp_path / "memory.db")
    assert written > 0 and db.execute("SELECT COUNT(*) FROM records").fetchone()[0] == written
    db.close()


def test_row_export_output(capsys: pytest.CaptureFixture[str]) -> None:
    """`vex export --from vektor --db memory.db --output m.vmig.jsonl`."""
    r, _ = _recipe(capsys, "--from", "vektor", "--db", "memory.db", "--output", "m.vmig.jsonl", verb="export")
    assert r["source"] == {"type": "sqlite", "path": "memory.db"}
    assert r["target"] == {"type": "vmig", "path": "m.vmig.jsonl"}
    r, _ = _recipe(capsys, "--from", "claude-export", "--file", EXPORT, "--output", "c.vmig.jsonl", verb="export")
    assert r["source"]["path"] == EXPORT


def test_row_import_from_file(capsys: pytest.CaptureFixture[str]) -> None:
    """`vex import --from memories.vmig.jsonl --to vektor --db memory.db`."""
    for flag in ("--from", "--file", "-i"):
        r, _ = _recipe(capsys, flag, "in.vmig.jsonl", "--to", "vektor", "--db", "m.db", verb="import")
        assert r["source"] == {"type": "vmig", "path": "in.vmig.jsonl"}
        assert r["target"] == {"type": "sqlite", "path": "m.db"}
    code, _, err = vx(capsys, "import", "--to", "sqlite", "-t", "path=m.db")
    assert code == 2 and "-i FILE (Vex: --from FILE)" in err


@pytest.mark.parametrize(
    ("vex", "vexrun"),
    [
        ("vex (no arguments)", ["init"]),
        ("vex sign FILE", ["sign"]),
        ("vex verify FILE", ["verify"]),
        ("vex inspect FILE", ["inspect"]),
        ("vex validate FILE", ["validate"]),
        ("vex convert --from FILE --adapter NAME --output OUT", ["convert"]),
        ("vex adapters", ["adapters"]),
        ("vex sync init|push|pull|status|diff", ["sync", "diff"]),
    ],
)
def test_row_other_vex_commands_have_a_vexrun_verb(
    capsys: pytest.CaptureFixture[str], vex: str, vexrun: list[str]
) -> None:
    code, out, _ = vx(capsys, *vexrun, "--help")
    assert code == 0 and "Usage: vexrun" in out, vex


# --- stores and locations -------------------------------------------------------------------------------------


def test_row_vektor_and_jsonl_are_sqlite_and_vmig(capsys: pytest.CaptureFixture[str]) -> None:
    r, err = _recipe(capsys, "--from", "claude-export", "--file", EXPORT, "--to", "vektor", "--db", "m.db")
    assert r["target"]["type"] == "sqlite" and "using --to sqlite" in err
    r, err = _recipe(capsys, "--from", "vektor", "--db", "m.db", "--to", "jsonl", "-t", "path=o.vmig.jsonl")
    assert r["source"] == {"type": "sqlite", "path": "m.db"} and r["target"]["type"] == "vmig"
    assert "using --from sqlite" in err and "using --to vmig" in err and "vex export --from vektor" in err


def test_row_file_is_the_source_path(capsys: pytest.CaptureFixture[str]) -> None:
    r, _ = _recipe(capsys)
    assert r["source"] == {"type": "claude-export", "path": EXPORT}
    err = _fails(capsys, "-f", "path=other.json", "-t", "path=m.db")
    assert "--file and -f path=… both set the source's path" in err


@pytest.mark.parametrize(
    ("args", "side", "expected"),
    [
        (["--to", "sqlite", "--db", "m.db"], "target", {"type": "sqlite", "path": "m.db"}),
        (["--to", "pgvector", "--db", "postgresql://me@127.0.0.1/mem"], "target", "dsn"),
        (["--to", "qdrant", "-t", "collection=m", "--db", "./q"], "target", "path"),
        (["--to", "qdrant", "-t", "collection=m", "--db", "http://127.0.0.1:6333"], "target", "url"),
    ],
)
def test_row_db_is_the_sqlite_file_or_the_targets_location(
    capsys: pytest.CaptureFixture[str], args: list[str], side: str, expected: Any
) -> None:
    r, _ = _recipe(capsys, "--from", "claude-export", "--file", EXPORT, *args)
    if isinstance(expected, dict):
        assert r[side] == expected
    else:
        assert r[side][expected] == args[-1]
    # from a sqlite store to another: --db is the sqlite side
    r, _ = _recipe(capsys, "--from", "vektor", "--db", "m.db", "--to", "qdrant", "-t", "collection=m", "-t", "path=q")
    assert r["source"]["path"] == "m.db" and r["target"]["path"] == "q"


# --- the pipeline ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["raw", "extract", "smart"])
def test_row_mode(capsys: pytest.CaptureFixture[str], mode: str) -> None:
    r, _ = _recipe(capsys, "--mode", mode)
    assert r["mode"] == mode


def test_row_provider(capsys: pytest.CaptureFixture[str]) -> None:
    r, _ = _recipe(capsys, "--mode", "extract", "--provider", "groq,ollama")
    assert r["llm"] == {"providers": ["groq", "ollama"]}
    r, _ = _recipe(capsys, "--mode", "extract", "--provider", "claude")
    assert r["llm"]["providers"] == ["anthropic"]
    r, _ = _recipe(capsys, "--mode", "extract", "--provider", "auto")
    assert "llm" not in r  # auto is the default
    r, err = _recipe(capsys, "--mode", "extract", "--groq-key", "${MY_GROQ}", "--ollama-url", "http://127.0.0.1:9")
    assert [p if isinstance(p, str) else p["type"] for p in r["llm"]["providers"]] == ["groq", "ollama"]
    assert "--provider not given: the cascade is groq, ollama" in err
    assert "unknown provider 'nosuch'" in _fails(capsys, "--provider", "groq,nosuch")
    _, err = _recipe(capsys, "--provider", "groq")
    assert "--mode raw makes no LLM calls" in err


@pytest.mark.parametrize("provider", ["groq", "openai", "anthropic", "mistral", "together"])
def test_row_provider_keys(capsys: pytest.CaptureFixture[str], provider: str) -> None:
    env = f"{provider.upper()}_API_KEYS"
    r, err = _recipe(capsys, "--mode", "extract", "--provider", provider, f"--{provider}-key", f"{CANARY},{CANARY2}")
    assert r["llm"]["providers"] == [{"type": provider, "api_keys": "${" + env + "}"}]
    assert f"--{provider}-key puts the key on the command line" in err and f"export {env}=" in err
    code, out, _ = vx(capsys, "migrate", "--from", "claude-export", "--file", EXPORT, "--to", "sqlite", "--db",
                      "m.db", "--mode", "extract", f"--{provider}-key", CANARY, "--print-recipe")  # fmt: skip
    assert code == 0 and CANARY not in out + err and CANARY2 not in out + err
    # a ${VAR} reference typed as the value goes into the recipe as it is, with no warning
    r, err = _recipe(capsys, "--provider", provider, f"--{provider}-key", "${MY_KEYS}")
    assert r["llm"]["providers"][0]["api_keys"] == "${MY_KEYS}" and "warning" not in err


def test_row_keys_typed_on_the_command_line_reach_the_provider(tmp_path: Path) -> None:
    """The key flags' values go to the run through the environment: the cascade rotates both keys."""
    flags = VexFlags(mode="extract", provider="groq", keys={"groq": f"{CANARY},{CANARY2}"})
    base = build_recipe(
        source="claude-export", target="sqlite", source_options={"path": EXPORT}, target_options={"path": "m.db"}
    )
    recipe, needs = apply_vex(base, flags, db_sides=("target",))
    assert needs.env == {"GROQ_API_KEYS": f"{CANARY},{CANARY2}"}
    text = recipe_text(recipe)
    assert CANARY not in text
    doc = load_recipe(tmp_path / "r.yaml", text=text, base_dir=tmp_path, env={**os.environ, **needs.env})
    [groq] = doc.model.llm.providers
    assert groq.resolved_keys({}) == [CANARY, CANARY2]


def test_row_extract_url_and_key_run_for_real_and_the_key_is_never_written(tmp_path: Path) -> None:
    """`vex migrate … --mode extract --extract-url URL --extract-key KEY`: the run authenticates with the key,
    and neither the output nor the run's state holds it."""
    with chat_server(api_keys=[CANARY]) as srv:
        res = run_cli(
            "migrate",
            "--from",
            "claude-export",
            "--to",
            "vektor",
            "--file",
            EXPORT,
            "--db",
            "memory.db",
            "--mode",
            "extract",
            "--extract-url",
            srv.url("/v1/chat/completions"),
            "--extract-key",
            CANARY,
            "--extract-model",
            "custom:gpt-4o-mini",
            "--embed",
            '{"type": "fake", "dims": 16}',
            "--json",
            cwd=tmp_path,
        )
        assert res.code == 0, res.output
        assert not srv.violations and srv.stats.by_path["/v1/chat/completions"] > 0
    counts = json.loads(res.out)["counts"]
    assert counts["extract"]["out"] > 0 and counts["store"]["target (sqlite)"]["written"] > 0
    assert "--extract-key puts the key on the command line" in res.err
    assert CANARY not in res.output
    for path in (tmp_path / ".vexrun").rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path


def test_row_ollama_url(capsys: pytest.CaptureFixture[str]) -> None:
    r, _ = _recipe(capsys, "--provider", "ollama", "--ollama-url", "http://127.0.0.1:9/")
    assert r["llm"]["providers"] == [{"type": "ollama", "base_url": "http://127.0.0.1:9"}]


def test_row_extract_model(capsys: pytest.CaptureFixture[str]) -> None:
    r, _ = _recipe(
        capsys, "--provider", "groq,ollama", "--extract-model", "groq:llama-3.3-70b-versatile,ollama:llama3.2:3b"
    )
    assert r["llm"]["providers"] == [
        {"type": "groq", "model": "llama-3.3-70b-versatile"},
        {"type": "ollama", "model": "llama3.2:3b"},
    ]
    r, _ = _recipe(capsys, "--provider", "groq,openai", "--extract-model", "one-model")
    assert [p["model"] for p in r["llm"]["providers"]] == ["one-model", "one-model"]
    assert "--extract-model needs the providers" in _fails(capsys, "--extract-model", "one-model")


def test_row_min_importance(capsys: pytest.CaptureFixture[str]) -> None:
    r, _ = _recipe(capsys, "--mode", "extract", "--min-importance", "0.6")
    assert r["extract"] == {"min_importance": 0.6}


@pytest.mark.parametrize("chunk", ["turn", "exchange", "conversation", "smart"])
def test_row_chunk_mode(capsys: pytest.CaptureFixture[str], chunk: str) -> None:
    r, _ = _recipe(capsys, "--chunk-mode", chunk)
    assert r["source"]["chunk"] == chunk


def test_row_chunk_mode_needs_an_export_source(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = vx(capsys, "migrate", "--from", "vmig", "--file", "x.vmig.jsonl", "--to", "sqlite", "--db",
                      "m.db", "--chunk-mode", "turn")  # fmt: skip
    assert code == 2 and "--chunk-mode applies to conversation exports" in err


@pytest.mark.parametrize(("sender", "expected"), [("human", "user"), ("user", "user"), ("assistant", "assistant")])
def test_row_sender(capsys: pytest.CaptureFixture[str], sender: str, expected: str) -> None:
    r, _ = _recipe(capsys, "--sender", sender)
    assert r["source"]["sender"] == expected


def test_row_concurrency(capsys: pytest.CaptureFixture[str]) -> None:
    r, _ = _recipe(capsys, "--mode", "extract", "--concurrency", "5")
    assert r["llm"] == {"providers": "auto", "max_concurrency": 5}


def test_row_rate_limit(capsys: pytest.CaptureFixture[str]) -> None:
    r, _ = _recipe(capsys, "--provider", "groq,ollama", "--rate-limit", "1500")
    assert [p["rpm"] for p in r["llm"]["providers"]] == [40, 40]
    r, _ = _recipe(capsys, "--provider", "groq", "--rate-limit", "0")
    assert r["llm"]["providers"] == [{"type": "groq", "rpm": None}]
    assert "--rate-limit needs the providers" in _fails(capsys, "--rate-limit", "100")


def test_row_embed_model(capsys: pytest.CaptureFixture[str]) -> None:
    r, _ = _recipe(capsys, "--embed-model", "all-MiniLM-L6-v2")
    assert r["embed"] == {"type": "local", "model": "all-MiniLM-L6-v2"}
    r, _ = _recipe(capsys, "--embed-model", "text-embedding-3-small", "--openai-key", "${OPENAI_API_KEY}")
    assert r["embed"] == {"type": "openai", "api_key": "${OPENAI_API_KEY}", "model": "text-embedding-3-small"}
    r, _ = _recipe(capsys, "--embed-model", "nomic-embed-text", "--ollama-url", "http://127.0.0.1:9")
    assert r["embed"] == {"type": "ollama", "base_url": "http://127.0.0.1:9", "model": "nomic-embed-text"}
    r, _ = _recipe(capsys, "--embed", "fake", "--embed-model", "fake-2")
    assert r["embed"] == {"type": "fake", "model": "fake-2"}


def test_row_adapter_and_adapter_model(capsys: pytest.CaptureFixture[str]) -> None:
    r, _ = _recipe(capsys, "--adapter", "--adapter-model", "all-MiniLM-L6-v2")
    assert r["adapt"] == {"strategy": "project"} and r["embed"] == {"type": "local", "model": "all-MiniLM-L6-v2"}
    r, _ = _recipe(capsys, "--adapter", "truncate", "--adapter-model", "m-256")
    assert r["adapt"] == {"strategy": "truncate", "model": "m-256"} and "embed" not in r
    r, _ = _recipe(capsys, "--reembed", "--embed", "fake")
    assert r["adapt"] == {"strategy": "reembed"}
    assert "--adapter needs the target's model" in _fails(capsys, "--adapter")


def test_row_namespace(capsys: pytest.CaptureFixture[str]) -> None:
    r, _ = _recipe(capsys, "--namespace", "my-history")
    assert r["source"]["namespace"] == "my-history"


def test_row_print_recipe_runs_with_keys_from_the_environment(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's Vex command, as a recipe to commit: only ${…} references, valid once the variable is set."""
    code, out, err = vx(capsys, "migrate", "--from", "claude-export", "--to", "vektor", "--file", EXPORT, "--db",
                        "memory.db", "--mode", "smart", "--groq-key", CANARY, "--namespace", "my-history",
                        "--embed", "fake", "--print-recipe")  # fmt: skip
    assert code == 0 and CANARY not in out + err
    (tmp_path / "vex.yaml").write_text(out)
    monkeypatch.delenv("GROQ_API_KEYS", raising=False)
    code, out, err = vx(capsys, "validate", str(tmp_path / "vex.yaml"))
    assert code == 1 and "error[missing-env] llm.providers[0].api_keys: GROQ_API_KEYS is not set" in out + err
    monkeypatch.setenv("GROQ_API_KEYS", CANARY)
    code, _, err = vx(capsys, "validate", str(tmp_path / "vex.yaml"))
    assert code == 0, err


def test_resume_command_names_the_variable_not_the_key() -> None:
    line = command_line(["migrate", "--groq-key", CANARY, "--openai-key=" + CANARY2, "--file", "a b.json"])
    assert line == ('vexrun migrate --groq-key "$GROQ_API_KEYS" --openai-key="$OPENAI_API_KEYS" --file \'a b.json\'')


def test_the_key_flags_cover_the_cascades_providers() -> None:
    keyed = {name for name, (cfg, _) in BUILTIN_PROVIDERS.items() if cfg.key_env and name == cfg().type}
    assert keyed == set(KEY_ENVS) - {"custom"}
    for name in keyed:
        assert KEY_ENVS[name] == BUILTIN_PROVIDERS[name][0].key_env + "S"
    assert CASCADE_ORDER[:-1] == AUTO_ORDER
