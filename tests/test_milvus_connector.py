"""The Milvus connector against a real Milvus standalone server (authorization on), plus Milvus Lite.

The server is started once for this module; a test that needs it fails (never skips) when it cannot start.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import partitioned_read, run_cli
from vexrun.connectors.base import RunContext
from vexrun.connectors.milvus import MilvusSink, MilvusSinkConfig, MilvusSource, MilvusSourceConfig
from vexrun.connectors.milvus import sink as sink_module
from vexrun.connectors.milvus.common import literal, sdk
from vexrun.errors import ConnectError, InvalidInput, UsageError
from vexrun.testing.services import milvus as service
from vexrun.verify.ledger import Ledger
from vexrun.verify.reconcile import reconcile
from vexrun.vmig.batch import Batch
from vexrun.vmig.model import Record

DIMS = 8
TOKEN = service.DEFAULT_TOKEN


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[service.MilvusHandle]:
    handle = service.start(tmp_path_factory.mktemp("milvus"), auth=True)
    try:
        yield handle
    finally:
        service.stop(handle)


@pytest.fixture
def client(server: service.MilvusHandle) -> Iterator[Any]:
    c = sdk().MilvusClient(uri=server.uri, token=TOKEN)
    yield c
    c.close()


def ctx(tmp_path: Path, spec: dict[str, Any] | None = None) -> RunContext:
    return RunContext(state_dir=tmp_path / "state", recipe_dir=tmp_path, embedder_spec=spec)


def coll() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


def sink_for(server: service.MilvusHandle, tmp_path: Path, collection: str, **cfg: Any) -> MilvusSink:
    spec = cfg.pop("spec", None)
    config = MilvusSinkConfig(uri=server.uri, token=TOKEN, collection=collection, **cfg)  # type: ignore[arg-type]
    return MilvusSink(config, ctx(tmp_path, spec))


def source_for(server: service.MilvusHandle, tmp_path: Path, collection: str, **cfg: Any) -> MilvusSource:
    config = MilvusSourceConfig(uri=server.uri, token=TOKEN, collection=collection, **cfg)  # type: ignore[arg-type]
    return MilvusSource(config, ctx(tmp_path))


def records(n: int, *, seed: int = 0, prefix: str = "r", namespace: str | None = "alpha") -> Batch:
    rng = np.random.default_rng(seed)
    recs = [
        Record(
            id=f"{prefix}{i:05d}",
            text=f"memory {i}",
            model="fake-8",
            namespace=namespace,
            metadata={"i": i, "w": i / 7, "tags": ["a", "b"], "nested": {"k": [1, None]}},
            created_at="2026-01-02T03:04:05Z",
            score=i / 3,
        )
        for i in range(n)
    ]
    return Batch.from_records(recs, list(rng.standard_normal((n, DIMS)).astype(np.float32)))


def write(server: service.MilvusHandle, tmp_path: Path, collection: str, *batches: Batch, **cfg: Any) -> MilvusSink:
    sink = sink_for(server, tmp_path, collection, **cfg)
    sink.open(None)
    try:
        sink.prepare(DIMS, "fake-8")
        for batch in batches:
            result = sink.write(batch)
            assert not result.rejected, result.rejected
        sink.finalize()
    finally:
        sink.close()
    return sink


def read(
    server: service.MilvusHandle, tmp_path: Path, collection: str, batch_size: int = 1000, **cfg: Any
) -> tuple[list[Record], np.ndarray, list[dict[str, Any]]]:
    source = source_for(server, tmp_path, collection, **cfg)
    source.open()
    recs: list[Record] = []
    vecs: list[np.ndarray] = []
    cursors: list[dict[str, Any]] = []
    try:
        for batch, cursor in source.batches(None, batch_size):
            recs.extend(batch.records)
            assert batch.vectors is not None
            vecs.append(batch.vectors)
            cursors.append(cursor)
    finally:
        source.close()
    return recs, (np.concatenate(vecs) if vecs else np.zeros((0, DIMS), np.float32)), cursors


def count(client: Any, collection: str) -> int:
    rows = client.query(collection, filter="", output_fields=["count(*)"], consistency_level="Strong")
    return int(rows[0]["count(*)"])


# -- without a server ------------------------------------------------------------------------------------


def test_importing_the_connector_loads_no_sdk() -> None:
    code = (
        "import sys, vexrun.connectors.milvus as m; m.MilvusSinkConfig(collection='c'); "
        "print(sorted(k for k in sys.modules if k.split('.')[0] in ('pymilvus', 'grpc', 'milvus_lite')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_config_validates_uri_and_hides_the_token() -> None:
    cfg = MilvusSinkConfig(uri="https://in01.example.zillizcloud.com", token="user:secret", collection="c")  # type: ignore[arg-type]
    assert "secret" not in repr(cfg) and "secret" not in str(cfg.model_dump())
    assert MilvusSourceConfig(uri="data/mem.db", collection="c").uri == "data/mem.db"
    with pytest.raises(ValueError, match="http"):
        MilvusSinkConfig(uri="localhost:19530", collection="c")
    assert MilvusSinkConfig(type="zilliz", collection="c").type == "zilliz"


def test_literal_escapes_strings() -> None:
    assert literal('a"b\\c\n') == '"a\\"b\\\\c\\n"'
    assert literal("émoji-🙂") == '"émoji-🙂"'
    assert literal(42) == "42"


def test_unreachable_server_fails_fast(tmp_path: Path) -> None:
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = MilvusSink(MilvusSinkConfig(uri=f"http://127.0.0.1:{port}", collection="c"), ctx(tmp_path))
    t0 = time.monotonic()
    with pytest.raises(ConnectError, match=rf"cannot reach milvus at http://127.0.0.1:{port} \(connection refused\)"):
        sink.open(None)
    assert time.monotonic() - t0 < 5
    sink.close()


# -- against the server ----------------------------------------------------------------------------------


def test_wrong_token_is_one_line_without_the_secret(server: service.MilvusHandle, tmp_path: Path) -> None:
    cfg = MilvusSinkConfig(uri=server.uri, token="root:hunter2-wrong", collection="c")  # type: ignore[arg-type]
    sink = MilvusSink(cfg, ctx(tmp_path))
    with pytest.raises(ConnectError) as info:
        sink.open(None)
    assert str(info.value).startswith(f"milvus at {server.uri} refused the credentials")
    assert "hunter2" not in str(info.value)
    sink.close()


def test_round_trip_is_lossless_and_bit_exact(server: service.MilvusHandle, tmp_path: Path) -> None:
    special = np.array(
        [[0.1, -0.0, 1e-45, 3.4028235e38, -1.17549435e-38, 1 / 3, 7.0, np.float32(np.pi)]], dtype=np.float32
    )
    odd = [
        Record(id='quote"and\\back', text=None, namespace=None, metadata=None),
        Record(id="empty-text", text="", namespace="", metadata={}, extra={"x": [1, {"y": None}]}),
        Record(id="emoji-🙂\nnewline", text="ünï ✓", model="m", modality="text", vex_version="1.0.0", score=0.0),
        Record(id="x" * 512, text="long id", source_store="chroma", created_at="2026-05-06T07:08:09.123Z"),
    ]
    batch = Batch.from_records(odd, [special[0]] * len(odd))
    name = coll()
    write(server, tmp_path, name, batch, records(30))
    recs, vecs, _ = read(server, tmp_path, name, batch_size=7)
    by_id = {r.id: (r, vecs[i]) for i, r in enumerate(recs)}
    assert len(by_id) == 34
    for rec in odd:
        back, vec = by_id[rec.id]
        assert np.array_equal(vec.view(np.uint32), special[0].view(np.uint32))
        for field in ("text", "namespace", "metadata", "model", "created_at", "source_store", "modality"):
            assert getattr(back, field) == getattr(rec, field), (rec.id, field)
        assert back.score == rec.score and back.vex_version == rec.vex_version and back.extra == rec.extra
        assert back.dims == DIMS
    src = records(30)
    for i, rec in enumerate(src.records):
        back, vec = by_id[rec.id]
        assert back.metadata == rec.metadata and back.score == rec.score
        assert np.array_equal(vec.view(np.uint32), src.vectors[i].view(np.uint32))  # type: ignore[index]


def test_upsert_is_idempotent_and_updates(server: service.MilvusHandle, tmp_path: Path, client: Any) -> None:
    name = coll()
    batch = records(500)
    sink = sink_for(server, tmp_path, name, concurrency=3)
    sink.open(None)
    try:
        sink.prepare(DIMS, "fake-8")
        for _ in range(3):
            assert sink.write(batch).written == 500
        changed = Batch.from_records(
            [Record(id="r00007", text="changed", metadata={"v": 2})], [np.ones(DIMS, dtype=np.float32)]
        )
        sink.write(changed)
        sink.finalize()
        assert sink.state() == {"records": 1501}
    finally:
        sink.close()
    assert count(client, name) == 500
    recs, vecs, _ = read(server, tmp_path, name)
    i = [r.id for r in recs].index("r00007")
    assert recs[i].text == "changed" and recs[i].metadata == {"v": 2} and vecs[i].tolist() == [1.0] * DIMS


def test_prepare_refuses_other_dims_metric_model_and_foreign_collections(
    server: service.MilvusHandle, tmp_path: Path, client: Any
) -> None:
    name = coll()
    write(server, tmp_path, name, records(10))
    cases = [
        ({"dims": 16, "model": "fake-8"}, {}, "holds 8-d vectors, this run writes 16-d"),
        ({"dims": DIMS, "model": "fake-8"}, {"metric": "l2"}, "uses the cosine metric, this run asks for l2"),
        ({"dims": DIMS, "model": "other"}, {}, "holds vectors of model 'fake-8', this run writes 'other'"),
    ]
    for args, cfg, message in cases:
        sink = sink_for(server, tmp_path, name, **cfg)
        sink.open(None)
        with pytest.raises(InvalidInput, match=message) as info:
            sink.prepare(args["dims"], args["model"])  # type: ignore[arg-type]
        assert "replace: true" in str(info.value)
        sink.close()
    # replace: true drops it on a fresh run, not on a resumed one
    sink = sink_for(server, tmp_path, name, replace=True)
    sink.open({"records": 10})
    with pytest.raises(InvalidInput, match="16-d"):
        sink.prepare(16, "fake-16")
    sink.close()
    sink = sink_for(server, tmp_path, name, replace=True)
    sink.open(None)
    sink.prepare(16, "fake-16")
    sink.close()
    assert client.describe_collection(name)["fields"][1]["params"]["dim"] == 16
    # a collection vexrun did not write is never touched
    foreign = coll()
    schema = sdk().MilvusClient.create_schema(auto_id=True)
    schema.add_field("pk", sdk().DataType.INT64, is_primary=True)
    schema.add_field("emb", sdk().DataType.FLOAT_VECTOR, dim=DIMS)
    client.create_collection(foreign, schema=schema)
    sink = sink_for(server, tmp_path, foreign)
    sink.open(None)
    with pytest.raises(InvalidInput, match="was not written by vexrun"):
        sink.prepare(DIMS, None)
    sink.close()


def test_records_the_collection_cannot_hold_are_rejected_with_a_reason(
    server: service.MilvusHandle, tmp_path: Path, client: Any
) -> None:
    name = coll()
    vecs = np.ones((6, DIMS), dtype=np.float32)
    vecs[3, 2] = np.nan
    recs = [
        Record(id="ok", text="fine"),
        Record(id="long-text", text="é" * 40_000),
        Record(id="big-meta", metadata={"blob": "x" * 70_000}),
        Record(id="nan", text="nan"),
        Record(id="no-vector", text="none"),
        Record(id="y" * 513, text="id too long"),
    ]
    batch = Batch.from_records(recs, [*vecs[:4], None, vecs[5]])
    sink = sink_for(server, tmp_path, name)
    sink.open(None)
    try:
        sink.prepare(DIMS, None)
        result = sink.write(batch)
        sink.finalize()
    finally:
        sink.close()
    assert result.written == 1
    assert "80,000 bytes" in result.rejected["long-text"] and "65,535" in result.rejected["long-text"]
    assert "metadata is" in result.rejected["big-meta"]
    assert "NaN" in result.rejected["nan"]
    assert "no vector" in result.rejected["no-vector"]
    assert "513 bytes" in result.rejected["y" * 513]
    assert count(client, name) == 1


def test_large_batches_go_out_in_parts(
    server: service.MilvusHandle, tmp_path: Path, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[int] = []
    monkeypatch.setattr(sink_module, "REQUEST_BYTES", 20_000)
    name = coll()
    sink = sink_for(server, tmp_path, name, concurrency=4)
    sink.open(None)
    assert sink.writer is not None  # upserts go through vexrun's wire writer
    original = sink.writer.upsert

    def spy(rows: list[Any]) -> Any:
        sent.append(len(rows))
        return original(rows)

    sink.writer.upsert = spy  # type: ignore[method-assign]
    try:
        sink.prepare(DIMS, "fake-8")
        assert sink.write(records(3000)).written == 3000
        sink.finalize()
    finally:
        sink.close()
    assert len(sent) > 4 and sum(sent) == 3000 and max(sent) < 200
    assert count(client, name) == 3000


def test_cursor_resumes_exactly_at_every_page_boundary(server: service.MilvusHandle, tmp_path: Path) -> None:
    name = coll()
    nasty = Batch.from_records(
        [Record(id=i) for i in ('a"b', "a\\b", "a b", "a\nb", "ä", "🙂", "A", "z")],
        list(np.ones((8, DIMS), dtype=np.float32)),
    )
    write(server, tmp_path, name, records(40), nasty)
    full, _, cursors = read(server, tmp_path, name, batch_size=6)
    ids = [r.id for r in full]
    assert len(ids) == 48 == len(set(ids)) and ids == sorted(ids)
    assert cursors[-1]["read"] == 48
    source = source_for(server, tmp_path, name)
    source.open()
    try:
        for k, cursor in enumerate(cursors):
            rest = [r.id for batch, _ in source.batches(cursor, 6) for r in batch.records]
            assert rest == ids[6 * (k + 1) :], k
    finally:
        source.close()


def test_namespace_filter_and_partial_reads(server: service.MilvusHandle, tmp_path: Path) -> None:
    name = coll()
    write(server, tmp_path, name, records(20, namespace="alpha"), records(15, prefix="b", namespace="beta"))
    beta, _, _ = read(server, tmp_path, name, batch_size=4, namespace="beta")
    assert [r.id for r in beta] == [f"b{i:05d}" for i in range(15)]
    picked, _, _ = read(server, tmp_path, name, filter='metadata["i"] < 3')
    assert sorted(r.id for r in picked) == ["b00000", "b00001", "b00002", "r00000", "r00001", "r00002"]
    source = source_for(server, tmp_path, name, namespace="beta")
    assert source.estimate() == 15
    assert source.identity() == f"milvus:{name}#beta"
    assert "15 records" in source.check()
    source.close()


def test_a_short_read_is_an_error(server: service.MilvusHandle, tmp_path: Path) -> None:
    name = coll()
    write(server, tmp_path, name, records(10))
    source = source_for(server, tmp_path, name)
    source.open()
    source.expected = 11  # as if a page had gone missing
    with pytest.raises(ConnectError, match="read 10 records of collection .* but it counted 11"):
        for _ in source.batches(None, 4):
            pass
    source.close()


def test_partitions_read_the_serial_reads_batches(server: service.MilvusHandle, tmp_path: Path) -> None:
    """The key ranges a distributed run reads (run.executor: ray) start where a serial read's pages start: read
    one after the other they give the same batches; a range resumes from its own cursors and stops at its end."""
    name = coll()
    write(server, tmp_path, name, records(1234))
    source = source_for(server, tmp_path, name)
    source.open()
    try:
        names, serial, split = partitioned_read(source, 3, 100)
        assert names == ["rows 0-400", "rows 400-800", "rows 800-1234"]
        assert split == serial and len({i for ids in split for i in ids}) == 1234
        assert source.partitions(1, 100) == [("all", None)]
    finally:
        source.close()


def test_source_errors_are_one_line(server: service.MilvusHandle, tmp_path: Path) -> None:
    source = source_for(server, tmp_path, "no_such_collection")
    with pytest.raises(InvalidInput, match="no collection 'no_such_collection'"):
        source.open()
    source.close()
    name = coll()
    write(server, tmp_path, name, records(5), index_type="none")
    source = source_for(server, tmp_path, name)
    with pytest.raises(InvalidInput, match="has no vector index"):
        source.open()
    source.close()
    # a run into it cannot read it back: its verification says so, the run does not fail on it
    sink = sink_for(server, tmp_path, name, index_type="none")
    sink.open(None)
    ledger = Ledger(tmp_path / "ledger.sqlite", run_id=1, keep=1.0, resume_batches=None)
    try:
        sink.prepare(DIMS, "fake-8")
        ledger.add("target", 1, records(5))
        result = reconcile(sink, None, "target", ledger, "sample", 10)
        assert not result.verified and "has no vector index (index_type: none)" in (result.note or ""), result
    finally:
        ledger.close()
        sink.close()


def test_reads_a_collection_vexrun_did_not_write(server: service.MilvusHandle, tmp_path: Path, client: Any) -> None:
    dt = sdk().DataType
    name = coll()
    schema = sdk().MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field("pk", dt.INT64, is_primary=True)
    schema.add_field("emb", dt.FLOAT_VECTOR, dim=DIMS)
    schema.add_field("content", dt.VARCHAR, max_length=1000)
    schema.add_field("year", dt.INT64)
    schema.add_field("info", dt.JSON)
    index = client.prepare_index_params()
    index.add_index("emb", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")
    vecs = np.random.default_rng(5).standard_normal((25, DIMS)).astype(np.float32)
    client.insert(
        name,
        [
            {"pk": 1000 - i, "emb": vecs[i], "content": f"doc {i}", "year": 2000 + i, "info": {"a": i}, "extra": "dyn"}
            for i in range(25)
        ],
    )
    recs, got, _ = read(server, tmp_path, name, batch_size=10, text_field="content")
    assert [r.id for r in recs] == [str(1000 - i) for i in range(24, -1, -1)]
    first = recs[-1]
    assert first.text == "doc 0" and first.metadata == {"year": 2000, "info": '{"a":0}', "extra": "dyn"}
    assert np.array_equal(got[-1], vecs[0])


def test_search_ranks_by_cosine_and_restores_long_ids(server: service.MilvusHandle, tmp_path: Path) -> None:
    name = coll()
    batch = records(50)
    batch.records[3].metadata = {"_vexrun_id": "the original id", "k": 1}
    write(server, tmp_path, name, batch, records(5, prefix="o", namespace="other"), spec={"type": "fake", "dims": 8})
    sink = sink_for(server, tmp_path, name)
    sink.connect()
    try:
        assert batch.vectors is not None
        hits = sink.search(batch.vectors[3], "", 5)
        assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
        assert hits[0].id == "the original id" and hits[0].metadata == {"k": 1}
        assert hits[0].cosine == pytest.approx(1.0, abs=1e-6) and hits[0].score == pytest.approx(1.0, abs=1e-6)
        assert all(a.score >= b.score for a, b in zip(hits, hits[1:], strict=False))
        other = sink.search(batch.vectors[3], "", 10, namespace="other")
        assert len(other) == 5 and {h.namespace for h in other} == {"other"}
        with pytest.raises(UsageError, match="needs a query vector"):
            sink.search(None, "text", 3)
    finally:
        sink.close()
    props = sdk().MilvusClient(uri=server.uri, token=TOKEN)
    try:
        assert props.describe_collection(name)["properties"]["vexrun.embedder"] == '{"type":"fake","dims":8}'
    finally:
        props.close()


def test_cli_import_export_and_check(server: service.MilvusHandle, tmp_path: Path) -> None:
    from vexrun.testing.data import write_synthetic

    write_synthetic(tmp_path / "in.vmig.jsonl", 300, dims=DIMS)
    name = coll()
    target = f"{{type: zilliz, uri: '{server.uri}', token: '${{MILVUS_TOKEN}}', collection: {name}, index_type: HNSW}}"
    (tmp_path / "imp.yaml").write_text(
        f"version: 1\nsource: {{type: vmig, path: in.vmig.jsonl}}\ntarget: {target}\nrun: {{batch_size: 64}}\n"
    )
    env = {"MILVUS_TOKEN": TOKEN}
    checked = run_cli("check", str(tmp_path / "imp.yaml"), env=env)
    assert checked.code == 0, checked.output
    assert f"collection '{name}' will be created" in checked.output and TOKEN not in checked.output
    res = run_cli("run", str(tmp_path / "imp.yaml"), env=env)
    assert res.code == 0, res.output
    source = f"{{type: milvus, uri: '{server.uri}', token: '${{MILVUS_TOKEN}}', collection: {name}}}"
    (tmp_path / "exp.yaml").write_text(
        f"version: 1\nsource: {source}\ntarget: {{type: vmig, path: out.vmig.jsonl}}\nrun: {{batch_size: 100}}\n"
    )
    res = run_cli("run", "--json", str(tmp_path / "exp.yaml"), env=env)
    assert res.code == 0, res.output
    assert '"read": 300' in res.out
    assert len((tmp_path / "out.vmig.jsonl").read_text().splitlines()) == 300


def test_milvus_lite_round_trip_and_lock_release(tmp_path: Path) -> None:
    cfg: dict[str, Any] = {"uri": "lite/mem.db", "collection": "memories"}
    batch = records(120)
    for _ in range(2):  # the second open must find the lock released by close()
        sink = MilvusSink(MilvusSinkConfig(**cfg, concurrency=4), ctx(tmp_path))
        sink.open(None)
        try:
            sink.prepare(DIMS, "fake-8")
            assert sink.write(batch).written == 120
            assert sink.pool is None  # never concurrent in-process
            sink.finalize()
        finally:
            sink.close()
    source = MilvusSource(MilvusSourceConfig(**cfg), ctx(tmp_path))
    source.open()
    try:
        got = [(r, v) for b, _ in source.batches(None, 50) for r, v in b]
    finally:
        source.close()
    assert [r.id for r, _ in got] == [r.id for r in batch.records]
    assert batch.vectors is not None
    assert all(np.array_equal(v, batch.vectors[i]) for i, (_, v) in enumerate(got))
    assert got[5][0].metadata == batch.records[5].metadata


def test_wire_reader_and_sdk_rows_agree(server: service.MilvusHandle, tmp_path: Path) -> None:
    name = coll()
    write(server, tmp_path, name, records(300, seed=9), records(5, prefix="z", namespace=None))
    got = []
    for fast in (True, False):
        source = source_for(server, tmp_path, name)
        source.open()
        assert source.wire is not None
        if not fast:
            source.wire = None  # as with a pymilvus that does not expose its stub
        try:
            got.append([(r, v.copy()) for b, _ in source.batches(None, 64) for r, v in b])
        finally:
            source.close()
    assert len(got[0]) == len(got[1]) == 305
    for (ra, va), (rb, vb) in zip(got[0], got[1], strict=True):
        assert ra == rb and np.array_equal(va.view(np.uint32), vb.view(np.uint32))


def test_wire_writer_sends_the_request_pymilvus_builds(server: service.MilvusHandle, tmp_path: Path) -> None:
    """The sink builds its upserts on the client's stub (``wire.WireWriter``): the request is the one pymilvus's
    own ``upsert`` builds for the same rows (unicode, empty text and namespace, nested JSON), and what either
    path writes reads back the same."""
    from vexrun.connectors.milvus.codec import encode_row

    name = coll()
    odd = Record(id="ü-1", text=None, namespace=None, metadata={"ü": ["é", {"x": None}], "n": 2**60}, model="m")
    recs = [*records(40, seed=4).records, odd]
    vecs = np.random.default_rng(2).standard_normal((len(recs), DIMS)).astype(np.float32)
    sink = sink_for(server, tmp_path, name)
    sink.open(None)
    try:
        sink.prepare(DIMS, "fake-8")
        assert sink.writer is not None
        rows = [encode_row(rec, vecs[i], None)[0] for i, rec in enumerate(recs)]
        assert all(rows)
        sink.write(Batch.from_records(recs[:1], [vecs[0]]))  # creates the collection
        theirs = sink.store.client._get_connection()._prepare_row_upsert_request(name, rows)  # type: ignore[union-attr]
        ours = sink.writer.request(rows)  # type: ignore[arg-type]
        assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(deterministic=True)
    finally:
        sink.close()
    got = []
    for fast in (True, False):
        target = coll()
        sink = sink_for(server, tmp_path, target)
        sink.open(None)
        try:
            if not fast:
                sink.writer = None  # as with a pymilvus that does not expose its stub: MilvusClient.upsert
            sink.prepare(DIMS, "fake-8")
            assert not sink.write(Batch.from_records(recs, list(vecs))).rejected
            sink.finalize()
        finally:
            sink.close()
        back, mat, _ = read(server, tmp_path, target)
        got.append((back, mat))
    assert got[0][0] == got[1][0] and len(got[0][0]) == len(recs)
    assert np.array_equal(got[0][1].view(np.uint32), got[1][1].view(np.uint32))
