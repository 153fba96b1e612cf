"""One rule for an id written twice in a run, in every target: the last write wins, as an upsert (issue 11).

Before: a `vmig` source repeating an id in another batch gave a `vmig` target holding the id twice (which its
own `vexrun validate` rejected) and a `sqlite` target holding it once, and a repeat inside a batch was
"skipped 1" without a word. Now every target holds the last record of each id, duplicates are counted in the
run summary as "duplicates (last write wins)", and a resumed run publishes the same bytes as an uninterrupted
one."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from vexrun.ids import IdIndex, IdSet, id_hashes
from vexrun.vmig import Record, VmigWriter, read_batches

#: batches of 4: batch 2 repeats r5 inside itself, batch 3 repeats r2 from batch 1
ORDER = ["r0", "r1", "r2", "r3", "r4", "r5", "r5", "r6", "r7", "r2", "r8", "r9"]


def _input(path: Path, order: list[str] = ORDER) -> None:
    seen: dict[str, int] = {}
    with VmigWriter(path, source_store="test") as w:
        for rid in order:
            seen[rid] = seen.get(rid, 0) + 1
            w.write(Record(id=rid, text=f"{rid} version {seen[rid]}", metadata={"v": seen[rid]}))


def _recipe(tmp: Path, output: str = "out.vmig.jsonl", *, batch: int = 4, delay_ms: int = 0) -> Path:
    recipe = tmp / "dups.yaml"
    recipe.write_text(
        f"""version: 1
source: {{type: vmig, path: in.vmig.jsonl}}
embed: {{type: fake, dims: 8, batch_size: {batch}, delay_ms: {delay_ms}}}
targets:
  - {{type: vmig, path: {output}}}
  - {{type: sqlite, path: out.db}}
run: {{batch_size: {batch}}}
"""
    )
    return recipe


def _records(path: Path) -> list[Record]:
    return [rec for batch in read_batches(path) for rec, _ in batch]


@pytest.mark.parametrize("output", ["out.vmig.jsonl", "out.vmig.jsonl.gz"])
def test_every_target_keeps_the_last_write_and_the_summary_counts_duplicates(tmp_path: Path, output: str) -> None:
    _input(tmp_path / "in.vmig.jsonl")
    res = run_cli("run", "--json", str(_recipe(tmp_path, output)))
    assert res.code == 0, res.output
    summary = json.loads(res.out)
    assert summary["duplicates"] == {
        "rule": "last write wins",
        "count": 2,
        "within_batches": 1,
        "across_batches": {"targets[0] (vmig)": 1, "targets[1] (sqlite)": 1},
    }
    rows = {row["title"]: row for row in summary["stages"]}
    assert rows["ids"]["duplicates"] == 1 and rows["ids"]["out"] == 11
    assert rows["targets[0] (vmig)"]["duplicates"] == 1 and rows["targets[1] (sqlite)"]["duplicates"] == 1
    # the vmig file holds each id once, its last version, and passes its own validation
    out = tmp_path / output
    valid = run_cli("validate", str(out))
    assert valid.code == 0, valid.output
    records = _records(out)
    assert [r.id for r in records] == ["r0", "r1", "r3", "r4", "r5", "r6", "r7", "r2", "r8", "r9"]
    assert {r.id: r.text for r in records}["r2"] == "r2 version 2"
    assert {r.id: r.text for r in records}["r5"] == "r5 version 2"
    meta = json.loads(out.with_name(out.name + ".meta.json").read_text())
    assert meta["record_count"] == 10
    # so does the local store
    db = sqlite3.connect(tmp_path / "out.db")
    rows_db = dict(db.execute("SELECT id, text FROM records").fetchall())
    db.close()
    assert len(rows_db) == 10 and rows_db["r2"] == "r2 version 2" and rows_db["r5"] == "r5 version 2"


def test_the_run_table_names_the_rule(tmp_path: Path) -> None:
    _input(tmp_path / "in.vmig.jsonl")
    res = run_cli("run", str(_recipe(tmp_path)))
    assert res.code == 0, res.output
    lines = res.out.splitlines()
    ids = next(line for line in lines if line.startswith("ids "))
    assert ids.endswith("1 duplicate (last write wins) within a batch")
    vmig = next(line for line in lines if line.startswith("targets[0] (vmig)"))
    assert vmig.endswith("1 duplicate (last write wins)")


def test_no_duplicates_publishes_the_partial_file_as_it_is(tmp_path: Path) -> None:
    _input(tmp_path / "in.vmig.jsonl", [f"r{i}" for i in range(10)])
    res = run_cli("run", "--json", str(_recipe(tmp_path)))
    assert res.code == 0, res.output
    assert json.loads(res.out)["duplicates"]["count"] == 0
    assert [r.id for r in _records(tmp_path / "out.vmig.jsonl")] == [f"r{i}" for i in range(10)]


@pytest.mark.parametrize("output", ["out.vmig.jsonl", "out.vmig.jsonl.gz"])
def test_a_resumed_run_publishes_the_bytes_of_an_uninterrupted_one(tmp_path: Path, output: str) -> None:
    """The id index is rebuilt from the partial file after a kill -9: same duplicates dropped, same bytes."""
    order = [f"r{i % 40}" for i in range(160)]  # every id of the first 40 written again, across batches
    ref = tmp_path / "ref"
    ref.mkdir()
    _input(ref / "in.vmig.jsonl", order)
    done = run_cli("run", "--json", str(_recipe(ref, output, batch=8)))
    assert done.code == 0, done.output
    assert json.loads(done.out)["duplicates"]["count"] == 120
    reference = (ref / output).read_bytes()
    assert len(_records(ref / output)) == 40

    work = tmp_path / "work"
    work.mkdir()
    _input(work / "in.vmig.jsonl", order)
    recipe = _recipe(work, output, batch=8, delay_ms=100)
    for batches in (7, 12):  # kill -9 once duplicates were committed (from batch 6), twice
        proc = subprocess.Popen(
            [sys.executable, "-m", "vexrun", "run", str(recipe)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_for_batches(work, batches, proc)
        proc.kill()
        proc.wait()
    final = run_cli("run", "--json", str(recipe))
    assert final.code == 0, final.output
    assert "Resuming" in final.err
    assert (work / output).read_bytes() == reference
    meta = json.loads((work / output).with_name(output + ".meta.json").read_text())
    assert meta == {**json.loads((ref / output).with_name(output + ".meta.json").read_text()), **_times(meta)}
    assert run_cli("validate", str(work / output)).code == 0


def _wait_for_batches(directory: Path, n: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        logs = list(directory.glob(".vexrun/state/*/events.jsonl"))
        if logs and logs[0].read_text().count('"event":"batch"') >= n:
            return
        assert proc.poll() is None, "the run finished before it could be killed"
        time.sleep(0.01)
    raise AssertionError(f"no {n} batches within 60 s")


def _times(meta: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in meta.items() if "time" in k or k.endswith("_at")}


def test_id_index_last_write_wins_within_and_across_calls() -> None:
    index = IdIndex()
    hashes = id_hashes(x.encode() for x in ["a", "b", "a", "c"])
    old, new = index.upsert(hashes, np.arange(4))
    assert sorted(zip(old.tolist(), new.tolist(), strict=True)) == [(0, 2)]
    old, new = index.upsert(id_hashes(x.encode() for x in ["c", "d", "b", "b"]), np.arange(4, 8))
    assert sorted(zip(old.tolist(), new.tolist(), strict=True)) == [(1, 7), (3, 4), (6, 7)]
    assert len(index) == 4


def test_id_index_memory_is_16_bytes_a_record() -> None:
    index = IdIndex()
    n = 300_000
    for start in range(0, n, 1000):
        keys = id_hashes(f"record-{i}".encode() for i in range(start, start + 1000))
        old, _ = index.upsert(keys, np.arange(start, start + 1000))
        assert not len(old)
    assert len(index) == n
    assert index.nbytes == 16 * n
    again = id_hashes(f"record-{i}".encode() for i in range(0, n, 1000))
    old, _ = index.upsert(again, np.arange(n, n + len(again)))
    assert sorted(old.tolist()) == list(range(0, n, 1000))


def test_id_set_counts_what_id_index_counts_in_8_bytes_a_record() -> None:
    rng = np.random.default_rng(3)
    index, ids = IdIndex(), IdSet()
    written = 0
    for size in (1, 7, 1000, 3, 4096, 500, 2):  # levels of every size merge
        names = [f"r{i}" for i in rng.integers(0, 3000, size)]  # repeats within and across calls
        keys = id_hashes(x.encode() for x in names)
        old, _ = index.upsert(keys, np.arange(written, written + size))
        assert ids.add(keys) == len(old)
        written += size
    assert len(ids) == len(index) and ids.nbytes == 8 * len(ids)
    assert ids.add(np.empty(0, dtype=np.uint64)) == 0


def test_the_local_store_counts_duplicates_across_a_resume(tmp_path: Path) -> None:
    """The store upserts (the last write wins); the ids a run wrote are read back from its id log on resume,
    so a repeat after the resume is counted as one, and a batch replayed after a kill is not."""
    from vexrun.connectors.base import RunContext
    from vexrun.connectors.sqlite import SqliteSink, SqliteSinkConfig
    from vexrun.vmig.batch import Batch

    ctx = RunContext(state_dir=tmp_path / "state", recipe_dir=tmp_path)

    def batch(*pairs: tuple[str, str]) -> Batch:
        return Batch(records=[Record(id=i, text=t) for i, t in pairs])

    sink = SqliteSink(SqliteSinkConfig(path="m.db"), ctx)
    sink.open(None)
    try:
        assert sink.write(batch(("a", "one"), ("b", "one"))).duplicates == 0
        committed = sink.state()
        assert sink.write(batch(("c", "one"))).duplicates == 0  # written, never committed: a kill comes here
    finally:
        sink.close()
    sink = SqliteSink(SqliteSinkConfig(path="m.db"), ctx)
    sink.open(committed)
    try:
        assert sink.write(batch(("c", "one"))).duplicates == 0  # the replayed batch
        assert sink.write(batch(("a", "two"), ("d", "one"))).duplicates == 1
        sink.finalize()
    finally:
        sink.close()
    db = sqlite3.connect(tmp_path / "m.db")
    assert dict(db.execute("SELECT id, text FROM records").fetchall()) == {
        "a": "two",
        "b": "one",
        "c": "one",
        "d": "one",
    }
    db.close()
    assert not sink.ids_path.exists()  # the log goes with the completed run


def test_a_hash_collision_never_drops_a_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The index's 64-bit hashes are candidates: before a line is left out, its id and the id of the line that
    replaced it are compared by a second hash. Here every id gets the same index hash."""
    from vexrun.connectors.base import RunContext
    from vexrun.connectors.vmig import VmigSink, VmigSinkConfig
    from vexrun.connectors.vmig import sink as vmig_file
    from vexrun.vmig.batch import Batch

    monkeypatch.setattr(vmig_file, "_hash_ids", lambda ids: np.zeros(len(ids), dtype=np.uint64))
    said: list[str] = []
    ctx = RunContext(state_dir=tmp_path, recipe_dir=tmp_path, log=said.append)
    sink = VmigSink(VmigSinkConfig(path="out.vmig.jsonl"), ctx)
    sink.open(None)
    try:
        sink.write(Batch(records=[Record(id="a", text="a1"), Record(id="b", text="b1")]))
        sink.write(Batch(records=[Record(id="c", text="c1")]))
        sink.finalize()
    finally:
        sink.close()
    assert [(r.id, r.text) for r in _records(tmp_path / "out.vmig.jsonl")] == [("a", "a1"), ("b", "b1"), ("c", "c1")]
    assert run_cli("validate", str(tmp_path / "out.vmig.jsonl")).code == 0
    assert any("hash collision" in line for line in said)
