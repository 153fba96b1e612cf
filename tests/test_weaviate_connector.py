"""The Weaviate connector against the wire-level fake (the real weaviate-client over loopback REST and gRPC):
namespaces as tenants or as a property, records the server refuses rejected one by one with its reason,
metadata Weaviate properties cannot hold made to round-trip, the collection created or refused, collections
other tools wrote read back, the resumable export across tenants, search, and one clear line per failure."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from weaviate.classes.config import Configure, DataType, Property
from weaviate.classes.data import DataObject

from conftest import partitioned_read
from vexrun.connectors.base import RunContext
from vexrun.connectors.encoding import from_store, split_for, to_store
from vexrun.connectors.weaviate import WeaviateSink, WeaviateSinkConfig, WeaviateSource, WeaviateSourceConfig
from vexrun.connectors.weaviate.codec import Codec, object_key, to_record
from vexrun.errors import ConnectError, InvalidInput
from vexrun.registry import resolve
from vexrun.testing.fake_weaviate import FakeWeaviate
from vexrun.vmig.batch import Batch
from vexrun.vmig.model import Record

KEY = "connector-test-key"
CAPS = resolve("sink", "weaviate").capabilities


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeWeaviate]:
    with FakeWeaviate(KEY) as running:
        yield running


def _cfg(fake: FakeWeaviate, name: str, **kw: Any) -> dict[str, Any]:
    return {"url": fake.url, "grpc_port": fake.grpc_port, "api_key": KEY, "collection": name, **kw}


def _sink(fake: FakeWeaviate, tmp: Path, name: str, dims: int | None = 4, **kw: Any) -> WeaviateSink:
    sink = WeaviateSink(WeaviateSinkConfig(**_cfg(fake, name, **kw)), RunContext(state_dir=tmp, recipe_dir=tmp))
    sink.open(None)
    sink.prepare(dims, "m")
    return sink


def _read(fake: FakeWeaviate, tmp: Path, name: str, cursor: Any = None, size: int = 7, **kw: Any) -> list[Any]:
    source = WeaviateSource(WeaviateSourceConfig(**_cfg(fake, name, **kw)), RunContext(state_dir=tmp, recipe_dir=tmp))
    source.open()
    try:
        return [(from_store(batch), cur) for batch, cur in source.batches(cursor, size)]
    finally:
        source.close()


def _write(sink: WeaviateSink, recs: list[Record], vecs: list[Any]) -> dict[str, str]:
    rejected: dict[str, str] = {}
    for part in split_for(to_store(Batch.from_records(recs, vecs), CAPS), CAPS):
        rejected.update(sink.write(part).rejected)
    return rejected


def _records(
    n: int, dims: int = 4, ns: tuple[str | None, ...] = ("alpha", "beta", None)
) -> tuple[list[Record], list[Any]]:
    rng = np.random.default_rng(n)
    vecs = list(rng.standard_normal((n, dims)).astype(np.float32))
    recs = [
        Record(
            id=f"r{i}" if i % 4 else str(uuid.UUID(int=i + 1)),
            text=f"text {i}",
            namespace=ns[i % len(ns)],
            metadata={"turn": i, "tag": f"t{i % 3}"},
            created_at="2026-01-01T00:00:00Z",
            score=i / 10,
        )
        for i in range(n)
    ]
    return recs, vecs


def test_tenants_default_tenant_and_refused_namespaces(fake: FakeWeaviate, tmp_path: Path) -> None:
    name = f"Mt{uuid.uuid4().hex[:8]}"
    sink = _sink(fake, tmp_path, name)
    try:
        recs, vecs = _records(30)
        bad = [Record(id="bad-ns", namespace="has space"), Record(id="is-default", namespace="vexrun_default")]
        rejected = _write(sink, recs + bad, vecs + [vecs[0], vecs[1]])
        assert sorted(rejected) == ["bad-ns", "is-default"]
        assert "not a Weaviate tenant name" in rejected["bad-ns"] and "default_tenant" in rejected["is-default"]
        assert sink.namespaces() == ["alpha", "beta"]
        assert (sink.count(), sink.count("alpha"), sink.count(None)) == (30, 10, 30)
        got = sink.fetch([r.id for r in recs])
        assert [r.id for r in got.records] == [r.id for r in recs]
        assert [r.namespace for r in got.records] == [r.namespace for r in recs]
        assert got.records[2].metadata == {"turn": 2, "tag": "t2"} and got.records[2].score == 0.2
    finally:
        sink.close()
    with fake.client(KEY) as client:
        coll = client.collections.use(name)
        assert sorted(coll.tenants.get()) == ["alpha", "beta", "vexrun_default"]
        types = {p.name: p.data_type for p in coll.config.get().properties}
        assert types["turn"] == DataType.INT and types["tag"] == DataType.TEXT and types["vexrun_id"] == DataType.TEXT
        assert coll.with_tenant("vexrun_default").aggregate.over_all(total_count=True).total_count == 10


def test_namespaces_in_a_property_without_tenants(fake: FakeWeaviate, tmp_path: Path) -> None:
    name = f"Flat{uuid.uuid4().hex[:8]}"
    sink = _sink(fake, tmp_path, name, tenants=False)
    try:
        recs, vecs = _records(40, ns=("a b", "ünï", None))  # any namespace: it is a property here
        assert not _write(sink, recs, vecs)
        assert sink.namespaces() == ["a b", "ünï"]
        assert (sink.count("a b"), sink.count("nowhere")) == (14, 0)
        assert sink.delete([recs[0].id, recs[1].id], namespace="a b") == 1
        assert [r.id for r in sink.fetch([recs[3].id, recs[4].id], namespace="a b").records] == [recs[3].id]
    finally:
        sink.close()
    batches = _read(fake, tmp_path, name, namespace="ünï")
    ids = [r.id for b, _ in batches for r in b.records]
    assert ids and all(r.namespace == "ünï" for b, _ in batches for r in b.records)
    assert sorted(ids) == sorted(r.id for r in recs if r.namespace == "ünï")


def test_metadata_properties_cannot_hold_round_trips(fake: FakeWeaviate, tmp_path: Path) -> None:
    name = f"Meta{uuid.uuid4().hex[:8]}"
    metas = [
        {"k": 1, "big": 2**60, "empty": [], "Upper": "u", "with-dash": 1, "id": "x", "text": "t", "ok": [1.5, 2.5]},
        {"k": "now text", "huge": -(2**62), "mixed": [1, "a"], "none": None, "nested_list": [True, False]},
        {},
        None,
    ]
    recs = [
        Record(id=f"m{i}", text=None if i == 3 else "x", namespace="alpha", metadata=m) for i, m in enumerate(metas)
    ]
    vecs = list(np.eye(4, dtype=np.float32))
    sink = _sink(fake, tmp_path, name)
    try:
        assert not _write(sink, recs, vecs)
        got = sink.fetch([r.id for r in recs])
        assert [r.metadata for r in got.records] == metas
        assert got.records[3].text is None
    finally:
        sink.close()
    with fake.client(KEY) as client:
        props = {p.name: p.data_type for p in client.collections.use(name).config.get().properties}
    assert props["k"] == DataType.INT and props["ok"] == DataType.NUMBER_ARRAY and "Upper" not in props
    assert "big" not in props and "empty" not in props and "upper" not in props


def test_prepare_refuses_a_collection_of_another_shape(fake: FakeWeaviate, tmp_path: Path) -> None:
    name = f"Shape{uuid.uuid4().hex[:8]}"
    sink = _sink(fake, tmp_path, name, dims=4)
    try:
        recs, vecs = _records(3)
        _write(sink, recs, vecs)
    finally:
        sink.close()
    for kw, dims, message in (
        ({"metric": "dot"}, 4, "measures vectors by cosine, this run by dot"),
        ({"tenants": False}, 4, "has multi-tenancy"),
        ({}, 8, "holds 4-d vectors, this run writes 8-d"),
    ):
        other = WeaviateSink(WeaviateSinkConfig(**_cfg(fake, name, **kw)), RunContext(tmp_path, tmp_path))
        try:
            other.open(None)
            with pytest.raises(InvalidInput, match=message):
                other.prepare(dims, "m")
        finally:
            other.close()
    # replace: true on a fresh run drops it and starts over
    again = _sink(fake, tmp_path, name, dims=8, replace=True)
    try:
        assert again.count() == 0
    finally:
        again.close()


def test_objects_the_server_refuses_are_rejected_with_its_reason(
    fake: FakeWeaviate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """...and the requests go as the bytes vexrun encodes, on the client's channel (``wire.send``'s raw call)."""
    from vexrun.connectors.weaviate import wire

    calls: list[int] = []
    raw_call = wire._raw_call

    def spy(conn: Any) -> Any:
        calls.append(1)
        return raw_call(conn)

    monkeypatch.setattr(wire, "_raw_call", spy)
    name = f"Dims{uuid.uuid4().hex[:8]}"
    sink = _sink(fake, tmp_path, name, dims=4)
    try:
        assert not _write(sink, [Record(id="a1", namespace="alpha")], [np.ones(4, np.float32)])
        with fake.client(KEY) as client:  # another writer put 6-d vectors in tenant beta
            client.collections.use(name).tenants.create(["beta"])
            client.collections.use(name).with_tenant("beta").data.insert_many(
                [DataObject(properties={}, vector={"default": [1.0] * 6})]
            )
        rejected = _write(
            sink, [Record(id="b1", namespace="beta"), Record(id="a2", namespace="alpha")], [np.ones(4, np.float32)] * 2
        )
        assert list(rejected) == ["b1"] and "Existing nodes have vectors with length 6" in rejected["b1"]
        assert sink.count("alpha") == 2
        assert len(calls) == 3  # one request for a1, one for each tenant of the second write
    finally:
        sink.close()


def test_export_resumes_across_tenants_and_reads_foreign_objects(fake: FakeWeaviate, tmp_path: Path) -> None:
    name = f"Res{uuid.uuid4().hex[:8]}"
    sink = _sink(fake, tmp_path, name)
    try:
        recs, vecs = _records(45)
        _write(sink, recs, vecs)
    finally:
        sink.close()
    everything = _read(fake, tmp_path, name)
    ids = [r.id for b, _ in everything for r in b.records]
    assert sorted(ids) == sorted(r.id for r in recs) and len(ids) == len(set(ids))
    for cut in (1, 3, len(everything) - 1):
        rest = _read(fake, tmp_path, name, cursor=everything[cut - 1][1])
        assert [r.id for b, _ in rest for r in b.records] == ids[sum(len(b) for b, _ in everything[:cut]) :]
    by_id = {r.id: r for b, _ in everything for r in b.records}
    assert by_id["r1"].metadata == {"turn": 1, "tag": "t1"} and by_id["r1"].created_at == "2026-01-01T00:00:00Z"
    # a collection another tool wrote: its UUIDs are the ids, its properties the metadata
    with fake.client(KEY) as client:
        other = client.collections.create(
            f"Other{uuid.uuid4().hex[:6]}",
            properties=[Property(name="text", data_type=DataType.TEXT), Property(name="page", data_type=DataType.INT)],
            vector_config=Configure.Vectors.self_provided(),
        )
        oid = uuid.uuid4()
        other.data.insert_many([DataObject(properties={"text": "hi", "page": 3}, uuid=oid, vector=[0.5, 0.5])])
        foreign = _read(fake, tmp_path, other.name)
    ((batch, _),) = foreign
    assert (
        batch.records[0].id == str(oid) and batch.records[0].metadata == {"page": 3} and batch.records[0].text == "hi"
    )
    assert batch.vector(0) is not None and batch.vector(0).tolist() == [0.5, 0.5]


def test_a_tenanted_collection_is_read_in_runs_of_tenants(fake: FakeWeaviate, tmp_path: Path) -> None:
    """``run.executor: ray`` reads runs of consecutive tenants: one after the other they are the serial read's
    batches; each resumes from its own cursors and checks its own tenants' count at its end."""
    name = f"Part{uuid.uuid4().hex[:8]}"
    sink = _sink(fake, tmp_path, name)
    try:
        recs, vecs = _records(120, ns=("a", "b", "c", "d", "e", None))
        _write(sink, recs, vecs)
    finally:
        sink.close()
    cfg = WeaviateSourceConfig(**_cfg(fake, name))
    source = WeaviateSource(cfg, RunContext(state_dir=tmp_path, recipe_dir=tmp_path))
    source.open()
    try:
        names, serial, split = partitioned_read(source, 3, 7)
        assert names == ["tenants a … b", "tenants c … d", "tenants e … vexrun_default"]
        assert split == serial and sum(map(len, serial)) == 120
        assert WeaviateSource(cfg.model_copy(update={"namespace": "a"}), source.ctx).partitions(3, 7) == [("all", None)]
        (_, first), (_, middle), _ = source.partitions(3, 7)
        assert sum(len(b) for b, _ in source.batches(first, 7)) == 40  # tenants a and b
        reading = source.batches(middle, 7)
        batch, _ = next(reading)
        with fake.client(KEY) as client:  # an object of tenant c already read is deleted meanwhile
            client.collections.use(name).with_tenant("c").data.delete_by_id(object_key(batch.records[0].id))
        with pytest.raises(InvalidInput, match=r"holds 39 objects in tenants 'c' … 'd' but 40 were read"):
            list(reading)
    finally:
        source.close()


def test_an_id_written_twice_in_a_batch_keeps_the_last(fake: FakeWeaviate, tmp_path: Path) -> None:
    sink = _sink(fake, tmp_path, f"Dup{uuid.uuid4().hex[:8]}", chunk=2)
    try:
        recs = [Record(id=f"d{i % 3}", text=f"v{i}", namespace="alpha") for i in range(9)]
        assert not _write(sink, recs, list(np.ones((9, 4), np.float32)))
        assert [r.text for r in sink.fetch(["d0", "d1", "d2"]).records] == ["v6", "v7", "v8"]
        assert sink.count() == 3
    finally:
        sink.close()


def test_metadata_comes_back_in_its_order_whatever_order_the_properties_arrive_in() -> None:
    """Properties arrive as a protobuf map, whose order differs from process to process (a Ray run's workers read
    them in other orders than the local run): reading sorts them, and an order that sorting would not give back
    travels in the ``vexrun`` property."""
    import itertools
    import json

    codec = Codec("text", None, {})
    for meta in ({"turn": 6, "conversation_id": "c302", "tags": ["t0"]}, {"a": 1, "b": 2, "z": {"nested": 1}}):
        props = codec.encode(Record(id="r1", text="t", metadata=meta), None)
        assert ("keys" in json.loads(props.get("vexrun", "{}"))) == (list(meta) != ["a", "b", "z"])
        for shuffled in itertools.permutations(props.items()):
            got = to_record("00000000-0000-0000-0000-000000000001", dict(shuffled), "text", None, None)
            assert list(got.metadata or {}) == list(meta) and got.metadata == meta


def test_object_keys_are_vexrun_uuids() -> None:
    from vexrun.connectors.weaviate.codec import object_key
    from vexrun.ids import uuid_for

    for rid in ("mem:1", "émoji-🙂", "x" * 300, "0", "with space", str(uuid.uuid4()).upper()):
        assert object_key(rid) == uuid_for(rid)
    same = str(uuid.uuid4())
    assert object_key(same) == same  # a record id that is a UUID keys its object as it is


def test_search_and_one_line_errors(fake: FakeWeaviate, tmp_path: Path) -> None:
    name = f"Search{uuid.uuid4().hex[:8]}"
    sink = _sink(fake, tmp_path, name)
    try:
        recs, vecs = _records(30)
        _write(sink, recs, vecs)
        hits = sink.search(vecs[7], "", 3)
        assert hits[0].id == recs[7].id and hits[0].score == pytest.approx(1.0, abs=1e-5) and len(hits) == 3
        only = sink.search(vecs[7], "", 5, namespace="beta")
        assert only and all(h.namespace == "beta" for h in only)
    finally:
        sink.close()
    wrong = WeaviateSink(
        WeaviateSinkConfig(**{**_cfg(fake, name), "api_key": "nope"}),
        RunContext(state_dir=tmp_path, recipe_dir=tmp_path),
    )
    with pytest.raises(ConnectError, match="refused the credentials") as err:
        wrong.open(None)
    assert "nope" not in str(err.value)
    missing = WeaviateSink(
        WeaviateSinkConfig(**_cfg(fake, "NotThere")), RunContext(state_dir=tmp_path, recipe_dir=tmp_path)
    )
    with pytest.raises(InvalidInput, match="does not exist"):
        missing.connect()
    missing.close()


@pytest.mark.parametrize("name", [None, "default"])
@pytest.mark.parametrize("tenant", ["", "alpha"])
def test_the_batch_request_is_the_clients_own_byte_for_byte(name: str | None, tenant: str) -> None:
    """The sink builds ``BatchObjects`` itself (:mod:`vexrun.connectors.weaviate.wire`): the request is the one
    the client's ``insert_many`` would send for the same objects, for every kind of value the codec writes."""
    from weaviate.collections.batch.grpc_batch import _BatchGRPC
    from weaviate.collections.classes.batch import _BatchObject
    from weaviate.proto.v1 import batch_pb2
    from weaviate.util import _ServerVersion

    from vexrun.connectors.weaviate import wire

    rng = np.random.default_rng(3)
    props: list[dict[str, Any]] = [
        {"vexrun_id": "a", "text": "héllo 🙂", "turn": 7, "w": 0.1, "pinned": True, "big": 2**53 - 1},
        {"tags": ["x", "y"], "ints": [1, -2, 3], "floats": [0.5, -1e-300, 3.25], "flags": [True, False]},
        {"empty": [], "neg": -0.0, "meta_json": '{"k": [1, 2]}'},
    ]
    vectors = [rng.standard_normal(6).astype(np.float32) for _ in props]
    keys = [str(uuid.uuid4()) for _ in props]
    sdk = _BatchGRPC(_ServerVersion(1, 30, 0), None, None)
    theirs = sdk.grpc_objects(
        [
            _BatchObject(
                collection="Coll",
                vector=v.tolist() if name is None else {name: v.tolist()},
                uuid=k,
                properties=p,
                tenant=tenant or None,
                references=None,
                index=i,
            )
            for i, (p, v, k) in enumerate(zip(props, vectors, keys, strict=True))
        ]
    )
    mine = [wire.batch_object("Coll", k, tenant, p, v, name) for p, v, k in zip(props, vectors, keys, strict=True)]
    encode = batch_pb2.BatchObjectsRequest
    assert encode(objects=mine).SerializeToString() == encode(objects=theirs).SerializeToString()
    with pytest.raises(TypeError, match="object property"):
        wire.batch_object("Coll", keys[0], tenant, {"nested": {"a": 1}}, None, name)
    # the objects as vexrun encodes their bytes itself (what the sink sends): the same request
    framed = [wire.object_bytes("Coll", k, tenant, p, v, name) for p, v, k in zip(props, vectors, keys, strict=True)]
    framed.append(wire.object_bytes("Coll", keys[0], tenant, {"a": "x"}, None, name))  # no vector
    ours, client = wire.request_of(framed), encode(objects=theirs)
    client.objects.append(wire.batch_object("Coll", keys[0], tenant, {"a": "x"}, None, name))
    assert ours == client
    assert ours.SerializeToString(deterministic=True) == client.SerializeToString(deterministic=True)
    # values the encoder leaves to the client's protobufs: their message, or their error
    got = encode.FromString(wire.object_bytes("Coll", keys[0], tenant, {"nothing": None}, None, name))
    assert list(got.objects) == [wire.batch_object("Coll", keys[0], tenant, {"nothing": None}, None, name)]
    for bad in ({"nested": {"a": 1}}, {"big": [2**64]}, {"mixed": [1, "a"]}, {"odd": [b"x"]}):
        with pytest.raises((TypeError, ValueError)) as err:
            wire.object_bytes("Coll", keys[0], tenant, bad, None, name)
        with pytest.raises(err.type):
            wire.batch_object("Coll", keys[0], tenant, bad, None, name)


def test_pages_read_without_the_clients_parsing_equal_the_clients_objects(fake: FakeWeaviate, tmp_path: Path) -> None:
    """The source reads the iterator's replies itself (:mod:`vexrun.connectors.weaviate.wire`): what it reads
    is what the client's iterator gives, and a page holding a kind of value it does not read (a date) is read
    through the client."""
    import datetime

    from vexrun.connectors.weaviate import wire

    kinds = {
        "text": DataType.TEXT,
        "page": DataType.INT,
        "w": DataType.NUMBER,
        "ok": DataType.BOOL,
        "tags": DataType.TEXT_ARRAY,
        "ints": DataType.INT_ARRAY,
        "floats": DataType.NUMBER_ARRAY,
        "flags": DataType.BOOL_ARRAY,
    }
    rng = np.random.default_rng(5)
    with fake.client(KEY) as client:
        simple = client.collections.create(
            f"Simple{uuid.uuid4().hex[:6]}",
            properties=[Property(name=k, data_type=t) for k, t in kinds.items()],
            vector_config=Configure.Vectors.self_provided(),
        )
        objects = [
            DataObject(
                properties={
                    "text": f"héllo {i}",
                    "page": (-1) ** i * 2**40 + i,
                    "w": i / 7,
                    "ok": i % 2 == 0,
                    "tags": ["a", f"t{i}"],
                    "ints": [i, -(2**50)],
                    "floats": [0.1 * i, -3.5],
                    "flags": [True, i % 3 == 0],
                }
                if i % 5
                else {"text": None, "page": i},  # absent properties
                uuid=uuid.uuid4(),
                vector=rng.standard_normal(3).astype(np.float32).tolist(),
            )
            for i in range(25)
        ]
        assert not simple.data.insert_many(objects).errors
        dated = client.collections.create(
            f"Dated{uuid.uuid4().hex[:6]}",
            properties=[Property(name="text", data_type=DataType.TEXT), Property(name="at", data_type=DataType.DATE)],
            vector_config=Configure.Vectors.self_provided(),
        )
        when = datetime.datetime(2026, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)
        assert not dated.data.insert_many(
            [DataObject(properties={"text": "d", "at": when}, uuid=uuid.uuid4(), vector=[1.0, 0.0])]
        ).errors
        for coll, fast in ((simple, True), (dated, False)):
            assert wire.readable(coll) and wire.readable(coll.with_tenant("t")) is True
            got = wire.page(wire.fetch(coll, 100, None), "default")
            theirs = wire.items(list(coll.iterator(include_vector=True)), "default")
            assert len(theirs) == (25 if fast else 1)
            if fast:
                assert got == theirs
                assert all(
                    type(a) is type(b)
                    for x, y in zip(got, theirs, strict=True)
                    for a, b in zip(x[1].values(), y[1].values(), strict=True)
                )
            else:
                assert got is None
    ((batch, _),) = _read(fake, tmp_path, dated.name, size=100)
    assert batch.records[0].metadata == {"at": when.isoformat()} and batch.records[0].text == "d"
    pages = _read(fake, tmp_path, simple.name, size=10)
    assert sum(len(b) for b, _ in pages) == 25


def test_a_client_whose_internals_changed_is_written_and_read_through_its_public_api(
    fake: FakeWeaviate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the client lacks what :mod:`vexrun.connectors.weaviate.wire` uses, the sink writes with
    ``insert_many`` and the source reads with ``fetch_objects``: the same objects, read back the same."""
    from vexrun.connectors.weaviate import wire

    recs, vecs = _records(30)
    for i, rec in enumerate(recs):
        rec.metadata = {**(rec.metadata or {}), "tags": ["a", f"b{i}"], "ws": [0.5, i / 3], "flags": [i % 2 == 0]}

    def everything(name: str) -> dict[str, tuple[Record, list[float]]]:
        return {r.id: (r, v.tolist()) for batch, _ in _read(fake, tmp_path, name, size=8) for r, v in batch}

    names = [f"Wire{uuid.uuid4().hex[:8]}", f"Public{uuid.uuid4().hex[:8]}"]
    real = wire.writable
    for name, usable in zip(names, (True, False), strict=True):
        monkeypatch.setattr(wire, "writable", lambda client, usable=usable: usable and real(client))
        sink = _sink(fake, tmp_path, name)
        try:
            assert sink.wire is usable
            assert not _write(sink, recs, vecs)
        finally:
            sink.close()
    monkeypatch.undo()
    fast = everything(names[0])
    assert everything(names[1]) == fast and len(fast) == 30
    monkeypatch.setattr(wire, "readable", lambda coll: False)
    monkeypatch.setattr(wire, "fetch", lambda *a: pytest.fail("read through wire"))
    assert everything(names[0]) == fast
