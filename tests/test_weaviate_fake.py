"""The fake Weaviate (:mod:`vexrun.testing.fake_weaviate`) driven by the real weaviate-client v4: what it accepts
(the schema reply the client parses, cursors, near-vector search, tenants, aggregates, deletes) and what it
refuses the way a real server refuses it (unknown collections, properties and tenants, a missing tenant, vectors
of another dimension, malformed filters, a wrong API key)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
from weaviate.classes.config import Configure, DataType, Property, Tokenization, VectorDistances
from weaviate.classes.data import DataObject
from weaviate.classes.query import Filter, MetadataQuery
from weaviate.exceptions import (
    UnexpectedStatusCodeError,
    WeaviateDeleteManyError,
    WeaviateInsertManyAllFailedError,
    WeaviateQueryError,
)

from vexrun.testing.fake_weaviate import FakeWeaviate

KEY = "fake-key"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeWeaviate]:
    with FakeWeaviate(KEY) as server:
        yield server


@pytest.fixture
def client(fake: FakeWeaviate) -> Iterator[Any]:
    c = fake.client(KEY)
    try:
        yield c
    finally:
        c.close()


def _name() -> str:
    return f"T{uuid.uuid4().hex[:10]}"


def _objects(n: int, dims: int, seed: int = 0) -> list[Any]:
    vecs = np.random.default_rng(seed).standard_normal((n, dims)).astype(np.float32)
    return [
        DataObject(
            properties={"text": f"doc {i}", "n": i, "tags": [f"t{i % 3}", "all"], "w": i / 4},
            uuid=uuid.uuid5(uuid.NAMESPACE_URL, f"o{i}"),
            vector={"default": vecs[i].tolist()},
        )
        for i in range(n)
    ]


def _create(client: Any, name: str, *, mt: bool = False, index: str = "hnsw", distance: str = "cosine") -> Any:
    vi = Configure.VectorIndex.flat if index == "flat" else Configure.VectorIndex.hnsw
    return client.collections.create(
        name,
        properties=[
            Property(name="text", data_type=DataType.TEXT),
            Property(name="n", data_type=DataType.INT),
            Property(name="tags", data_type=DataType.TEXT_ARRAY, tokenization=Tokenization.FIELD),
        ],
        vector_config=Configure.Vectors.self_provided(
            vector_index_config=vi(distance_metric=VectorDistances(distance))
        ),
        multi_tenancy_config=Configure.multi_tenancy(enabled=mt),
    )


def test_schema_reply_is_complete_for_the_client(client: Any) -> None:
    for index, distance in (("hnsw", "cosine"), ("flat", "dot"), ("hnsw", "l2-squared")):
        coll = _create(client, _name(), index=index, distance=distance)
        cfg = coll.config.get()
        vec = cfg.vector_config["default"].vector_index_config
        assert vec.distance_metric == VectorDistances(distance)
        assert [(p.name, p.data_type, p.tokenization) for p in cfg.properties][2] == (
            "tags",
            DataType.TEXT_ARRAY,
            Tokenization.FIELD,
        )
        assert cfg.properties[1].index_filterable and not cfg.properties[1].index_searchable
    assert client.collections.list_all(simple=False)
    # a collection with the class-level (legacy) vector, as older tools create them
    legacy = client.collections._create_from_dict({"class": _name(), "vectorIndexConfig": {"distance": "dot"}})
    assert legacy.config.get().vector_index_config.distance_metric == VectorDistances.DOT


def test_writes_cursor_search_and_counts(client: Any) -> None:
    coll = _create(client, _name())
    objs = _objects(250, 8)
    assert not coll.data.insert_many(objs).errors
    assert coll.aggregate.over_all(total_count=True).total_count == 250
    seen = [str(o.uuid) for o in coll.iterator(include_vector=True, cache_size=40)]
    assert seen == sorted(str(o.uuid) for o in objs)  # the cursor walks objects in UUID order, and ends
    rest = [str(o.uuid) for o in coll.iterator(after=seen[99])]
    assert rest == seen[100:]
    got = coll.query.fetch_objects_by_ids([objs[3].uuid, objs[7].uuid], include_vector=True)
    by_n = {o.properties["n"]: o for o in got.objects}
    assert sorted(by_n) == [3, 7] and by_n[3].properties["tags"] == ["t0", "all"] and by_n[3].properties["w"] == 0.75
    assert np.array_equal(
        np.asarray(by_n[3].vector["default"], np.float32), np.asarray(objs[3].vector["default"], np.float32)
    )
    query = objs[5].vector["default"]
    res = coll.query.near_vector(query, limit=3, return_metadata=MetadataQuery(distance=True, certainty=True))
    assert res.objects[0].properties["n"] == 5 and abs(res.objects[0].metadata.distance) < 1e-6
    assert res.objects[0].metadata.certainty == pytest.approx(1.0)
    near = coll.query.near_vector(query, distance=0.5, limit=250, return_metadata=MetadataQuery(distance=True))
    assert all(o.metadata.distance <= 0.5 for o in near.objects) and len(near.objects) < 250
    tagged = coll.query.fetch_objects(filters=Filter.by_property("tags").contains_any(["t1"]), limit=1000)
    assert sorted(o.properties["n"] for o in tagged.objects) == list(range(1, 250, 3))
    big = coll.query.fetch_objects(filters=Filter.by_property("n").greater_or_equal(240), limit=1000)
    assert len(big.objects) == 10
    # upsert: the same UUID replaces the whole object
    again = DataObject(properties={"text": "replaced"}, uuid=objs[0].uuid, vector=objs[0].vector)
    assert not coll.data.insert_many([again]).errors
    back = coll.query.fetch_object_by_id(objs[0].uuid)
    assert back.properties["text"] == "replaced" and back.properties["n"] is None
    done = coll.data.delete_many(where=Filter.by_id().contains_any([objs[1].uuid, objs[2].uuid]), verbose=True)
    assert (done.matches, done.successful) == (2, 2)
    groups = coll.aggregate.over_all(group_by="text", total_count=True).groups
    assert len(groups) == 248


def test_tenants_are_shards(client: Any) -> None:
    coll = _create(client, _name(), mt=True)
    coll.tenants.create(["alpha", "beta"])
    assert sorted(coll.tenants.get()) == ["alpha", "beta"]
    alpha, beta = coll.with_tenant("alpha"), coll.with_tenant("beta")
    assert not alpha.data.insert_many(_objects(20, 8)).errors
    # each tenant is its own shard: its first vector fixes its dimension
    assert not beta.data.insert_many(_objects(5, 4)).errors
    assert (alpha.aggregate.over_all().total_count, beta.aggregate.over_all().total_count) == (20, 5)
    with pytest.raises(WeaviateInsertManyAllFailedError, match="Existing nodes have vectors with length 8"):
        alpha.data.insert_many(_objects(1, 4, seed=9))
    with pytest.raises(WeaviateQueryError, match="multi-tenancy enabled, but request was without tenant"):
        coll.query.fetch_objects(limit=1)
    with pytest.raises(WeaviateQueryError, match='tenant not found: "gamma"'):
        coll.with_tenant("gamma").query.fetch_objects(limit=1)
    with pytest.raises(WeaviateInsertManyAllFailedError, match="tenant not found"):
        coll.with_tenant("gamma").data.insert_many(_objects(1, 8))
    with pytest.raises(WeaviateInsertManyAllFailedError, match="without tenant"):
        coll.data.insert_many(_objects(1, 8))
    with pytest.raises(UnexpectedStatusCodeError, match="not valid"):
        coll.tenants.create(["no spaces allowed"])
    plain = _create(client, _name())
    with pytest.raises(WeaviateQueryError, match="multi-tenancy disabled, but request was with tenant"):
        plain.with_tenant("alpha").query.fetch_objects(limit=1)


def test_unknown_collections_properties_and_bad_filters_are_refused(client: Any) -> None:
    missing = client.collections.use("NoSuchCollection")
    with pytest.raises(WeaviateQueryError, match="could not find class NoSuchCollection in schema"):
        missing.query.fetch_objects(limit=1)
    with pytest.raises(WeaviateQueryError, match="could not find class"):
        missing.aggregate.over_all(total_count=True)
    with pytest.raises(WeaviateDeleteManyError, match="could not find class"):
        missing.data.delete_many(where=Filter.by_property("n").equal(1))
    assert not client.collections.exists("NoSuchCollection")
    with pytest.raises(UnexpectedStatusCodeError, match="404"):
        missing.config.get()
    coll = _create(client, _name())
    coll.data.insert_many(_objects(5, 8))
    with pytest.raises(WeaviateQueryError, match="no such prop with name 'nope'"):
        coll.query.fetch_objects(filters=Filter.by_property("nope").equal(1))
    with pytest.raises(WeaviateQueryError, match='cannot use "valueText" on type "int"'):
        coll.query.fetch_objects(filters=Filter.by_property("n").equal("one"))
    with pytest.raises(WeaviateQueryError, match="where cannot be set with after"):
        coll.query.fetch_objects(after=uuid.uuid4(), filters=Filter.by_property("n").equal(1))
    with pytest.raises(WeaviateQueryError, match="query maximum results exceeded"):
        coll.query.fetch_objects(offset=9_990, limit=20)
    with pytest.raises(UnexpectedStatusCodeError, match="already exists"):
        _create(client, coll.name)
    bad = DataObject(properties={"n": 1.5}, uuid=uuid.uuid4(), vector={"default": [0.0] * 8})
    res = coll.data.insert_many([bad, *_objects(1, 8, seed=3)])
    assert "requires an integer, the given value is '1.5'" in res.errors[0].message and 1 not in res.errors


def test_vectors_are_checked_against_the_collection(client: Any) -> None:
    coll = _create(client, _name())
    plain = DataObject(properties={"n": 1}, uuid=uuid.uuid4(), vector=[1.0, 2.0])  # unnamed: the only named vector
    unknown = DataObject(properties={"n": 2}, uuid=uuid.uuid4(), vector={"other": [1.0, 2.0]})
    res = coll.data.insert_many([plain, unknown])
    assert list(res.errors) == [1] and "does not have configuration for vector other" in res.errors[1].message
    assert coll.query.fetch_object_by_id(plain.uuid, include_vector=True).vector["default"] == [1.0, 2.0]
    with pytest.raises(WeaviateQueryError, match="vector lengths don't match: 3 vs 2"):
        coll.query.near_vector([1.0, 0.0, 0.0], limit=1)
    legacy = client.collections._create_from_dict({"class": _name(), "vectorIndexConfig": {"distance": "cosine"}})
    # the named-vector API reaches a class-level vector as "default"
    assert not legacy.data.insert_many([DataObject(properties={}, vector={"default": [0.0, 1.0]})]).errors
    with pytest.raises(WeaviateInsertManyAllFailedError, match="configured without multiple named vectors"):
        legacy.data.insert_many([DataObject(properties={}, vector={"other": [0.0, 1.0]})])


def test_autoschema_adds_properties_unless_disabled() -> None:
    with FakeWeaviate() as open_fake, FakeWeaviate(autoschema=False) as strict_fake:
        for server, ok in ((open_fake, True), (strict_fake, False)):
            client = server.client()
            try:
                coll = _create(client, "Auto")
                new = DataObject(properties={"fresh": "x", "when": "2026-01-02T03:04:05Z"}, vector={"default": [1.0]})
                if ok:
                    assert not coll.data.insert_many([new]).errors
                    types = {p.name: p.data_type for p in coll.config.get().properties}
                    assert types["fresh"] == DataType.TEXT and types["when"] == DataType.DATE
                else:
                    # the properties travel as a protobuf map (and Weaviate walks a Go map): either may be named first
                    with pytest.raises(WeaviateInsertManyAllFailedError, match="no such prop with name '(fresh|when)'"):
                        coll.data.insert_many([new])
            finally:
                client.close()


def test_delete_many_stops_at_query_maximum_results() -> None:
    with FakeWeaviate(max_results=30) as server:
        client = server.client()
        try:
            coll = _create(client, "Capped")
            coll.data.insert_many(_objects(50, 4))
            first = coll.data.delete_many(where=Filter.by_property("n").greater_or_equal(0))
            assert (first.matches, first.successful) == (30, 30)
            assert coll.aggregate.over_all(total_count=True).total_count == 20
        finally:
            client.close()


def test_api_key_is_checked_on_rest_and_grpc(fake: FakeWeaviate) -> None:
    for key, message in (("wrong", "invalid api key"), (None, "anonymous access not enabled")):
        with pytest.raises(UnexpectedStatusCodeError, match="401") as err:
            fake.client(key)
        assert message in str(err.value)
    # gRPC with a wrong key (REST accepted the right one): Weaviate answers a Go error, status UNKNOWN
    from weaviate.proto.v1 import search_get_pb2, weaviate_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{fake.grpc_port}") as channel:
        stub = weaviate_pb2_grpc.WeaviateStub(channel)
        request = search_get_pb2.SearchRequest(collection="Anything", limit=1)
        with pytest.raises(grpc.RpcError) as rpc:
            stub.Search(request, metadata=[("authorization", "Bearer wrong")])
        assert rpc.value.code() == grpc.StatusCode.UNKNOWN
        assert rpc.value.details() == "extract auth: unauthorized: invalid api key"
    assert not fake.errors
