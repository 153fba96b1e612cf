"""The embedded local store (``type: sqlite`` / ``local``) as a sink and a source, on real SQLite files."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from conftest import partitioned_read
from vexrun.connectors.base import Edge, RunContext, group_ranges, page_ranges
from vexrun.connectors.sqlite.search import search
from vexrun.connectors.sqlite_store import SqliteSink, SqliteSinkConfig, SqliteSource, SqliteSourceConfig
from vexrun.errors import InvalidInput, UsageError
from vexrun.registry import resolve
from vexrun.testing.data import synthetic_batches
from vexrun.testing.fake_embedder import fake_vector
from vexrun.vmig.batch import Batch
from vexrun.vmig.model import Record

SPEC = {"type": "fake", "dims": 8}


def make_ctx(tmp_path: Path, spec: dict[str, Any] | None = SPEC) -> RunContext:
    return RunContext(state_dir=tmp_path / "state", recipe_dir=tmp_path, embedder_spec=spec)


def open_sink(tmp_path: Path, state: dict[str, Any] | None = None, **cfg: Any) -> SqliteSink:
    sink = SqliteSink(SqliteSinkConfig(path=cfg.pop("path", "store.db"), **cfg), make_ctx(tmp_path))
    sink.open(state)
    return sink


def write_store(
    tmp_path: Path, batches: list[Batch], dims: int | None = 8, model: str | None = "fake-8", **cfg: Any
) -> Path:
    sink = open_sink(tmp_path, **cfg)
    try:
        sink.prepare(dims, model)
        for batch in batches:
            result = sink.write(batch)
            assert not result.rejected
        sink.finalize()
    finally:
        sink.close()
    return tmp_path / cfg.get("path", "store.db")


def read_all(
    tmp_path: Path, *, namespace: str | None = None, batch_size: int = 1000, path: str = "store.db"
) -> list[Batch]:
    source = SqliteSource(SqliteSourceConfig(path=path, namespace=namespace), make_ctx(tmp_path))
    source.open()
    try:
        return [batch for batch, _ in source.batches(None, batch_size)]
    finally:
        source.close()


def sql(path: Path, query: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(query, params).fetchall()
    finally:
        conn.close()


def text_batch(texts: dict[str, str], dims: int = 8, namespace: str | None = None) -> Batch:
    records = [Record(id=rid, text=t, model="fake-8", dims=dims, namespace=namespace) for rid, t in texts.items()]
    return Batch.from_records(records, [fake_vector(t, dims) for t in texts.values()])


def fts_ok(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        conn.execute("INSERT INTO records_fts (records_fts, rank) VALUES ('integrity-check', 1)")
    finally:
        conn.close()


# -- round trip ------------------------------------------------------------------------------------------


def tricky_batch() -> Batch:
    specials = np.array(
        [0.0, -0.0, 1e-45, -3.4028235e38, 3.4028235e38, 1.1754944e-38, 0.1, -1.0 / 3.0], dtype=np.float32
    )
    records = [
        Record(
            id="a/1 ünïcode 🧠",
            text="The user drinks green tea\nevery morning",
            model="fake-8",
            dims=8,
            namespace="personal",
            metadata={"tags": ["tea", "morning"], "turn": 3, "pinned": True, "nested": {"a": [1, {"b": None}]}},
            created_at="2026-01-02T03:04:05.678Z",
            source_store="claude-export",
            modality="text",
            score=0.8125,
            vex_version="1.0.0",
            extra={"x_custom": {"kept": [1, 2.5, "three"]}, "big": 2**70},
        ),
        Record(id="b", text=None, model="fake-8", dims=8, metadata={}, extra=None),  # vector only
        Record(id="c", text="", namespace=None, metadata=None, score=-0.0),  # text only (empty), no vector
        Record(id="d", text="plain", dims=None, metadata={"float": 1e-300, "neg": -12345678901234}),
    ]
    vectors = [specials, fake_vector("b", 8), None, None]
    return Batch.from_records(records, vectors)


def test_round_trip_is_lossless(tmp_path: Path) -> None:
    batch = tricky_batch()
    write_store(tmp_path, [batch])
    (back,) = read_all(tmp_path)
    assert back.records == batch.records
    assert back.has_vector is not None and back.vectors is not None and batch.vectors is not None
    assert back.has_vector.tolist() == [True, True, False, False]
    assert back.vectors.dtype == np.float32
    assert back.vectors[:2].view(np.uint32).tolist() == batch.vectors[:2].view(np.uint32).tolist()


def test_round_trip_of_synthetic_data_keeps_every_vector_bit_exact(tmp_path: Path) -> None:
    batches = list(synthetic_batches(2500, dims=384, batch_size=1000))
    write_store(tmp_path, batches, dims=384, model="all-MiniLM-L6-v2")
    back = read_all(tmp_path, batch_size=700)
    assert [len(b) for b in back] == [700, 700, 700, 400]
    got = [r for b in back for r in b.records]
    # like the .vmig writer, the store records dims = len(vector) for records that have one
    want = [msgspec.structs.replace(r, dims=384) for b in batches for r in b.records]
    assert got == want
    got_vecs = np.concatenate([b.vectors for b in back if b.vectors is not None])
    want_vecs = np.concatenate([b.vectors for b in batches if b.vectors is not None])
    assert np.array_equal(got_vecs.view(np.uint32), want_vecs.view(np.uint32))


def test_the_store_is_marked_and_records_its_meta(tmp_path: Path) -> None:
    path = write_store(tmp_path, [text_batch({"a": "alpha"})])
    assert sql(path, "PRAGMA application_id") == [(0x76657872,)]
    assert sql(path, "PRAGMA user_version") == [(1,)]
    assert sql(path, "PRAGMA journal_mode") == [("wal",)]
    meta = {k: v for k, v in sql(path, "SELECT key, value FROM meta")}
    assert meta["dims"] == "8" and meta["model"] == '"fake-8"' and meta["metric"] == '"cosine"'
    assert meta["embedder_spec"] == '{"type":"fake","dims":8}'
    assert not (tmp_path / "store.db-wal").exists() or (tmp_path / "store.db-wal").stat().st_size == 0


# -- idempotence and updates ------------------------------------------------------------------------------


def test_rewriting_a_batch_changes_nothing(tmp_path: Path) -> None:
    batches = list(synthetic_batches(1500, dims=16, batch_size=500))
    path = write_store(tmp_path, batches, dims=16, model="all-MiniLM-L6-v2")
    before = sql(path, "SELECT seq, id, updated_at, text FROM records ORDER BY seq")
    write_store(tmp_path, batches[1:], dims=16, model="all-MiniLM-L6-v2")  # a resumed run re-writes batches
    assert sql(path, "SELECT seq, id, updated_at, text FROM records ORDER BY seq") == before
    assert sql(path, "SELECT count(*) FROM records") == [(1500,)]
    fts_ok(path)


def test_an_update_replaces_text_vector_and_fts_entry(tmp_path: Path) -> None:
    path = write_store(tmp_path, [text_batch({"m1": "the user drinks espresso", "m2": "deploy on tuesday"})])
    write_store(tmp_path, [text_batch({"m1": "the user switched to matcha"})])
    assert sql(path, "SELECT count(*) FROM records") == [(2,)]
    assert [h.id for h in search(path, "matcha", mode="bm25")] == ["m1"]
    assert search(path, "espresso", mode="bm25") == []
    (hit,) = search(path, "the user switched to matcha", mode="vector", k=1)
    assert hit.id == "m1" and hit.cosine == pytest.approx(1.0)
    # text removed: the record leaves the index; text back: it returns
    write_store(tmp_path, [Batch(records=[Record(id="m2", text=None)])])
    assert search(path, "tuesday", mode="bm25") == []
    write_store(tmp_path, [Batch(records=[Record(id="m2", text="deploy on friday")])])
    assert [h.id for h in search(path, "friday", mode="bm25")] == ["m2"]
    fts_ok(path)


def test_duplicate_ids_in_one_batch_keep_the_last(tmp_path: Path) -> None:
    batch = Batch(records=[Record(id="x", text="first"), Record(id="x", text="second")])
    path = write_store(tmp_path, [batch])
    assert sql(path, "SELECT id, text FROM records") == [("x", "second")]
    fts_ok(path)


def test_edges_are_upserted(tmp_path: Path) -> None:
    sink = open_sink(tmp_path)
    try:
        sink.prepare(8, "fake-8")
        sink.write_edges([Edge("a", "b", "temporal"), Edge("a", "c", "tag", 0.5, {"tag": "tea"})])
        sink.write_edges([Edge("a", "b", "temporal", 0.25), Edge("a", "b", "entity")])
        assert sink.state() == {"records": 0, "edges": 4}
    finally:
        sink.close()
    rows = sql(tmp_path / "store.db", "SELECT src, dst, type, weight, metadata FROM edges ORDER BY dst, type")
    assert rows == [
        ("a", "b", "entity", 1.0, None),
        ("a", "b", "temporal", 0.25, None),
        ("a", "c", "tag", 0.5, '{"tag":"tea"}'),
    ]


# -- namespaces --------------------------------------------------------------------------------------------


def test_namespaces_default_filter_and_estimate(tmp_path: Path) -> None:
    write_store(tmp_path, [text_batch({"w1": "work one", "w2": "work two"}, namespace="work")])
    write_store(tmp_path, [text_batch({"n1": "no namespace"})], namespace="inbox")
    assert [r.id for b in read_all(tmp_path, namespace="work") for r in b.records] == ["w1", "w2"]
    assert [r.namespace for b in read_all(tmp_path) for r in b.records] == ["work", "work", "inbox"]
    source = SqliteSource(SqliteSourceConfig(path="store.db", namespace="work"), make_ctx(tmp_path))
    source.open()
    try:
        assert source.estimate() == 2
        assert source.identity() == "sqlite:store.db#work"
    finally:
        source.close()


@pytest.mark.parametrize("namespace", [None, "travel"])
def test_partitions_read_the_serial_reads_batches(tmp_path: Path, namespace: str | None) -> None:
    """The seq ranges a distributed run reads start where a serial read's batches start: read one after the
    other they give the same batches; each range resumes from its own cursors and stops at its end."""
    write_store(tmp_path, list(synthetic_batches(1000, dims=8, batch_size=250)), model="all-MiniLM-L6-v2")
    source = SqliteSource(SqliteSourceConfig(path="store.db", namespace=namespace), make_ctx(tmp_path))
    source.open()
    try:
        names, serial, split = partitioned_read(source, 3, 64)
        assert len(names) == 3 and all(name.startswith("seq ") for name in names)
        assert split == serial
        assert source.partitions(1, 64) == [("all", None)]
    finally:
        source.close()


def test_page_ranges_start_on_pages() -> None:
    assert page_ranges(1234, 100, 3) == [(0, 400), (400, 800), (800, 1234)]
    assert page_ranges(1234, 100, 1) == [(0, 1234)] and page_ranges(150, 100, 4) == [(0, 100), (100, 150)]
    assert page_ranges(99, 100, 4) == [(0, 99)] and page_ranges(0, 100, 4) == [(0, 0)]
    ranges = page_ranges(10_007, 64, 7)
    assert all(a % 64 == 0 for a, _ in ranges) and ranges[-1][1] == 10_007
    assert all(b == c for (_, b), (c, _) in zip(ranges, ranges[1:], strict=False))


def test_group_ranges_share_the_records_in_runs_of_items() -> None:
    """Tenants or namespaces (weights: their record counts) in runs of consecutive items of about equal sums."""
    assert group_ranges([10, 10, 10, 10], 2) == [(0, 2), (2, 4)]
    assert group_ranges([100, 1, 1, 1], 2) == [(0, 1), (1, 4)]  # one big item is a run of its own
    assert group_ranges([5, 5, 5], 8) == [(0, 1), (1, 2), (2, 3)]  # never more runs than items
    assert group_ranges([5], 4) == [(0, 1)] and group_ranges([], 4) == [(0, 0)] and group_ranges([0, 0], 2) == [(0, 2)]
    assert group_ranges([3, 3, 3], 1) == [(0, 3)]
    runs = group_ranges([7, 1, 9, 2, 2, 30, 4, 4, 6], 4)
    assert runs[0][0] == 0 and runs[-1][1] == 9 and len(runs) <= 4
    assert all(b == c and a < b for (a, b), (c, _) in zip(runs, runs[1:], strict=False))


# -- resume ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("namespace", [None, "travel"])
def test_reading_from_every_cursor_continues_exactly(tmp_path: Path, namespace: str | None) -> None:
    write_store(tmp_path, list(synthetic_batches(1000, dims=8, batch_size=250)), model="all-MiniLM-L6-v2")
    source = SqliteSource(SqliteSourceConfig(path="store.db", namespace=namespace), make_ctx(tmp_path))
    source.open()
    try:
        one_pass = list(source.batches(None, 64))
        ids = [r.id for b, _ in one_pass for r in b.records]
        assert len(ids) == (1000 if namespace is None else 333)
        for i, (_, cursor) in enumerate(one_pass):
            rest = [r.id for b, _ in source.batches(cursor, 64) for r in b.records]
            assert ids[: sum(len(b) for b, _ in one_pass[: i + 1])] + rest == ids
            assert rest == [r.id for b, _ in one_pass[i + 1 :] for r in b.records]
    finally:
        source.close()


def test_updates_keep_a_records_position(tmp_path: Path) -> None:
    write_store(tmp_path, [text_batch({"a": "one", "b": "two", "c": "three"})])
    write_store(tmp_path, [text_batch({"a": "one, edited"})])
    assert [r.id for b in read_all(tmp_path) for r in b.records] == ["a", "b", "c"]


# -- prepare: dims, model, replace -------------------------------------------------------------------------


def test_prepare_refuses_other_dims_or_model(tmp_path: Path) -> None:
    write_store(tmp_path, [text_batch({"a": "alpha"})])
    for dims, model in ((16, "fake-8"), (8, "other-model")):
        sink = open_sink(tmp_path)
        try:
            with pytest.raises(InvalidInput) as err:
                sink.prepare(dims, model)
        finally:
            sink.close()
        assert "holds 8-d vectors of model 'fake-8'" in str(err.value) and "replace: true" in str(err.value)
        assert "\n" not in str(err.value)
    sink = open_sink(tmp_path)
    try:
        sink.prepare(8, "fake-8")  # the same model is fine
    finally:
        sink.close()


def test_replace_empties_the_store_on_a_fresh_run_only(tmp_path: Path) -> None:
    path = write_store(tmp_path, [text_batch({"a": "alpha", "z": "zeta"})])
    sink = open_sink(tmp_path)
    try:
        sink.write_edges([Edge("a", "z", "temporal")])
    finally:
        sink.close()
    reader = sqlite3.connect(path)  # a reader that has the old store open keeps reading it
    old_inode = path.stat().st_ino
    sink = open_sink(tmp_path, replace=True)
    try:
        sink.prepare(4, "fake-4")
        sink.write(text_batch({"b": "beta"}, dims=4))
    finally:
        sink.close()
    assert reader.execute("SELECT count(*) FROM records").fetchone() == (2,)
    reader.close()
    assert path.stat().st_ino != old_inode  # a new file, not the old one emptied page by page
    assert sql(path, "SELECT count(*) FROM edges") == [(0,)]
    assert sql(path, "SELECT value FROM meta WHERE key = 'dims'") == [("4",)]
    sink = open_sink(tmp_path, state={"records": 1}, replace=True)  # resumed: keeps what the run wrote
    try:
        sink.prepare(4, "fake-4")
        sink.write(text_batch({"c": "gamma"}, dims=4))
        assert sink.state()["records"] == 2
    finally:
        sink.close()
    assert sql(path, "SELECT id, dims FROM records ORDER BY seq") == [("b", 4), ("c", 4)]
    assert [h.id for h in search(path, "alpha beta", mode="bm25")] == ["b"]
    fts_ok(path)


def test_prepare_refuses_a_metric_other_than_cosine(tmp_path: Path) -> None:
    sink = open_sink(tmp_path)
    try:
        with pytest.raises(InvalidInput, match="cosine only"):
            sink.prepare(8, "fake-8", "l2")
    finally:
        sink.close()


def test_write_without_prepare_learns_dims_and_model(tmp_path: Path) -> None:
    sink = open_sink(tmp_path)
    try:
        sink.write(text_batch({"a": "alpha"}))
        result = sink.write(text_batch({"b": "beta"}, dims=4))
    finally:
        sink.close()
    assert result.written == 0 and result.rejected == {"b": "vector has 4 dims, the store holds 8-d vectors"}
    meta = dict(sql(tmp_path / "store.db", "SELECT key, value FROM meta"))
    assert meta["dims"] == "8" and meta["model"] == '"fake-8"'


def test_unserialisable_metadata_is_rejected_not_fatal(tmp_path: Path) -> None:
    batch = Batch(records=[Record(id="ok", text="fine"), Record(id="bad", text="x", metadata={"s": {1, 2}})])  # type: ignore[dict-item]
    sink = open_sink(tmp_path)
    try:
        result = sink.write(batch)
    finally:
        sink.close()
    assert result.written == 1 and list(result.rejected) == ["bad"]


# -- crashes -----------------------------------------------------------------------------------------------


class ExplodingSink(SqliteSink):
    """Fails inside the write transaction, after every row of the batch went in."""

    def _learn(self, batch: Batch, rows: list[tuple[Any, ...]]) -> None:
        raise RuntimeError("boom")


def test_a_failure_inside_the_transaction_leaves_no_trace(tmp_path: Path) -> None:
    path = write_store(tmp_path, [text_batch({"a": "alpha"})])
    sink = ExplodingSink(SqliteSinkConfig(path="store.db"), make_ctx(tmp_path))
    sink.open(None)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            sink.write(text_batch({"a": "changed", "b": "beta", "c": "gamma"}))
    finally:
        sink.close()
    assert sql(path, "SELECT id, text FROM records") == [("a", "alpha")]
    assert search(path, "beta changed", mode="bm25") == []
    fts_ok(path)


_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from vexrun.connectors.base import RunContext
    from vexrun.connectors.sqlite_store import SqliteSink, SqliteSinkConfig
    from vexrun.testing.data import synthetic_batches

    d = Path(sys.argv[1])
    sink = SqliteSink(SqliteSinkConfig(path="store.db"), RunContext(state_dir=d, recipe_dir=d))
    sink.open(None)
    sink.prepare(64, "all-MiniLM-L6-v2")
    for i, batch in enumerate(synthetic_batches(400_000, dims=64, batch_size=4000)):
        sink.write(batch)
        print(i, flush=True)
    """
)


@pytest.mark.slow
def test_sigkill_during_a_large_write_leaves_a_consistent_store(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        committed = [proc.stdout.readline() for _ in range(3)]  # three batches are durable
        assert committed[-1].strip() == "2", committed
        rng = np.random.default_rng()
        time.sleep(float(rng.uniform(0.0, 0.15)))  # somewhere inside a later batch
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    path = tmp_path / "store.db"
    fts_ok(path)
    (count,) = sql(path, "SELECT count(*) FROM records")[0]
    assert count >= 3 * 4000 and count % 4000 == 0  # whole batches only
    (indexed,) = sql(path, "SELECT count(*) FROM records_fts WHERE records_fts MATCH 'memory OR agent OR vector'")[0]
    assert indexed <= count
    # the store keeps working: a resumed run re-writes the batch and the count moves on by whole batches
    batches = list(synthetic_batches(count + 4000, dims=64, batch_size=4000))
    write_store(tmp_path, batches[-2:], dims=64, model="all-MiniLM-L6-v2")
    assert sql(path, "SELECT count(*) FROM records") == [(count + 4000,)]
    fts_ok(path)


# -- errors ------------------------------------------------------------------------------------------------


def test_source_errors_are_one_clear_line(tmp_path: Path) -> None:
    def open_source(name: str) -> None:
        source = SqliteSource(SqliteSourceConfig(path=name), make_ctx(tmp_path))
        try:
            source.open()
        finally:
            source.close()

    with pytest.raises(UsageError, match="no such file"):
        open_source("missing.db")
    (tmp_path / "notes.txt").write_text("not a database at all, just some text " * 50)
    with pytest.raises(InvalidInput, match="not a vexrun store"):
        open_source("notes.txt")
    conn = sqlite3.connect(tmp_path / "other.db")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(InvalidInput, match="another application"):
        open_source("other.db")
    (tmp_path / "adir").mkdir()
    with pytest.raises(UsageError, match="is a directory"):
        open_source("adir")


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = write_store(tmp_path, [text_batch({"a": "alpha"})])
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 7")
    conn.commit()
    conn.close()
    with pytest.raises(InvalidInput, match="schema version 7, newer than this vexrun reads"):
        read_all(tmp_path)
    sink = SqliteSink(SqliteSinkConfig(path="store.db"), make_ctx(tmp_path))
    with pytest.raises(InvalidInput, match="upgrade vexrun"):
        sink.open(None)
    sink.close()


def test_sink_refuses_a_foreign_database_and_an_impossible_directory(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "app.db")
    conn.execute("CREATE TABLE users (name)")
    conn.commit()
    conn.close()
    (tmp_path / "afile").write_text("x")
    for path, error in (("app.db", InvalidInput), ("afile/store.db", UsageError)):
        sink = SqliteSink(SqliteSinkConfig(path=path), make_ctx(tmp_path))
        with pytest.raises(error):
            sink.open(None)
        sink.close()
    assert sql(tmp_path / "app.db", "PRAGMA journal_mode") == [("delete",)]  # untouched
    sink = SqliteSink(SqliteSinkConfig(path="new/dir/store.db"), make_ctx(tmp_path))
    sink.open(None)  # a missing output directory is made, like `mkdir -p`
    sink.close()
    assert (tmp_path / "new" / "dir" / "store.db").exists()


def test_a_locked_store_is_a_connect_error(tmp_path: Path) -> None:
    from vexrun.errors import ConnectError

    path = write_store(tmp_path, [text_batch({"a": "alpha"})])
    blocker = sqlite3.connect(path, isolation_level=None)
    sink = open_sink(tmp_path)
    try:
        assert sink.conn is not None
        sink.conn.execute("PRAGMA busy_timeout = 50")
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(ConnectError, match="database is locked"):
            sink.write(text_batch({"b": "beta"}))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        sink.close()


# -- registration ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["source", "sink"])
def test_registered_as_sqlite_and_local(kind: str) -> None:
    from pydantic import ValidationError

    plugin = resolve(kind, "local")  # type: ignore[arg-type]
    assert plugin is resolve(kind, "sqlite")  # type: ignore[arg-type]
    config = plugin.config_model().model_validate({"type": "local", "path": "memory.db"})
    assert config.path == "memory.db"
    assert plugin.implementation() in (SqliteSink, SqliteSource)
    with pytest.raises(ValidationError):
        plugin.config_model().model_validate({"type": "local", "path": "x.db", "paht": "y"})
