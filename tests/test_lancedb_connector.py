"""The LanceDB connector against the real embedded engine: table layout and checks, appends and upserts, the
resume of an append-loaded table, the pinned-version export, read-back, search, indexes, and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import partitioned_read
from vexrun.connectors.base import RunContext
from vexrun.connectors.encoding import from_store, to_store
from vexrun.connectors.lancedb import LanceDBSink, LanceDBSinkConfig, LanceDBSource, LanceDBSourceConfig
from vexrun.errors import InvalidInput, LockHeld, UsageError
from vexrun.registry import resolve
from vexrun.vmig.batch import Batch
from vexrun.vmig.model import Record

DIMS = 8
CAPS = resolve("sink", "lancedb").capabilities


def _db(tmp: Path) -> Any:
    os.environ.setdefault("LANCEDB_LOG", "error")
    import lancedb

    return lancedb.connect(str(tmp / "db"))


def _ctx(tmp: Path) -> RunContext:
    return RunContext(state_dir=tmp / "state", recipe_dir=tmp)


def _records(n: int, start: int = 0, ns: tuple[str, ...] = ("alpha", "beta"), seed: int = 0) -> Batch:
    rng = np.random.default_rng(start + 1 + seed)
    recs = [
        Record(
            id=f"mem-{i:04d}",
            text=f"memory number {i}",
            model="fake-8",
            namespace=ns[i % len(ns)],
            metadata={"turn": i, "tags": ["a", 2, None], "nested": {"k": [1, {"x": None}]}, "w": i / 7},
            created_at="2026-01-02T03:04:05Z",
            source_store="test",
            modality="text",
            score=i / 3,
            vex_version="1.0.0",
            extra={"custom": {"x": i}},
        )
        for i in range(start, start + n)
    ]
    vecs = rng.standard_normal((n, DIMS)).astype(np.float32)
    return Batch(records=recs, vectors=vecs, has_vector=np.ones(n, dtype=bool))


def _sink(tmp: Path, state: dict[str, Any] | None = None, **kw: Any) -> LanceDBSink:
    sink = LanceDBSink(LanceDBSinkConfig(path="db", table=kw.pop("table", "mem"), **kw), _ctx(tmp))
    sink.open(state)
    return sink


def _write(tmp: Path, *batches: Batch, metric: str = "cosine", **kw: Any) -> dict[str, Any]:
    sink = _sink(tmp, **kw)
    try:
        sink.prepare(DIMS, "fake-8", metric)
        for batch in batches:
            assert not sink.write(to_store(batch, CAPS)).rejected
        sink.finalize()
        return sink.state()
    finally:
        sink.close()


def _source(tmp: Path, **kw: Any) -> LanceDBSource:
    src = LanceDBSource(LanceDBSourceConfig(path="db", table=kw.pop("table", "mem"), **kw), _ctx(tmp))
    src.open()
    return src


def _read(tmp: Path, batch_size: int = 100, **kw: Any) -> list[tuple[Record, np.ndarray | None]]:
    src = _source(tmp, **kw)
    try:
        return [(rec, vec) for batch, _ in src.batches(None, batch_size) for rec, vec in from_store(batch)]
    finally:
        src.close()


def test_config_and_importing_loads_no_sdk() -> None:
    with pytest.raises(ValueError, match="either path"):
        LanceDBSinkConfig(table="x")
    with pytest.raises(ValueError, match="either path"):
        LanceDBSinkConfig(table="x", path="a", uri="b")
    with pytest.raises(ValueError, match="db://"):
        LanceDBSinkConfig(table="x", uri="db://my-db")
    with pytest.raises(ValueError):
        LanceDBSinkConfig(table="no/slash", path="a")
    code = (
        "import sys, vexrun.connectors.lancedb; print(any(m.startswith(('lancedb', 'pyarrow')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


DEFERRED = """
import sys
sys.path.insert(0, sys.argv[1])
from vexrun.connectors.lancedb.client import defer_package_init
defer_package_init("pkg")
defer_package_init("not_installed_anywhere")
defer_package_init("plain")  # a module, not a package: imported as usual later
import pkg.sub
print("after-sub", sys.modules["pkg"].__dict__.get("RAN", False))
from pkg import VALUE
print("value", VALUE, pkg.RAN, pkg.sub.X, "not_installed_anywhere" in sys.modules, "plain" in sys.modules)
"""


def test_a_deferred_package_runs_its_init_on_first_use(tmp_path: Path) -> None:
    """``defer_package_init`` (how ``import lancedb`` skips the namespace client's API modules): submodules
    import without the package's ``__init__``; the first attribute it lacks runs it, once; a package that is not
    installed, or a plain module, is left alone."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("RAN = True\nVALUE = 42\nfrom pkg.sub import X\n")
    (tmp_path / "pkg" / "sub.py").write_text("X = 'sub'\n")
    (tmp_path / "plain.py").write_text("Y = 1\n")
    out = subprocess.run(
        [sys.executable, "-c", DEFERRED, str(tmp_path)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["after-sub", "False", "value", "42", "True", "sub", "False", "False"], out


def test_importing_the_sdk_skips_the_namespace_clients_api_until_it_is_used() -> None:
    code = (
        "import sys\n"
        "from vexrun.connectors.lancedb.client import NAMESPACE_CLIENT, sdk\n"
        "sdk()\n"
        "before = any(m.startswith(NAMESPACE_CLIENT + '.api.') for m in sys.modules)\n"
        "client = sys.modules[NAMESPACE_CLIENT]\n"
        "print(before, client.ApiClient.__name__, any(m.startswith(NAMESPACE_CLIENT + '.api.') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "ApiClient", "True"], out


def test_round_trip_of_every_field_bit_exact(tmp_path: Path) -> None:
    batch = _records(12)
    batch.records[0].metadata = None
    batch.records[1].metadata = {}
    batch.records[2].text = None
    batch.records[3].metadata = {"huge": 2**70, "neg": -(2**65), "ok": [1.5, "x"]}
    batch.records[4].id = 'it\'s "quoted" \\ 🙂 ' + "x" * 300
    batch.records[5].extra = None
    batch.records[6].namespace = None
    batch.records[7].score = None  # the legacy file format keeps no null in a float column: it came back 0.0
    _write(tmp_path, batch)
    got = {rec.id: (rec, vec) for rec, vec in _read(tmp_path, batch_size=5)}
    assert sorted(got) == sorted(r.id for r in batch.records)
    for i, want in enumerate(batch.records):
        rec, vec = got[want.id]
        assert rec == Record(**{**{f: getattr(want, f) for f in want.__struct_fields__}, "dims": DIMS})
        assert vec is not None and np.array_equal(vec.view(np.uint32), batch.vectors[i].view(np.uint32))  # type: ignore[index]
    tbl = _db(tmp_path).open_table("mem")
    assert str(tbl.schema.field("vector").type) == "fixed_size_list<item: float>[8]"
    assert {ix.columns[0] for ix in tbl.list_indices()} == {"id"}  # finalize built the BTREE on id
    assert len(tbl.list_versions()) <= 3  # compacted; the run's intermediate versions dropped


@pytest.mark.parametrize("version", ["stable", "2.1"])
def test_tables_in_the_v2_file_formats_round_trip_too(tmp_path: Path, version: str) -> None:
    batch = _records(30)
    _write(tmp_path, batch, storage_version=version)
    got = {rec.id: vec for rec, vec in _read(tmp_path, batch_size=7)}
    assert batch.vectors is not None and sorted(got) == sorted(r.id for r in batch.records)
    assert all(np.array_equal(got[r.id], batch.vectors[i]) for i, r in enumerate(batch.records))  # type: ignore[arg-type]


def test_duplicates_last_write_wins_within_and_across_batches(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    try:
        sink.prepare(DIMS, "fake-8")
        first = _records(4)
        assert sink.write(first).duplicates == 0
        again = _records(3, start=2, seed=9)  # mem-0002, mem-0003 again, mem-0004 new
        again.records.append(Record(id="mem-0004", text="the later one", namespace="alpha"))
        assert again.vectors is not None
        again.vectors = np.vstack([again.vectors, np.full((1, DIMS), 2.0, dtype=np.float32)])
        again.has_vector = np.ones(4, dtype=bool)
        result = sink.write(again)
        assert (result.written, result.duplicates) == (4, 3)
        assert sink.count() == 5
        back = sink.fetch(["mem-0004", "mem-0002"])
        assert [r.id for r in back.records] == ["mem-0004", "mem-0002"]
        assert back.records[0].text == "the later one" and back.vectors is not None
        assert np.array_equal(back.vectors[0], np.full(DIMS, 2.0, dtype=np.float32))
        assert np.array_equal(back.vectors[1], again.vectors[0])
    finally:
        sink.close()


def test_resume_restores_an_append_loaded_table_to_the_committed_version(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    sink.prepare(DIMS, "fake-8")
    sink.write(_records(10))
    committed = sink.state()
    sink.write(_records(10, start=10))  # written, never checkpointed: the run was killed here
    sink.close()
    assert _db(tmp_path).open_table("mem").count_rows() == 20
    resumed = _sink(tmp_path, committed)
    try:
        assert resumed.count() == 10  # back to the checkpoint
        resumed.prepare(DIMS, "fake-8")
        result = resumed.write(_records(10, start=10))
        assert result.duplicates == 0 and resumed.append
        resumed.finalize()
        assert resumed.count() == 20
    finally:
        resumed.close()
    # a resume after finalize (killed before the run's last checkpoint): the dropped version is nothing to undo
    again = _sink(tmp_path, committed)
    again.close()
    assert _db(tmp_path).open_table("mem").count_rows() == 20


def test_a_lost_id_log_is_rebuilt_from_the_table(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    sink.prepare(DIMS, "fake-8")
    sink.write(_records(10))
    committed = sink.state()
    sink.close()
    sink.ids_path.unlink()
    resumed = _sink(tmp_path, committed)
    try:
        resumed.prepare(DIMS, "fake-8")
        result = resumed.write(_records(5, start=8))  # mem-0008, mem-0009 again: upserts, not second rows
        assert (result.written, result.duplicates) == (5, 2) and resumed.count() == 13
    finally:
        resumed.close()


def test_existing_table_is_upserted_and_checked(tmp_path: Path) -> None:
    _write(tmp_path, _records(6))
    sink = _sink(tmp_path)
    try:
        sink.prepare(DIMS, "fake-8")
        assert not sink.append  # the table held records: every batch is a merge_insert
        changed = _records(3, start=4, seed=5)
        changed.records[0].text = "changed"
        assert sink.write(changed).written == 3
        assert sink.count() == 7 and sink.fetch(["mem-0004"]).records[0].text == "changed"
    finally:
        sink.close()
    for kw, dims, message in (
        ({}, 4, "holds 8-d vectors, this run writes 4-d"),
        ({"metric": "l2"}, DIMS, "made for the cosine metric"),
    ):
        sink = _sink(tmp_path, **kw)
        try:
            with pytest.raises(InvalidInput, match=message):
                sink.prepare(dims, "fake-8")
        finally:
            sink.close()
    _db(tmp_path).create_table("foreign", data=[{"id": "a", "vector": [0.0] * DIMS}])
    sink = _sink(tmp_path, table="foreign")
    try:
        with pytest.raises(InvalidInput, match="not written by vexrun"):
            sink.prepare(DIMS, "fake-8")
    finally:
        sink.close()
    _write(tmp_path, _records(2), replace=True, metric="l2", table="foreign")
    assert _db(tmp_path).open_table("foreign").count_rows() == 2


def test_a_re_run_into_its_table_writes_only_what_the_table_does_not_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lancedb.table import LanceTable

    first = [_records(100, start=k * 100) for k in range(3)]
    for b in first:
        b.records[7].score = None
    _write(tmp_path, *first)
    _db(tmp_path).open_table("mem").delete("id IN ('mem-0005', 'mem-0050', 'mem-0099')")  # the target lost 3
    calls: list[tuple[str, list[str]]] = []
    add, merge = LanceTable.add, LanceTable.merge_insert

    def spy_add(self: Any, data: Any, *a: Any, **kw: Any) -> Any:
        calls.append(("add", data.column("id").to_pylist()))
        return add(self, data, *a, **kw)

    def spy_merge(self: Any, on: Any) -> Any:
        builder = merge(self, on)
        run = builder.execute

        def execute(data: Any, *a: Any, **kw: Any) -> Any:
            calls.append(("merge", data.column("id").to_pylist()))
            return run(data, *a, **kw)

        builder.execute = execute
        return builder

    monkeypatch.setattr(LanceTable, "add", spy_add)
    monkeypatch.setattr(LanceTable, "merge_insert", spy_merge)
    again = [_records(100, start=k * 100) for k in range(3)]
    for b in again:
        b.records[7].score = None
    again[1].records[50].text = "changed"  # mem-0150
    revert = _records(100, start=100).select([50])  # mem-0150 as the table held it, after the run changed it
    sink = _sink(tmp_path)
    try:
        sink.prepare(DIMS, "fake-8")
        assert not sink.append
        for b in (*again, revert):
            assert sink.write(to_store(b, CAPS)).written == len(b)
        sink.finalize()
    finally:
        sink.close()
    assert calls == [
        ("add", ["mem-0005", "mem-0050", "mem-0099"]),  # ids the table does not hold: appended
        ("merge", ["mem-0150"]),  # a record that differs
        ("merge", ["mem-0150"]),  # written again by this run: the last write wins, though the table held it so
    ]
    assert sink.unchanged == 296
    got = {rec.id: rec for rec, _ in _read(tmp_path)}
    assert len(got) == 300 and got["mem-0150"].text == "memory number 150"
    assert got["mem-0007"].score is None and got["mem-0008"].score == 8 / 3


def test_export_reads_the_version_it_started_on_and_resumes_there(tmp_path: Path) -> None:
    _write(tmp_path, _records(50))
    src = _source(tmp_path)
    try:
        it = src.batches(None, 20)
        first, cursor = next(it)
        assert len(first) == 20 and cursor["offset"] == 20
    finally:
        src.close()
    _write(tmp_path, _records(30, start=100), optimize=False)  # written behind the export's back
    resumed = _source(tmp_path)
    try:
        rest = [rec.id for batch, _ in resumed.batches(cursor, 20) for rec in batch.records]
    finally:
        resumed.close()
    assert sorted([r.id for r in first.records] + rest) == [f"mem-{i:04d}" for i in range(50)]
    # the namespace filter, from a cursor too
    src = _source(tmp_path, namespace="beta")
    try:
        parts = list(src.batches(None, 7))
        _, mid = parts[1]
        tail = [rec.id for batch, _ in src.batches(mid, 7) for rec in batch.records]
    finally:
        src.close()
    ids = [rec.id for batch, _ in parts for rec in batch.records]
    assert len(ids) == 40 and all(int(i[-4:]) % 2 == 1 for i in ids) and tail == ids[14:]
    # a version cleaned up since: one clear line
    from datetime import timedelta

    with pytest.warns(UserWarning, match="removes every version except the latest"):
        _db(tmp_path).open_table("mem").optimize(cleanup_older_than=timedelta(0))
    gone = _source(tmp_path)
    try:
        with pytest.raises(InvalidInput, match=r"version \d+, which this export started reading, no longer exists"):
            list(gone.batches(cursor, 20))
    finally:
        gone.close()


@pytest.mark.parametrize("namespace", [None, "beta"])
def test_partitions_read_the_serial_reads_batches(tmp_path: Path, namespace: str | None) -> None:
    """The ranges a distributed run reads (run.executor: ray) start where a serial read's batches start, pinned
    to the same version: read one after the other they give the same batches; a range resumes from its own
    cursors and stops at its end, even when the table was written to since."""
    _write(tmp_path, _records(1000), _records(234, start=1000))
    src = _source(tmp_path, namespace=namespace)
    try:
        # a write behind the ranges' back, once they are planned
        names, serial, split = partitioned_read(
            src, 3, 100, lambda: _write(tmp_path, _records(40, start=5000), optimize=False)
        )
        total = 1234 if namespace is None else 617
        cuts = (400, 800) if namespace is None else (200, 400)
        assert names == [f"rows 0-{cuts[0]}", f"rows {cuts[0]}-{cuts[1]}", f"rows {cuts[1]}-{total}"]
        assert split == serial and len({i for ids in split for i in ids}) == total
        assert src.partitions(1, 100) == [("all", None)]
    finally:
        src.close()


def test_foreign_tables_are_read_with_their_columns_as_metadata(tmp_path: Path) -> None:
    import datetime

    import pyarrow as pa

    rows = pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "emb": pa.FixedSizeListArray.from_arrays(pa.array(np.arange(8, dtype=np.float32)), 4),
            "text": ["hello", "world"],
            "metadata": [{"source": "lc", "page": 1}, {"source": "lc", "page": 2}],
            "when": [datetime.datetime(2026, 1, 1), None],
        }
    )
    _db(tmp_path).create_table("lc", data=rows)
    got = _read(tmp_path, table="lc")
    assert [r.id for r, _ in got] == ["1", "2"]
    rec, vec = got[0]
    assert rec.text == "hello" and rec.namespace is None and rec.dims == 4
    assert rec.metadata == {"metadata": {"source": "lc", "page": 1}, "when": "2026-01-01T00:00:00"}
    assert vec is not None and vec.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_read_back_after_a_run_and_after_connect(tmp_path: Path) -> None:
    batch = _records(20)
    sink = _sink(tmp_path)
    try:
        sink.prepare(DIMS, "fake-8")
        sink.write(batch)
        assert sink.count() == 20 and sink.count("alpha") == 10 and sink.namespaces() == ["alpha", "beta"]
        back = sink.fetch(["mem-0003", "nope", "mem-0001", "mem-0003"])
        assert [r.id for r in back.records] == ["mem-0003", "mem-0001", "mem-0003"]
        assert sink.fetch(["mem-0003"], namespace="alpha").records == []
        sink.finalize()
    finally:
        sink.close()
    reader = LanceDBSink(LanceDBSinkConfig(path="db", table="mem"), _ctx(tmp_path))
    reader.connect()
    try:
        assert reader.delete(["mem-0000", "mem-0001", "never", "it's"]) == 2
        assert reader.delete(["mem-0002"], namespace="beta") == 0
        assert reader.count() == 18 and reader.count("alpha") == 9
        got = reader.fetch(["mem-0002"])
        assert got.records[0].metadata == batch.records[2].metadata and got.records[0].text == "memory number 2"
    finally:
        reader.close()
    missing = LanceDBSink(LanceDBSinkConfig(path="db", table="absent"), _ctx(tmp_path))
    with pytest.raises(InvalidInput, match="'absent' .* does not exist"):
        missing.connect()


@pytest.mark.parametrize("metric", ["cosine", "l2", "dot"])
def test_search_ranks_by_the_table_metric_within_a_namespace(tmp_path: Path, metric: str) -> None:
    batch = _records(40)
    _write(tmp_path, batch, metric=metric)
    sink = LanceDBSink(LanceDBSinkConfig(path="db", table="mem"), _ctx(tmp_path))
    sink.connect()
    try:
        assert batch.vectors is not None
        query = batch.vectors[7] * 3
        hits = sink.search(query, "", 5, namespace="beta")
        assert hits[0].id == "mem-0007" and [h.rank for h in hits] == [1, 2, 3, 4, 5]
        assert all(h.namespace == "beta" for h in hits)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert hits[0].cosine == pytest.approx(1.0, abs=1e-6) and hits[0].metadata == batch.records[7].metadata
        vecs = batch.vectors
        if metric == "cosine":
            want = vecs @ query / (np.linalg.norm(vecs, axis=1) * np.linalg.norm(query))
        elif metric == "dot":
            want = vecs @ query
        else:
            want = -((vecs - query) ** 2).sum(axis=1)
        beta = [i for i in range(40) if i % 2]
        expected = sorted(beta, key=lambda i: -want[i])[:5]
        assert [h.id for h in hits] == [f"mem-{i:04d}" for i in expected]
    finally:
        sink.close()


def test_vector_index_is_built_when_the_table_is_big_enough(tmp_path: Path) -> None:
    _write(tmp_path, _records(300), index="ivf_pq", index_min_rows=1000)
    assert {ix.index_type for ix in _db(tmp_path).open_table("mem").list_indices()} == {"BTree"}
    more = _records(600, start=300)
    _write(tmp_path, more, index="ivf_flat", index_min_rows=500)
    tbl = _db(tmp_path).open_table("mem")
    assert {ix.index_type for ix in tbl.list_indices()} == {"BTree", "IvfFlat"}
    sink = LanceDBSink(LanceDBSinkConfig(path="db", table="mem"), _ctx(tmp_path))
    sink.connect()
    try:
        assert more.vectors is not None
        assert sink.search(more.vectors[150], "", 3)[0].id == "mem-0450"
    finally:
        sink.close()


def test_records_lancedb_cannot_take_are_rejected_with_a_reason(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    try:
        sink.prepare(DIMS, "fake-8")
        batch = _records(4)
        assert batch.has_vector is not None
        batch.has_vector[1] = False
        batch.records[2].text = "bad \ud800 surrogate"
        result = sink.write(batch)
        assert result.written == 2
        assert result.rejected == {
            "mem-0001": "no vector (a LanceDB table of vexrun holds a vector for every record)",
            "mem-0002": "text is not valid UTF-8 (a lone surrogate)",
        }
        wrong = Batch(records=_records(1).records, vectors=np.ones((1, 3), dtype=np.float32))
        assert "3 dims" in next(iter(sink.write(wrong).rejected.values()))
        assert sink.count() == 2
    finally:
        sink.close()


def test_errors_are_one_clear_line_and_check_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        LanceDBSink(LanceDBSinkConfig(path="afile", table="x"), _ctx(tmp_path)).open(None)
    with pytest.raises(UsageError, match="no such directory"):
        LanceDBSource(LanceDBSourceConfig(path="nothing", table="x"), _ctx(tmp_path)).open()
    sink = LanceDBSink(LanceDBSinkConfig(path="db", table="mem"), _ctx(tmp_path))
    assert sink.check().endswith("the database does not exist yet (a run creates it)")
    assert not (tmp_path / "db").exists()
    holder = _sink(tmp_path)
    try:
        with pytest.raises(LockHeld, match="another run is writing"):
            _sink(tmp_path)
        assert "the table does not exist yet" in LanceDBSink(holder.cfg, _ctx(tmp_path)).check()
    finally:
        holder.close()
    _write(tmp_path, _records(3))
    assert (
        LanceDBSink(LanceDBSinkConfig(path="db", table="mem"), _ctx(tmp_path))
        .check()
        .endswith("reachable, 3 rows, 8-d cosine")
    )
    assert "readable, 3 rows" in LanceDBSource(LanceDBSourceConfig(path="db", table="mem"), _ctx(tmp_path)).check()
    with pytest.raises(InvalidInput, match="'nope' .* does not exist"):
        _source(tmp_path, table="nope")
