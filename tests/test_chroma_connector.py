"""The Chroma connector against a real ``chroma run`` server (started once for this module; a server that
cannot start fails the tests), plus a local directory (PersistentClient): collection checks, upserts that
replace rather than merge, metadata Chroma refuses, the resumable paging and its count check, search, errors."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from conftest import partitioned_read
from vexrun.connectors.base import RunContext
from vexrun.connectors.chroma import ChromaSink, ChromaSinkConfig, ChromaSource, ChromaSourceConfig
from vexrun.connectors.encoding import from_store, to_store
from vexrun.errors import ConnectError, InvalidInput, UsageError
from vexrun.registry import resolve
from vexrun.testing.git_servers import free_port
from vexrun.testing.services import chroma as service
from vexrun.vmig.batch import Batch
from vexrun.vmig.model import Record

DIMS = 8
CAPS = resolve("sink", "chroma").capabilities


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[service.ChromaHandle]:
    handle = service.start(tmp_path_factory.mktemp("chroma"))
    yield handle
    service.stop(handle)


def _ctx(tmp: Path) -> RunContext:
    return RunContext(state_dir=tmp, recipe_dir=tmp)


def _name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def _records(n: int, start: int = 0, ns: tuple[str, ...] = ("alpha", "beta")) -> Batch:
    rng = np.random.default_rng(start + 1)
    recs = [
        Record(
            id=f"mem-{i:04d}",
            text=f"memory number {i}",
            model="fake-8",
            namespace=ns[i % len(ns)],
            metadata={"turn": i, "tags": ["a", "b"], "w": i / 7, "pinned": i % 2 == 0},
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


class Target:
    """A collection on the test server (or in a local directory) with helpers to write and read it."""

    def __init__(self, tmp: Path, server: service.ChromaHandle | None, **kw: Any) -> None:
        self.tmp = tmp
        self.loc: dict[str, Any] = {"url": server.url} if server else {"path": "chroma-dir"}
        self.name = _name()
        self.kw = kw

    def sink(self, state: dict[str, Any] | None = None, **kw: Any) -> ChromaSink:
        sink = ChromaSink(ChromaSinkConfig(**self.loc, collection=self.name, **{**self.kw, **kw}), _ctx(self.tmp))
        sink.open(state)
        return sink

    def write(self, batch: Batch, dims: int = DIMS, **kw: Any) -> dict[str, str]:
        sink = self.sink(**kw)
        try:
            sink.prepare(dims, "fake-8")
            result = sink.write(to_store(batch, CAPS))
            sink.finalize()
            return result.rejected
        finally:
            sink.close()

    def source(self, **kw: Any) -> ChromaSource:
        src = ChromaSource(ChromaSourceConfig(**self.loc, collection=self.name, **kw), _ctx(self.tmp))
        src.open()
        return src

    def read(self, batch_size: int = 100, **kw: Any) -> dict[str, tuple[Record, np.ndarray | None]]:
        src = self.source(**kw)
        try:
            out: dict[str, tuple[Record, np.ndarray | None]] = {}
            for batch, _ in src.batches(None, batch_size):
                for rec, vec in from_store(batch):
                    assert rec.id not in out
                    out[rec.id] = (rec, vec)
            return out
        finally:
            src.close()


def test_importing_the_module_loads_no_sdk() -> None:
    code = "import sys, vexrun.connectors.chroma; print(any(m.startswith('chromadb') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_round_trip_of_every_field(tmp_path: Path, server: service.ChromaHandle) -> None:
    target = Target(tmp_path, server)
    batch = _records(12)
    batch.records[0].metadata = None
    batch.records[1].metadata = {}
    batch.records[2].text = None
    batch.records[3].metadata = {"empty": [], "huge": 2**70, "floats": [0.1, 1 / 3], "bools": [True, False], "n": 1e308}
    assert target.write(batch) == {}
    got = target.read(batch_size=5)
    assert sorted(got) == sorted(r.id for r in batch.records)
    for i, want in enumerate(batch.records):
        rec, vec = got[want.id]
        assert rec == Record(**{**{f: getattr(want, f) for f in want.__struct_fields__}, "dims": DIMS})
        assert vec is not None and batch.vectors is not None
        cos = float(np.dot(vec, batch.vectors[i]) / (np.linalg.norm(vec) * np.linalg.norm(batch.vectors[i])))
        assert cos > 1 - 1e-6


def test_l2_and_dot_collections_keep_float32_bit_exact(tmp_path: Path, server: service.ChromaHandle) -> None:
    for metric in ("l2", "dot"):
        target = Target(tmp_path, server, metric=metric)
        batch = _records(50)
        target.write(batch)
        got = target.read()
        assert batch.vectors is not None
        for i, rec in enumerate(batch.records):
            vec = got[rec.id][1]
            assert vec is not None and np.array_equal(vec.view(np.uint32), batch.vectors[i].view(np.uint32))
        sink = target.sink()
        try:
            assert sink.store.get_collection() is not None and sink.store.metric() == metric
        finally:
            sink.close()


def test_upsert_replaces_a_record_instead_of_merging(tmp_path: Path, server: service.ChromaHandle) -> None:
    target = Target(tmp_path, server)
    target.write(_records(10))
    target.write(_records(10))  # identical re-write
    changed = _records(10)
    changed.records[4].metadata = {"only": "this"}
    changed.records[4].text = None
    changed.records[5].metadata = None
    target.write(changed)
    got = target.read()
    assert len(got) == 10
    assert got["mem-0004"][0].metadata == {"only": "this"} and got["mem-0004"][0].text is None
    assert got["mem-0005"][0].metadata is None
    assert got["mem-0006"][0].metadata == changed.records[6].metadata


def test_records_chroma_cannot_hold_are_rejected_with_a_reason(tmp_path: Path, server: service.ChromaHandle) -> None:
    target = Target(tmp_path, server)
    batch = _records(4)
    batch.records[0].metadata = {"namespace": "mine"}
    batch.records[1].metadata = {"#tag": 1}
    assert batch.has_vector is not None
    batch.has_vector[2] = False
    rejected = target.write(batch)
    assert set(rejected) == {"mem-0000", "mem-0001", "mem-0002"}
    assert (
        "reserved" in rejected["mem-0000"] and "# or $" in rejected["mem-0001"] and "no vector" in rejected["mem-0002"]
    )
    assert list(target.read()) == ["mem-0003"]


def test_prepare_refuses_other_dims_or_metric_and_replace_recreates(
    tmp_path: Path, server: service.ChromaHandle
) -> None:
    target = Target(tmp_path, server)
    target.write(_records(3))
    sink = target.sink()
    try:
        with pytest.raises(InvalidInput, match="holds 8-d vectors by cosine, this run writes 16-d"):
            sink.prepare(16, "other")
    finally:
        sink.close()
    sink = target.sink(metric="l2")
    try:
        with pytest.raises(InvalidInput, match="by cosine, this run writes 8-d vectors by l2"):
            sink.prepare(DIMS, "fake-8")
    finally:
        sink.close()
    assert target.write(_records(3), dims=16, metric="dot", replace=True) != {}  # 8-d records into 16-d: refused
    sink = target.sink()
    try:
        assert sink.store.get_collection() is not None and sink.store.metric() == "dot"
    finally:
        sink.close()


def test_writes_above_the_server_batch_limit_are_split(tmp_path: Path, server: service.ChromaHandle) -> None:
    target = Target(tmp_path, server)
    n = 6000  # the server's max_batch_size is 5,461
    batch = Batch(
        records=[Record(id=f"r{i}", text="t") for i in range(n)],
        vectors=np.random.default_rng(0).standard_normal((n, DIMS)).astype(np.float32),
        has_vector=np.ones(n, dtype=bool),
    )
    assert target.write(batch) == {}
    with service.client(server) as client:
        assert client.get_collection(target.name, embedding_function=None).count() == n


def test_resume_from_every_page_boundary(tmp_path: Path, server: service.ChromaHandle) -> None:
    target = Target(tmp_path, server)
    target.write(_records(23))
    src = target.source()
    try:
        pages = [(b.records, cur) for b, cur in src.batches(None, 5)]
        order = [r.id for recs, _ in pages for r in recs]
        assert len(order) == len(set(order)) == 23
        for k, (_, cursor) in enumerate(pages):
            rest = [r.id for b, _ in src.batches(cursor, 5) for r in b.records]
            assert rest == order[5 * (k + 1) :], k
    finally:
        src.close()


def test_partitions_read_the_serial_reads_batches(tmp_path: Path, server: service.ChromaHandle) -> None:
    """The ranges a distributed run reads (run.executor: ray) are whole pages of the serial read, in order: read
    one after the other they give the same batches; a range resumes from its own cursors and stops at its end."""
    target = Target(tmp_path, server)
    target.write(_records(1234))
    src = target.source()
    try:
        names, serial, split = partitioned_read(src, 3, 100)
        assert names == ["records 0-400", "records 400-800", "records 800-1234"]
        assert split == serial and len({i for ids in split for i in ids}) == 1234
        assert src.partitions(1, 100) == [("all", None)]
    finally:
        src.close()
    one_namespace = target.source(namespace="alpha")
    try:
        assert one_namespace.partitions(3, 100) == [("all", None)]
    finally:
        one_namespace.close()


def test_namespace_filter_and_records_deleted_behind_the_cursor(tmp_path: Path, server: service.ChromaHandle) -> None:
    target = Target(tmp_path, server)
    target.write(_records(30, ns=("work", "home", "travel")))
    assert sorted(target.read(batch_size=4, namespace="home")) == [f"mem-{i:04d}" for i in range(30) if i % 3 == 1]
    src = target.source()
    try:
        assert src.estimate() == 30
        it = src.batches(None, 10)
        next(it)
        src.store.coll.delete(ids=["mem-0000"])  # a writer removes a record that was already read
        # the first page read after the deletion sees it: the second, or (when the second was already read
        # ahead, with the collection as it was) the third
        with pytest.raises(
            InvalidInput,
            match=r"changed while it was read \(the record at position (10 is no longer 'mem-0009'|20 is no longer "
            r"'mem-0019')\)",
        ):
            list(it)
    finally:
        src.close()


def test_search_ranks_by_cosine_within_a_namespace(tmp_path: Path, server: service.ChromaHandle) -> None:
    target = Target(tmp_path, server)
    batch = _records(40)
    target.write(batch)
    sink = ChromaSink(ChromaSinkConfig(url=server.url, collection=target.name), _ctx(tmp_path))
    sink.connect()
    try:
        assert batch.vectors is not None
        hits = sink.search(batch.vectors[7] * 3, "", k=5)
        assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
        assert hits[0].id == "mem-0007" and hits[0].cosine == pytest.approx(1.0, abs=1e-5)
        assert hits[0].score == pytest.approx(1.0, abs=1e-5) and hits[0].text == "memory number 7"
        assert all(a.score >= b.score for a, b in zip(hits, hits[1:], strict=False))
        in_ns = sink.search(batch.vectors[7], "", k=5, namespace="alpha")
        assert in_ns and all(h.namespace == "alpha" for h in in_ns)
    finally:
        sink.close()


def test_local_directory(tmp_path: Path) -> None:
    target = Target(tmp_path, None)
    batch = _records(20)
    assert target.write(batch) == {}
    got = target.read(batch_size=7)
    assert sorted(got) == sorted(r.id for r in batch.records)
    assert got["mem-0003"][0].metadata == batch.records[3].metadata


def test_errors_are_one_clear_line(tmp_path: Path, server: service.ChromaHandle) -> None:
    port = free_port()
    cfg = ChromaSinkConfig(url=f"http://127.0.0.1:{port}", collection="abc", api_key="s3cret")
    t0 = time.monotonic()
    with pytest.raises(ConnectError) as err:
        ChromaSink(cfg, _ctx(tmp_path)).open(None)
    assert time.monotonic() - t0 < 5
    assert str(err.value).startswith(f"cannot reach chroma at http://127.0.0.1:{port} (connection refused)")
    assert "s3cret" not in str(err.value)
    with pytest.raises(InvalidInput, match="'nope-nope' .* does not exist"):
        ChromaSource(ChromaSourceConfig(url=server.url, collection="nope-nope"), _ctx(tmp_path)).open()
    with pytest.raises(UsageError, match="no such directory"):
        ChromaSource(ChromaSourceConfig(path="missing", collection="abc"), _ctx(tmp_path)).open()
    sink = ChromaSink(ChromaSinkConfig(url=server.url, collection="x"), _ctx(tmp_path))  # name too short
    sink.open(None)
    try:
        with pytest.raises(InvalidInput, match="creating the collection failed: .*3-512 characters"):
            sink.prepare(DIMS, "fake-8")
    finally:
        sink.close()


def test_check_reports_without_writing(tmp_path: Path, server: service.ChromaHandle) -> None:
    target = Target(tmp_path, server)
    cfg = ChromaSinkConfig(url=server.url, collection=target.name)
    assert "the collection does not exist yet" in ChromaSink(cfg, _ctx(tmp_path)).check()
    local = ChromaSinkConfig(path="nothing-here", collection="abc")
    assert "does not exist yet" in ChromaSink(local, _ctx(tmp_path)).check()
    target.write(_records(6))
    assert ChromaSink(cfg, _ctx(tmp_path)).check().endswith("reachable, 6 records, 8-d cosine")
    src = ChromaSource(ChromaSourceConfig(url=server.url, collection=target.name), _ctx(tmp_path))
    assert src.check().endswith("readable, 6 records")


def test_pages_read_without_the_clients_decoding_equal_what_the_client_returns(
    tmp_path: Path, server: service.ChromaHandle
) -> None:
    """From a server the source sends ``get`` on the client's session and decodes the reply itself (the
    embeddings by simdjson into float32): ids, documents, metadatas and the float32 bits equal what
    ``Collection.get`` gives, on vectors with tricky values; the export reads them back bit-exact (an l2
    collection: Chroma normalizes cosine ones), and a local store is read through ``Collection.get``."""
    target = Target(tmp_path, server, metric="l2")
    batch = _records(40)
    assert batch.vectors is not None
    batch.vectors[0, :4] = [1e-45, 16777217.0, -0.0, 1.17549435e-38]  # subnormals, past 2**24, -0
    batch.vectors[1, :2] = [-3.4028235e38, 0.1]
    assert not target.write(batch)
    src = target.source()
    try:
        getter = src.store.raw_getter()
        assert getter is not None
        include = ["embeddings", "documents", "metadatas"]
        for where, offset, n in ((None, 0, 25), ({"namespace": "beta"}, 3, 17)):
            ours = getter(limit=25, offset=offset, where=where, include=include)
            theirs = src.store.coll.get(limit=25, offset=offset, where=where, include=include)  # type: ignore[arg-type]
            assert ours["ids"] == theirs["ids"] and len(ours["ids"]) == n
            assert ours["documents"] == theirs["documents"] and ours["metadatas"] == theirs["metadatas"]
            mine, sdks = ours["embeddings"], np.asarray(theirs["embeddings"], dtype=np.float32)
            assert mine.dtype == np.float32 and np.array_equal(mine.view(np.uint32), sdks.view(np.uint32))
    finally:
        src.close()
    back = target.read(batch_size=7)
    assert [rec.id for rec in batch.records] == sorted(back)
    for rec, vec in zip(batch.records, batch.vectors, strict=True):
        got = back[rec.id][1]
        assert got is not None and np.array_equal(got.view(np.uint32), vec.view(np.uint32))
    local = Target(tmp_path, None)
    assert not local.write(_records(3))
    src = local.source()
    try:
        assert src.store.raw_getter() is None  # an embedded store: Collection.get
    finally:
        src.close()


def test_a_get_reply_the_fast_path_cannot_read_is_read_as_the_client_reads_it() -> None:
    """Embeddings simdjson does not vouch for (a null, which Chroma sends for a value it cannot write) are read
    as the client reads them (orjson, then numpy: NaN); a reply of another shape is an error."""
    from vexrun.connectors.chroma.client import decode_get

    reply = b'{"ids":["a","b"],"embeddings":[[0.5,null],[1,2.5]],"documents":[null,"x"],"metadatas":[null,{"k":1}]}'
    got = decode_get(reply)
    client = np.asarray(orjson.loads(reply)["embeddings"], dtype=np.float32)
    assert got["ids"] == ["a", "b"] and got["documents"] == [None, "x"] and got["metadatas"] == [None, {"k": 1}]
    assert np.array_equal(got["embeddings"], client, equal_nan=True) and np.isnan(got["embeddings"][0, 1])
    with pytest.raises(Exception, match="Expected"):
        decode_get(b'{"ids":"a"}')
