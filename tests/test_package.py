"""The package's contract: light imports, a small sorted public surface, help for every command, and
JSON Schemas that match the models."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import click
import jsonschema
import pytest

import vexrun
from conftest import DATA, ROOT, run_cli

HEAVY = ("numpy", "msgspec", "orjson", "blake3", "torch", "grpc", "pydantic", "rich", "yaml")
STORE_SDKS = ("psycopg", "pgvector", "qdrant_client", "chromadb", "pymilvus", "pinecone", "weaviate", "redis", "neo4j")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


@pytest.mark.parametrize(
    "code",
    ["import vexrun", "from vexrun.cli import cli", "import vexrun.errors"],
)
def test_import_loads_nothing_heavy(code: str) -> None:
    mods = _modules_after(code)
    roots = {m.split(".")[0] for m in mods}
    assert not roots & set(HEAVY + STORE_SDKS), sorted(roots & set(HEAVY + STORE_SDKS))


def test_help_loads_nothing_heavy() -> None:
    mods = _modules_after(
        "import sys\nfrom vexrun.cli import cli\n"
        "try:\n    cli.main(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass"
    )
    roots = {m.split(".")[0] for m in mods}
    assert not roots & set(HEAVY + STORE_SDKS)


def test_public_surface_is_sorted_and_importable() -> None:
    assert vexrun.__all__ == sorted(vexrun.__all__)
    for name in vexrun.__all__:
        assert getattr(vexrun, name) is not None
    import vexrun.vmig as vmig

    assert vmig.__all__ == sorted(vmig.__all__)


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out = []
    for name, cmd in group.commands.items():
        out.append((prefix + name, cmd))
        if isinstance(cmd, click.Group):
            out.extend(_commands(cmd, prefix + name + " "))
    return out


def test_every_command_has_help() -> None:
    from vexrun.cli import cli

    cmds = _commands(cli)
    assert {"validate", "inspect"} <= {name for name, _ in cmds}
    for name, cmd in cmds:
        assert cmd.help and len(cmd.help.strip()) > 20, name
        for param in cmd.params:
            if isinstance(param, click.Option):
                assert param.help, f"{name} {param.opts}"
        res = run_cli(*name.split(), "--help")
        assert res.code == 0 and "Usage: vexrun" in res.out


def test_top_level_help_documents_exit_codes() -> None:
    res = run_cli("--help")
    assert res.code == 0
    for code in ("0 ", "1 ", "2 ", "3 ", "4 ", "70 ", "130/143"):
        assert code in res.out


def test_version() -> None:
    res = run_cli("--version")
    assert res.code == 0 and vexrun.__version__ in res.out


def test_schemas_are_in_sync() -> None:
    from vexrun.schemas import SCHEMAS, render

    on_disk = {p.name for p in (ROOT / "schemas").glob("*.json")}
    assert on_disk == set(SCHEMAS)
    for name in SCHEMAS:
        assert (ROOT / "schemas" / name).read_text() == render(name), f"{name} is stale: run `make schemas`"


def test_record_schema_agrees_with_the_validator() -> None:
    schema = json.loads((ROOT / "schemas" / "vmig-record.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for line in (DATA / "vmig" / "handwritten.vmig.jsonl").read_text().splitlines():
        validator.validate(json.loads(line))
    bad = [
        {"text": "no id"},
        {"id": ""},
        {"id": "a"},
        {"id": "a", "text": None, "vector": None},
        {"id": "a", "text": "t", "metadata": {"x": {"nested": 1}}},
        {"id": "a", "text": "t", "vex_version": "1.0"},
        {"id": "a", "vector": ["x"]},
        {"id": "a", "vector": []},
        {"id": "a", "text": "t", "dims": "3"},
    ]
    for obj in bad:
        assert not validator.is_valid(obj), obj


def test_inspect_reports_what_a_user_needs(tmp_path: Path) -> None:
    res = run_cli("inspect", "--json", "tests/data/vmig/handwritten.vmig.jsonl")
    assert res.code == 0, res.output
    r = json.loads(res.out)
    assert r["records"] == 4
    assert (r["with_text"], r["with_vector"], r["with_both"]) == (3, 2, 1)
    assert {d["value"]: d["count"] for d in r["dims"]} == {4: 2}
    assert {n["value"]: n["count"] for n in r["namespaces"]} == {"preferences": 1, "facts": 1, None: 2}
    meta = {m["key"]: m for m in r["metadata"]}
    assert meta["tags"]["types"] == {"list": 1} and meta["tags"]["fill_rate"] == 0.25
    assert meta["note"]["types"] == {"null": 1}
    assert r["created_at"] == {"min": "2026-03-01T09:30:00Z", "max": "2026-03-04"}
    assert r["bytes"] == (DATA / "vmig" / "handwritten.vmig.jsonl").stat().st_size
    text = run_cli("inspect", "tests/data/vmig/handwritten.vmig.jsonl").out
    for needle in ("records      4", "preferences", "4-d", "toy-4d", "tags", "25.0%", "created_at"):
        assert needle in text


def test_progress_bar_only_on_a_terminal(tmp_path: Path) -> None:
    from vexrun.testing.data import write_synthetic

    f = write_synthetic(tmp_path / "p.vmig.jsonl", 3000, dims=384)
    assert f.stat().st_size > 8 * 1024 * 1024
    piped = run_cli("validate", str(f))
    assert piped.err == ""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vexrun", "validate", "--jobs", "1", str(f)],
        stdout=subprocess.PIPE,
        stderr=follower,
        env={**os.environ, "TERM": "xterm", "COLUMNS": "100"},
    )
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    out, _ = proc.communicate()
    assert proc.returncode == 0
    assert b"valid: 3,000 records" in out
    assert b"validate" in seen and b"MB" in seen  # the bar: label and byte counts
