"""The wire-level fake of Pinecone (``vexrun.testing.pinecone``), driven by the real ``pinecone`` SDK as a user
would drive a Pinecone project, and by raw HTTP where the SDK checks a rule itself before sending: the shapes
the SDK parses, and the limits a real serverless index enforces (sizes, counts, ids, dimensions, metadata,
request rates), answered with the real statuses and messages."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from pinecone import Pinecone, ServerlessSpec
from pinecone.errors.exceptions import (
    ApiError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    UnauthorizedError,
)

from vexrun.testing.pinecone import FakePinecone
from vexrun.testing.services import pinecone as service

KEY = "pcsk_test_key"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakePinecone]:
    with FakePinecone(KEY) as running:
        yield running


@pytest.fixture
def pc(fake: FakePinecone) -> Iterator[Pinecone]:
    with Pinecone(api_key=KEY, host=fake.control_url) as client:
        yield client


def _name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def _raw(host: str, path: str, body: Any, key: str = KEY) -> httpx.Response:
    with httpx.Client(base_url=host) as http:
        return http.post(path, content=orjson.dumps(body), headers={"Api-Key": key, "Content-Type": "application/json"})


def test_control_plane_creates_describes_lists_and_deletes(fake: FakePinecone, pc: Pinecone) -> None:
    name = _name()
    model = pc.create_index(
        name=name, dimension=8, metric="dotproduct", spec=ServerlessSpec(cloud="aws", region="eu-west-1")
    )
    assert (model.dimension, model.metric, model.status.ready) == (8, "dotproduct", True)
    assert model.host == fake.host(name) and model.host.startswith("http://127.0.0.1:")
    assert pc.describe_index(name).host == model.host
    assert name in [ix.name for ix in pc.indexes.list()]
    with pytest.raises(ConflictError):
        pc.create_index(name=name, dimension=8, spec=ServerlessSpec(cloud="aws", region="us-east-1"))
    bad = _raw(fake.control_url, "/indexes", {"name": "Bad_Name", "dimension": 8, "metric": "cosine"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "INVALID_ARGUMENT"
    pc.delete_index(name, timeout=-1)
    with pytest.raises(NotFoundError, match=f"Resource {name} not found"):
        pc.describe_index(name)
    # an older SDK's API version gets the older shape (dimension / metric / spec at the top)
    old = httpx.get(f"{fake.control_url}/indexes", headers={"Api-Key": KEY, "X-Pinecone-Api-Version": "2025-04"})
    assert all("dimension" in ix and "spec" in ix for ix in old.json()["indexes"])


def test_wrong_key_is_refused_on_both_planes(fake: FakePinecone) -> None:
    host = fake.create_index(_name(), 4)
    with Pinecone(api_key="pcsk_wrong", host=fake.control_url) as bad:
        with pytest.raises(UnauthorizedError, match="Invalid API Key"):
            bad.indexes.list().to_list()
        with pytest.raises(UnauthorizedError) as caught, bad.Index(host=host) as index:
            index.describe_index_stats()
    assert caught.value.status_code == 401
    assert _raw(host, "/describe_index_stats", {}, key="").status_code == 401


def test_upsert_fetch_list_query_delete_round_trip(fake: FakePinecone, pc: Pinecone) -> None:
    host = fake.create_index(_name(), 4, "cosine")
    with pc.Index(host=host) as index:
        vectors = [
            {
                "id": f"id-{i:03d}",
                "values": [1.0, float(i), 0.5, -0.25],
                "metadata": {"n": i, "tag": ["a"], "gone": None},
            }
            for i in range(250)
        ]
        assert index.upsert(vectors=vectors[:200], namespace="ns").upserted_count == 200
        index.upsert(vectors=vectors[200:])  # the default namespace
        stats = index.describe_index_stats()
        assert stats.total_vector_count == 250 and stats.dimension == 4 and stats.metric == "cosine"
        assert {k: v.vector_count for k, v in stats.namespaces.items()} == {"": 50, "ns": 200}
        got = index.fetch(ids=["id-001", "id-999", "id-002"], namespace="ns").vectors
        assert sorted(got) == ["id-001", "id-002"]
        # numbers come back as doubles, nulls are dropped, float32 values as stored
        assert got["id-001"].metadata == {"n": 1.0, "tag": ["a"]}
        assert got["id-001"].values == [1.0, 1.0, 0.5, -0.25]
        # list: sorted ids, pages of at most 100, a prefix, a token that resumes after the last id
        ids, token, pages = [], None, 0
        while True:
            page = index.list_paginated(namespace="ns", limit=64, pagination_token=token)
            ids += [v.id for v in page.vectors]
            pages += 1
            token = page.pagination.next if page.pagination else None
            if token is None:
                break
        assert ids == sorted(v["id"] for v in vectors[:200]) and pages == 4
        assert [v.id for v in index.list_paginated(namespace="ns", prefix="id-19").vectors] == [
            f"id-19{i}" for i in range(10)
        ]
        with pytest.raises(Exception, match="limit"):
            index.list_paginated(namespace="ns", limit=101)
        hits = index.query(vector=[1.0, 5.0, 0.5, -0.25], top_k=3, namespace="ns", include_metadata=True)
        assert hits.matches[0].id == "id-005" and hits.matches[0].score == pytest.approx(1.0)
        assert hits.matches[0].metadata == {"n": 5.0, "tag": ["a"]} and hits.matches[0].values == []
        narrowed = index.query(vector=[1, 5, 0.5, -0.25], top_k=3, namespace="ns", filter={"n": {"$gte": 100}})
        assert [m.id for m in narrowed.matches][0] == "id-100"
        index.delete(ids=["id-001", "id-002", "id-nope"], namespace="ns")
        assert index.describe_index_stats().namespaces["ns"].vector_count == 198


def test_euclidean_and_dot_product_rank_as_pinecone_does(fake: FakePinecone, pc: Pinecone) -> None:
    for metric, best in (("euclidean", "near"), ("dotproduct", "long")):
        with pc.Index(host=fake.create_index(_name(), 2, metric)) as index:
            index.upsert(vectors=[("near", [1.0, 0.1]), ("long", [10.0, 0.0]), ("far", [-20.0, 5.0])])
            matches = index.query(vector=[1.0, 0.0], top_k=3).matches
            assert matches[0].id == best, metric
            if metric == "euclidean":  # squared distance, smallest first
                assert matches[0].score == pytest.approx(0.01, rel=1e-6) and matches[-1].id == "far"


def test_upsert_limits_answer_as_a_real_index(fake: FakePinecone, pc: Pinecone) -> None:
    host = fake.create_index(_name(), 384)
    rng = np.random.default_rng(1)
    vecs = rng.standard_normal((1001, 384)).astype(np.float32)
    with pc.Index(host=host) as index:
        with pytest.raises(PayloadTooLargeError, match="exceeds the maximum supported size of 2MB"):
            index.upsert(vectors=[(f"v{i}", vecs[i].tolist()) for i in range(600)])  # ~4.7 MB
        small = [(f"v{i}", [1.0] * 384) for i in range(1001)]  # 1,001 records in under 2 MB
        with pytest.raises(ApiError, match="exceeds the maximum of 1000 vectors") as caught:
            index.upsert(vectors=small)
        assert caught.value.status_code == 400
        with pytest.raises(ApiError, match="Vector dimension 3 does not match the dimension of the index 384"):
            index.upsert(vectors=[("short", [1.0, 2.0, 3.0])])
        with pytest.raises(ApiError, match="at least one non-zero value"):
            index.upsert(vectors=[("zero", [0.0] * 384)])
        with pytest.raises(ApiError, match="at most 512 characters"):
            index.upsert(vectors=[("x" * 513, [1.0] * 384)])
        big = {"text": "x" * 41_000}
        with pytest.raises(ApiError, match=r"Metadata size is \d+ bytes, which exceeds the limit of 40960 bytes"):
            index.upsert(vectors=[{"id": "big", "values": [1.0] * 384, "metadata": big}])
        assert index.describe_index_stats().total_vector_count == 0  # a refused request writes nothing
    # what the SDK refuses before sending is refused by the server too
    for bad, message in (
        ({"nested": {"a": 1}}, "got '{\"a\":1.0}' for field 'nested'"),
        ({"nums": [1, 2]}, "got '[1.0,2.0]' for field 'nums'"),
    ):
        res = _raw(host, "/vectors/upsert", {"vectors": [{"id": "m", "values": [1.0] * 384, "metadata": bad}]})
        assert res.status_code == 400 and message in res.json()["message"], res.text
        assert res.json()["code"] == 3 and res.json()["details"] == []
    res = _raw(host, "/vectors/upsert", {"vectors": [{"id": "émoji", "values": [1.0] * 384}]})
    assert res.status_code == 400 and "ASCII" in res.json()["message"]
    ids = "&".join(f"ids=i{i}" for i in range(1001))
    assert httpx.get(f"{host}/vectors/fetch?{ids}", headers={"Api-Key": KEY}).status_code == 400


def test_upserts_above_the_rate_are_refused_with_429(fake: FakePinecone, monkeypatch: pytest.MonkeyPatch) -> None:
    host = fake.create_index(_name(), 2)
    before = fake.stats.snapshot()["throttled"].get("upsert", 0)
    monkeypatch.setattr(fake.limits, "upserts_per_second", 1.0)
    monkeypatch.setattr(fake.limits, "burst_seconds", 5.0)  # a bucket of 5, refilled at 1 a second
    headers = {"Api-Key": KEY, "Content-Type": "application/json"}

    def put(http: httpx.Client, rid: str, namespace: str = "") -> int:
        body = {"namespace": namespace, "vectors": [{"id": rid, "values": [1.0, 0.0]}]}
        return http.post("/vectors/upsert", content=orjson.dumps(body), headers=headers).status_code

    with httpx.Client(base_url=host) as http:
        t0 = time.monotonic()
        codes = [put(http, f"r{i}") for i in range(12)]
        elapsed = time.monotonic() - t0
        other = put(http, "x", "other")
        time.sleep(1.2)  # the bucket refills continuously
        again = put(http, "late")
        refused = http.post("/vectors/upsert", content=b"{}", headers=headers).status_code
    assert codes[:5] == [200] * 5 and codes.count(429) >= 7 - int(elapsed) - 1, (codes, elapsed)
    assert other == 200 and again == 200 and refused == 429  # per namespace; a refill; a 429 before parsing
    answer = fake.stats.snapshot()["throttled"]["upsert"] - before
    assert answer == codes.count(429) + 1
    # the SDK retries a 429 three times (with backoff; not slept here), then raises RateLimitError
    monkeypatch.setattr(fake.limits, "upserts_per_second", 0.001)
    monkeypatch.setattr("pinecone._internal.http_client._retry_sleep", lambda s: None)
    with Pinecone(api_key=KEY, host=fake.control_url) as pc, pc.Index(host=host) as index:
        with pytest.raises(RateLimitError) as caught:
            for i in range(3):
                index.upsert(vectors=[(f"q{i}", [0.0, 1.0])], namespace="slow")
    assert caught.value.status_code == 429 and "upsert requests per second" in str(caught.value)


def test_injected_failures_and_the_process_service(fake: FakePinecone, pc: Pinecone, tmp_path: Any) -> None:
    host = fake.create_index(_name(), 2)
    fake.fail("/describe_index_stats", 503, times=1)
    with pc.Index(host=host) as index:
        assert index.describe_index_stats().total_vector_count == 0  # the SDK retried the 503
    handle = service.start(tmp_path, indexes={"memories": 3})
    try:
        assert service.count(handle, "memories") == 0
        with service.client(handle) as client, client.Index(host=handle.indexes["memories"]) as index:
            index.upsert(vectors=[("a", [1.0, 2.0, 3.0])], namespace="n")
        assert service.count(handle, "memories") == 1
        stats = service.stats(handle)
        assert stats["upserted"] == 1 and stats["by_route"]["POST /vectors/upsert"] == 1
    finally:
        service.stop(handle)
    assert handle.proc is not None and handle.proc.returncode == 0


def _upsert_bodies() -> list[bytes]:
    """Upsert bodies, written by hand: number spellings chosen to trip a careless parser, and every way an upsert
    can be wrong that the fast parse must leave to the reference (orjson) or judge alike."""
    good = [
        "0.1, -2.5, 1E5, -0, 3, 1.00000000000000000001, 1.4e-45, 3.4028234663852886e38",
        "4.9406564584124654e-324, 2.2250738585072014e-308, 9007199254740993, -1e-7, 0.30000001192092896, 1e-45, 7, 8",
        "1, 0, 0, 0, 0, 0, 0, 18446744073709551615",
    ]
    vec = '{{"id":{id},"values":[{values}],"metadata":{meta}}}'
    bodies = [
        '{"vectors":['
        + ",".join(vec.format(id=f'"v{i}"', values=v, meta='{"k":1}') for i, v in enumerate(good))
        + "]}",
        '{"namespace":"ns2","vectors":[' + vec.format(id='"u"', values=good[0], meta='{"t":["a"],"f":2.5}') + "]}",
        '{"vectors":[{"id":"s","values":[' + good[1] + '],"sparseValues":{"indices":[1],"values":[0.5]}}]}',
    ]
    wrong = [
        vec.format(id='"w"', values="1, 2, 3", meta="null"),  # wrong dimension
        vec.format(id='"w"', values="1, 2, 3, 4, 5, 6, 7, 1e39", meta="null"),  # beyond float32: not finite
        vec.format(id='"w"', values="0, 0, 0, 0, 0, 0, 0, -0", meta="null"),  # all zeros
        vec.format(id='"w"', values='1, 2, 3, 4, 5, 6, 7, "8"', meta="null"),  # a string (numpy would take it)
        vec.format(id='"w"', values="1, 2, 3, 4, 5, 6, 7, true", meta="null"),  # a boolean (numpy would take it)
        vec.format(id='"w"', values="[1, 2], 3, 4, 5, 6, 7, 8", meta="null"),  # nested
        vec.format(id='"w"', values="1, 2, 3, 4, 5, 6, 7, 1e400", meta="null"),  # beyond a double
        vec.format(id='"w"', values="1, 2, 3, 4, 5, 6, 7, 123456789012345678901234567890", meta="null"),
        '{"id":"w","values":[],"metadata":null}',
        '{"id":"w","values":null}',
        '{"id":"w"}',
        vec.format(id="7", values=good[0], meta="null"),  # an id that is not a string
        vec.format(id='"w"', values=good[0], meta="[1]"),  # metadata that is not an object
        '"not an object"',
    ]
    bodies += ['{"vectors":[' + item + "]}" for item in wrong]
    bodies += [
        '{"vectors":[]}',
        '{"vectors":{}}',
        '{"namespace":7,"vectors":[]}',
        "[]",
        "{",
        '{"vectors":[{"id":"x",}]}',
    ]
    return [body.encode() for body in bodies]


def test_the_fast_upsert_parse_answers_and_stores_as_the_reference(
    fake: FakePinecone, pc: Pinecone, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fake reads an upsert's values with simdjson (no Python float per value) where it can: every body gets
    the same answer, and every stored vector the same float32 bits, as with the whole body read by orjson."""
    from vexrun.testing.pinecone import api

    answers: dict[str, list[tuple[int, bytes]]] = {}
    stored: dict[str, dict[str, Any]] = {}
    fast: list[bool] = []
    parse = api.DataPlane._upsert_fast

    arrays: list[int] = []

    def spy(self: Any, body: bytes) -> Any:
        got = parse(self, body)
        fast.append(got is not None)
        arrays.append(0 if got is None else sum(isinstance(v.get("values"), np.ndarray) for v in got[1]))
        return got

    for mode in ("fast", "reference"):
        name = _name()
        pc.create_index(name=name, dimension=8, metric="cosine", spec=ServerlessSpec(cloud="aws", region="us-east-1"))
        host = fake.host(name)
        if mode == "fast":
            monkeypatch.setattr(api.DataPlane, "_upsert_fast", spy)
        else:
            monkeypatch.setattr(api.DataPlane, "_upsert_fast", lambda self, body: None)
        with httpx.Client(base_url=host) as http:
            headers = {"Api-Key": KEY, "Content-Type": "application/json"}
            answers[mode] = [
                (r.status_code, r.content)
                for r in (http.post("/vectors/upsert", content=b, headers=headers) for b in _upsert_bodies())
            ]
        stored[mode] = {
            f"{ns}/{rid}": (vec.view(np.uint32).tolist(), meta)
            for ns, space in fake.indexes[name].namespaces.items()
            for rid, (vec, meta) in space.records.items()
        }
    assert answers["fast"] == answers["reference"]
    assert stored["fast"] == stored["reference"]
    assert sorted(stored["fast"]) == ["/s", "/v0", "/v1", "/v2", "/w", "ns2/u"]  # "/w": the integer beyond 64 bits
    assert [status for status, _ in answers["fast"]].count(200) == 4
    # the fast parse took every body msgspec reads as an object with a list of objects under "vectors", values
    # simdjson does not vouch for read by orjson alone; it left to the reference the number beyond a double
    # (orjson refuses the body), the item that is not an object and the bodies of other shapes
    beyond, not_object = [False], [False]
    assert fast == [True] * 3 + [True] * 6 + beyond + [True] * 6 + not_object + [True, False, True, False, False, False]
    # simdjson read the values of the well-formed vectors and of those refused for their dims, finiteness, zeros,
    # id or metadata; the string, boolean, nested array, integer beyond 64 bits, [] and null went to orjson
    assert arrays == [3, 1, 1] + [1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0] + [0] * 6, arrays
