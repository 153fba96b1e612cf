"""`vexrun migrate`, `export`, `import`: recipes built from flags, run by the same resumable runner."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli
from vexrun.testing.data import write_synthetic
from vexrun.vmig import read_batches


def _ids_and_vectors(path: Path) -> dict[str, bytes]:
    out = {}
    for batch in read_batches(path):
        for rec, vec in batch:
            out[rec.id] = b"" if vec is None else vec.tobytes()
    return out


def test_import_export_migrate_round_trip(tmp_path: Path) -> None:
    src = write_synthetic(tmp_path / "in.vmig.jsonl", 500, dims=24)
    imp = run_cli("import", "-i", "in.vmig.jsonl", "--to", "sqlite", "-t", "path=store.db", "--json", cwd=tmp_path)
    assert imp.code == 0, imp.output
    assert json.loads(imp.out)["counts"]["store"]["target (sqlite)"]["written"] == 500
    exp = run_cli("export", "--from", "sqlite", "-f", "path=store.db", "-o", "out.vmig.jsonl", cwd=tmp_path)
    assert exp.code == 0, exp.output
    assert _ids_and_vectors(tmp_path / "out.vmig.jsonl") == _ids_and_vectors(src)
    mig = run_cli(
        "migrate",
        "--from",
        "sqlite",
        "-f",
        "path=store.db",
        "-f",
        "namespace=work",
        "--to",
        "sqlite",
        "-t",
        "path=work.db",
        "--batch-size",
        "64",
        "--json",
        cwd=tmp_path,
    )
    assert mig.code == 0, mig.output
    summary = json.loads(mig.out)
    work = sum(1 for i in range(500) if i % 3 == 0)
    assert summary["counts"]["source"]["read"] == work and summary["batches"] == -(-work // 64)
    again = run_cli("export", "--from", "sqlite", "-f", "path=store.db", "-o", "out.vmig.jsonl", "--json", cwd=tmp_path)
    assert again.code == 0
    assert "completed; starting a new run" in again.err  # the same command knows its earlier run
    assert _ids_and_vectors(tmp_path / "out.vmig.jsonl") == _ids_and_vectors(src)


def test_print_recipe_is_a_recipe_to_commit(tmp_path: Path) -> None:
    write_synthetic(tmp_path / "in.vmig.jsonl", 20, dims=8)
    res = run_cli(
        "migrate",
        "--from",
        "vmig",
        "-f",
        "path=in.vmig.jsonl",
        "--to",
        "sqlite",
        "-t",
        "path=m.db",
        "-t",
        "api_key=${NOT_A_REAL_FIELD}",
        "--print-recipe",
        cwd=tmp_path,
    )
    assert res.code == 0
    assert "api_key: ${NOT_A_REAL_FIELD}" in res.out
    assert not (tmp_path / ".vexrun").exists()  # printing runs nothing
    good = run_cli(
        "migrate",
        "--from",
        "vmig",
        "-f",
        "path=in.vmig.jsonl",
        "--to",
        "sqlite",
        "-t",
        "path=m.db",
        "--embed",
        '{"type": "fake", "dims": 8}',
        "--print-recipe",
        cwd=tmp_path,
    )
    (tmp_path / "saved.yaml").write_text(good.out)
    assert run_cli("validate", "saved.yaml", cwd=tmp_path).code == 0
    assert run_cli("run", "saved.yaml", cwd=tmp_path).code == 0


def test_flag_errors_are_one_line(tmp_path: Path) -> None:
    res = run_cli("migrate", "--from", "vmig", "--to", "nosuchstore", cwd=tmp_path)
    assert res.code == 2 and "unknown sink 'nosuchstore'" in res.err and "Traceback" not in res.err
    res = run_cli("migrate", "--from", "vmig", "-f", "oops", "--to", "sqlite", cwd=tmp_path)
    assert res.code == 2 and "--from-opt 'oops': expected KEY=VALUE" in res.err
    res = run_cli(
        "migrate",
        "--from",
        "vmig",
        "-f",
        "path=x.vmig.jsonl",
        "-f",
        "bogus=1",
        "--to",
        "sqlite",
        "-t",
        "path=m.db",
        cwd=tmp_path,
    )
    assert res.code == 1 and "error[unknown-field] source.bogus" in res.err
    res = run_cli("export", "--from", "sqlite", "-f", "path=m.db", "-o", "out.txt", cwd=tmp_path)
    assert res.code == 2 and "is a .vmig.jsonl" in res.err
    res = run_cli("import", "--to", "sqlite", cwd=tmp_path)
    assert res.code == 2


def test_option_values_are_yaml_scalars_or_lists_of_them() -> None:
    """``-t KEY=VALUE``: numbers and booleans typed, flow lists of scalars as lists (a list setting such as
    langgraph-postgres's namespace_prefix could not be given before), anything else and ``${VAR}`` kept as text."""
    from vexrun.migrate import parse_options

    got = parse_options(
        [
            "namespace_prefix=[memories, alice]",
            "index.m=16",
            "index.kind=hnsw",
            "create=true",
            "dsn=${PG_DSN}",
            "nested=[[1], 2]",
            "mapping={a: 1}",
            "empty=",
        ],
        "-t",
    )
    assert got == {
        "namespace_prefix": ["memories", "alice"],
        "index": {"m": 16, "kind": "hnsw"},
        "create": True,
        "dsn": "${PG_DSN}",
        "nested": "[[1], 2]",
        "mapping": "{a: 1}",
        "empty": "",
    }
