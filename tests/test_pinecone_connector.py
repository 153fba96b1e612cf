"""The Pinecone connector against the wire-level fake (the real ``pinecone`` SDK over loopback HTTP): what
Pinecone cannot hold made to round-trip, records it refuses rejected one by one, requests cut by their real
size, the rate limit kept and its 429s retried, the index found, created or refused, the resumable export,
search, and one clear line for every failure, without the key."""

from __future__ import annotations

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
from vexrun.connectors.encoding import from_store, split_for, to_store
from vexrun.connectors.pinecone import PineconeSink, PineconeSinkConfig, PineconeSource, PineconeSourceConfig
from vexrun.errors import ConnectError, InvalidInput
from vexrun.registry import resolve
from vexrun.testing.git_servers import free_port
from vexrun.testing.pinecone import FakePinecone
from vexrun.vmig.batch import Batch
from vexrun.vmig.model import Record

KEY = "pcsk_connector_test_key"
CAPS = resolve("sink", "pinecone").capabilities


@pytest.fixture(scope="module")
def fake() -> Iterator[FakePinecone]:
    with FakePinecone(KEY) as running:
        yield running


def _ctx(tmp: Path, log: list[str] | None = None) -> RunContext:
    return RunContext(state_dir=tmp, recipe_dir=tmp, log=log.append if log is not None else None)


def _name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def _sink(fake: FakePinecone, tmp: Path, name: str | None = None, **kw: Any) -> PineconeSink:
    cfg: dict[str, Any] = {"api_key": KEY, "index": name or _name(), "controller_host": fake.control_url}
    cfg.setdefault("create", {"cloud": "aws", "region": "us-east-1"})
    cfg.update(kw)
    sink = PineconeSink(PineconeSinkConfig(**cfg), _ctx(tmp))
    sink.open(None)
    return sink


def _source(fake: FakePinecone, tmp: Path, name: str, **kw: Any) -> PineconeSource:
    source = PineconeSource(
        PineconeSourceConfig(api_key=KEY, index=name, controller_host=fake.control_url, **kw), _ctx(tmp)
    )
    source.open()
    return source


def _read(
    fake: FakePinecone, tmp: Path, name: str, cursor: dict[str, Any] | None = None, size: int = 64, **kw: Any
) -> list[tuple[Batch, dict[str, Any]]]:
    source = _source(fake, tmp, name, **kw)
    try:
        return list(source.batches(cursor, size))
    finally:
        source.close()


def _write(sink: PineconeSink, recs: list[Record], vecs: np.ndarray) -> dict[str, str]:
    """Write as the runner does (store encoding, then the declared batch limits); returns what was rejected."""
    rejected: dict[str, str] = {}
    for part in split_for(to_store(Batch.from_records(recs, list(vecs)), CAPS), CAPS):
        rejected.update(sink.write(part).rejected)
    return rejected


def _records(
    n: int, dims: int = 8, seed: int = 0, ns: tuple[str | None, ...] = ("a", "b", None)
) -> tuple[list[Record], np.ndarray]:
    rng = np.random.default_rng(seed)
    recs = [
        Record(id=f"mem-{i:05d}", text=f"memory {i}", namespace=ns[i % len(ns)], metadata={"turn": i}, model="m")
        for i in range(n)
    ]
    return recs, rng.standard_normal((n, dims)).astype(np.float32)


def test_what_pinecone_cannot_hold_round_trips(fake: FakePinecone, tmp_path: Path) -> None:
    name = _name()
    sink = _sink(fake, tmp_path, name)
    sink.prepare(8, "m")
    meta: dict[str, Any] = {
        "int": 7,
        "neg": -3,
        "float": 2.5,
        "whole": 4.0,
        "big": 2**60,
        "flag": True,
        "tags": ["x", "y"],
        "nums": [1, 2, 3],
        "mixed": [1, "two", None],
        "empty": [],
        "none": None,
        "ünï": "välue",
    }
    recs = [
        Record(
            id="plain", text="hello", namespace="a", metadata=meta, model="m", score=0.25, extra={"k": [1, {"z": 2}]}
        ),
        Record(id="émoji-🙂", text=None, namespace="a", metadata=None, created_at="2026-01-01T00:00:00Z"),
        Record(id="nul\x00id", text="t", namespace=None, metadata={}),
        Record(id="x" * 600, text="long id", namespace="b", metadata={"n": 1}),
    ]
    vecs = np.random.default_rng(1).standard_normal((4, 8)).astype(np.float32)
    assert _write(sink, recs, vecs) == {}
    back = sink.fetch([r.id for r in recs])
    assert [r.id for r in back.records] == [r.id for r in recs]
    for (got, vec), rec, want in zip(back, recs, vecs, strict=True):
        assert (got.text, got.namespace, got.metadata, got.score, got.extra) == (
            rec.text,
            rec.namespace,
            rec.metadata,
            rec.score,
            rec.extra,
        ), rec.id
        assert got.created_at == rec.created_at and got.model == rec.model
        assert vec is not None and np.array_equal(vec.view(np.uint32), want.view(np.uint32))
    # other tools see the metadata natively: top-level values, text under "text"; the rest as JSON text
    stored = fake.indexes[name].namespaces["a"].records["plain"][1]
    assert stored is not None
    assert stored["text"] == "hello" and stored["int"] == 7.0 and stored["tags"] == ["x", "y"]
    assert stored["nums"] == "[1,2,3]" and stored["none"] == "null" and isinstance(stored["_vexrun"], str)
    # the export decodes the same
    source = _source(fake, tmp_path, name)
    exported = {r.id: r for batch, _ in source.batches(None, 100) for r in from_store(batch).records}
    assert exported["plain"].metadata == meta and exported["nul\x00id"].metadata == {}
    assert exported["émoji-🙂"].metadata is None and exported["x" * 600].metadata == {"n": 1}
    sink.close()
    source.close()


def test_records_pinecone_refuses_are_rejected_and_the_rest_written(fake: FakePinecone, tmp_path: Path) -> None:
    sink = _sink(fake, tmp_path)
    sink.prepare(4, "m")
    recs = [Record(id=f"r{i}", text="ok", metadata={"i": i}) for i in range(6)]
    recs[3] = Record(id="r3", text="y" * 41_000)
    recs[4] = Record(id="r4", text="clash", metadata={"text": "mine"})
    vecs = np.ones((6, 4), dtype=np.float32)
    vecs[1] = 0.0
    vecs[2, 0] = np.nan
    has = np.ones(6, dtype=bool)
    has[5] = False
    result = sink.write(Batch(records=recs, vectors=vecs, has_vector=has))
    assert result.written == 1 and sorted(result.rejected) == ["r1", "r2", "r3", "r4", "r5"]
    assert "zeros" in result.rejected["r1"] and "non-finite" in result.rejected["r2"]
    assert "40,960" in result.rejected["r3"] and "reserved" in result.rejected["r4"]
    assert "no vector" in result.rejected["r5"]
    wrong = sink.write(Batch.from_records([Record(id="w", text="w")], [np.ones(5, dtype=np.float32)]))
    assert wrong.written == 0 and "5 dims" in wrong.rejected["w"]
    # a request Pinecone refuses is split until the records it refuses are found
    fake.fail("/vectors/upsert", 400, times=3, message="Metadata value is refused")
    two = [Record(id="p", text="p"), Record(id="q", text="q")]
    result = sink.write(Batch.from_records(two, list(np.ones((2, 4), dtype=np.float32))))
    assert result.written == 0 and result.rejected == {
        "p": "pinecone refused the record: Metadata value is refused",
        "q": "pinecone refused the record: Metadata value is refused",
    }
    fake.fail("/vectors/upsert", 400, times=1)
    assert sink.write(Batch.from_records(two, list(np.ones((2, 4), dtype=np.float32)))).written == 2
    fake.fail("/vectors/upsert", 503, times=5)  # the SDK retries three times, the sink goes on
    assert sink.write(Batch.from_records(two, list(np.ones((2, 4), dtype=np.float32)))).written == 2
    assert sink.count() == 3
    sink.close()


def test_requests_are_cut_by_their_real_size(fake: FakePinecone, tmp_path: Path) -> None:
    sink = _sink(fake, tmp_path)
    sink.prepare(384, "m")
    recs, vecs = _records(1000, dims=384, ns=("only",))
    for rec in recs:
        rec.text = "lorem ipsum " * 250  # 3 KB of text each: ~7.5 MB of JSON in all
    before = fake.stats.snapshot()
    assert _write(sink, recs, vecs) == {}
    after = fake.stats.snapshot()
    requests = after["upsert_requests"] - before["upsert_requests"]
    assert after["by_status"].get("413", 0) == before["by_status"].get("413", 0)
    assert 4 <= requests <= 6, requests  # each near 2 MB, none above
    sent = after["bytes_in"] - before["bytes_in"]
    assert sent < 8_500_000, sent  # values as float32's shortest decimals (as doubles: ~11 MB)
    assert sink.count("only") == 1000
    sink.close()


def test_the_sink_keeps_under_the_rate_limit(
    fake: FakePinecone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fake.limits, "upserts_per_second", 40.0)
    sink = _sink(fake, tmp_path, upserts_per_second=40.0, parallel=4, max_request_bytes=10_000)
    sink.prepare(64, "m")
    recs, vecs = _records(300, dims=64, ns=("one",))  # ~1 KB a record: ~30 requests of ~10 KB
    before = fake.stats.snapshot()
    t0 = time.monotonic()
    assert _write(sink, recs, vecs) == {}
    elapsed = time.monotonic() - t0
    after = fake.stats.snapshot()
    requests = after["upsert_requests"] - before["upsert_requests"]
    assert requests >= 25
    assert after["throttled_total"] == before["throttled_total"]  # paced, never refused
    assert elapsed >= (requests - 4) / 40.0 * 0.9  # and at the rate: a bucket holds a tenth of a second
    sink.close()


def test_429s_are_retried_until_everything_is_written(
    fake: FakePinecone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fake.limits, "upserts_per_second", 15.0)
    monkeypatch.setattr(fake.limits, "burst_seconds", 0.1)
    sink = _sink(fake, tmp_path, upserts_per_second=500.0, parallel=4, max_request_bytes=10_000)
    sink.prepare(64, "m")
    recs, vecs = _records(150, dims=64, ns=("hot",))
    before = fake.stats.snapshot()["throttled_total"]
    assert _write(sink, recs, vecs) == {}
    assert fake.stats.snapshot()["throttled_total"] > before
    assert sink.count("hot") == 150
    sink.close()


def test_the_index_is_found_created_or_refused(fake: FakePinecone, tmp_path: Path) -> None:
    name = _name()
    missing = _sink(fake, tmp_path, name, create=None)
    assert "does not exist yet (add `create:`" in missing.check()
    with pytest.raises(InvalidInput, match="the index does not exist") as caught:
        missing.prepare(8, "m")
    assert "create:" in str(caught.value)
    sink = _sink(fake, tmp_path, name, create={"cloud": "gcp", "region": "us-central1"})
    sink.prepare(8, "m", metric="l2")
    assert (fake.indexes[name].dimension, fake.indexes[name].metric) == (8, "euclidean")
    assert fake.indexes[name].cloud == "gcp"
    assert sink.check().endswith("reachable, 0 records, 8-d l2")
    other = _sink(fake, tmp_path, name)
    with pytest.raises(InvalidInput, match="holds 8-d vectors, this run writes 16-d"):
        other.prepare(16, "m")
    # by host alone: no control plane at all
    by_host = PineconeSink(PineconeSinkConfig(api_key=KEY, host=fake.host(name)), _ctx(tmp_path))
    by_host.open(None)
    by_host.prepare(8, "m")
    recs, vecs = _records(5)
    assert _write(by_host, recs, vecs) == {}
    assert by_host.count() == 5 and by_host.identity() == "pinecone:127.0.0.1 at " + fake.host(name)
    hits = by_host.search(vecs[2], "", 2)
    assert hits[0].id == recs[2].id and hits[0].score == pytest.approx(0.0, abs=1e-5)  # l2: -distance
    for s in (missing, sink, other, by_host):
        s.close()


def test_the_export_resumes_at_its_page_and_namespace(fake: FakePinecone, tmp_path: Path) -> None:
    name = _name()
    sink = _sink(fake, tmp_path, name)
    sink.prepare(8, "m")
    recs, vecs = _records(350)
    assert _write(sink, recs, vecs) == {}
    full = _read(fake, tmp_path, name)
    ids = [r.id for batch, _ in full for r in batch.records]
    assert sorted(ids) == sorted(r.id for r in recs) and len(ids) == len(set(ids))
    assert [c.get("ns") for _, c in full[:-1]] == sorted(c["ns"] for _, c in full[:-1])  # '' first, then a, b
    assert full[-1][1] == {"done": True, "read": 350}
    for k in (1, 2, 3, 5):  # mid-namespace (a token) and at a namespace boundary (the next namespace)
        resumed = [r.id for batch, _ in _read(fake, tmp_path, name, full[k - 1][1]) for r in batch.records]
        assert ids[: sum(len(b) for b, _ in full[:k])] + resumed == ids, k
    assert _read(fake, tmp_path, name, full[-1][1]) == []
    default = [r for batch, _ in _read(fake, tmp_path, name, size=500, namespace="") for r in batch.records]
    assert len(default) == len([r for r in recs if r.namespace is None]) and {r.namespace for r in default} == {None}
    only_b = _source(fake, tmp_path, name, namespace="b")
    assert only_b.estimate() == len([r for r in recs if r.namespace == "b"])
    only_b.close()
    hits = sink.search(vecs[7], "", 3)
    assert hits[0].id == recs[7].id and hits[0].cosine == pytest.approx(1.0, abs=1e-6)
    assert [h.rank for h in hits] == [1, 2, 3]
    assert all(h.namespace == "b" for h in sink.search(vecs[7], "", 5, namespace="b"))
    sink.close()


def test_an_index_is_read_in_runs_of_namespaces_each_at_its_share_of_the_rates(
    fake: FakePinecone, tmp_path: Path
) -> None:
    """``run.executor: ray`` reads runs of consecutive namespaces: one after the other they are the serial read's
    batches, each resumes from its own cursors, and the partitions that run at once share the index's rates."""
    name = _name()
    sink = _sink(fake, tmp_path, name)
    sink.prepare(8, "m")
    recs, vecs = _records(400, ns=("a", "b", "c", None))
    assert _write(sink, recs, vecs) == {}
    sink.close()
    source = _source(fake, tmp_path, name)
    try:
        source.ctx.parallel = 2  # two workers: each partition reads at half the index's rates
        names, serial, split = partitioned_read(source, 2, 64)
        assert names == ["namespaces '' … 'a'", "namespaces 'b' … 'c'"]
        assert split == serial and sum(map(len, serial)) == 400
        assert source.lists.rate == source.cfg.lists_per_second / 2
        assert source.fetches.rate == source.cfg.fetches_per_second / 2
        source.ctx.parallel = 3  # more partitions than workers: a third each, not a fourth
        parts = source.partitions(8, 64)
        assert [n for n, _ in parts] == ["namespace ''", "namespace 'a'", "namespace 'b'", "namespace 'c'"]
        assert {cursor["share"] for _, cursor in parts if cursor} == {3}
    finally:
        source.close()
    only_b = _source(fake, tmp_path, name, namespace="b")
    assert only_b.partitions(4, 64) == [("all", None)]
    only_b.close()


def test_failures_are_one_line_without_the_key(fake: FakePinecone, tmp_path: Path) -> None:
    name = _name()
    good = _sink(fake, tmp_path, name)
    good.prepare(4, "m")
    good.close()
    wrong = "pcsk_wrong_secret_value"
    for cfg in (
        {"api_key": wrong, "index": name, "controller_host": fake.control_url},
        {"api_key": wrong, "host": fake.host(name)},
    ):
        with pytest.raises(ConnectError) as caught:
            PineconeSink(PineconeSinkConfig(**cfg), _ctx(tmp_path)).open(None)
        assert "refused the credentials" in str(caught.value) and wrong not in str(caught.value)
        assert "\n" not in str(caught.value)
    t0 = time.monotonic()
    with pytest.raises(ConnectError, match="cannot reach pinecone index at http://127.0.0.1:"):
        PineconeSink(PineconeSinkConfig(api_key=KEY, host=f"http://127.0.0.1:{free_port()}"), _ctx(tmp_path)).open(None)
    assert time.monotonic() - t0 < 15
    with pytest.raises(InvalidInput, match="does not exist"):
        _source(fake, tmp_path, _name())


def _tricky_fetch_reply(*, without_values: bool = False) -> bytes:
    """A fetch reply as Pinecone's JSON could spell it: number spellings chosen to trip a careless parser, and the
    fields vexrun does not read; ``without_values`` adds records with empty and absent values (the SDK refuses
    those replies)."""
    rows = [
        "0.1, -2.5, 1E5, -0, 3, 1.00000000000000000001, 1.4e-45, 3.4028234663852886e38",
        "4.9406564584124654e-324, 2.2250738585072014e-308, 9007199254740993, -1e-7, 0.30000001192092896, 1e-45, 7, 8",
    ]
    vectors = {
        "a": f'{{"id":"a","values":[{rows[0]}],"metadata":{{"text":"x","n":3,"f":3.0,"t":["p"],"b":true}}}}',
        "b/ü": f'{{"id":"b/ü","values":[{rows[1]}],"sparseValues":{{"indices":[1],"values":[0.5]}}}}',
    }
    if without_values:
        vectors["c"] = '{"id":"c","values":[],"metadata":{"only":"meta"}}'
        vectors["d"] = '{"id":"d","metadata":null}'
    body = ",".join(f'"{key}":{value}' for key, value in vectors.items())
    return f'{{"vectors":{{{body}}},"namespace":"ns","usage":{{"readUnits":1}}}}'.encode()


def test_fetch_replies_read_without_the_sdk_decoding_equal_what_the_sdk_decodes() -> None:
    """The source reads ``fetch`` replies itself (values by simdjson into float32, the rest by msgspec): the
    records and the float32 bits equal what the SDK's own decoding gives, on tricky number spellings."""
    from pinecone._internal.adapters.vectors_adapter import VectorsAdapter

    from vexrun.connectors.pinecone.codec import to_batch
    from vexrun.connectors.pinecone.readback import decode_fetch

    reply = _tricky_fetch_reply()
    ours = decode_fetch(reply, "ns")
    sdk = VectorsAdapter.to_fetch_response(reply)
    theirs = {key: (key, vec.values, vec.metadata, "ns") for key, vec in sdk.vectors.items()}
    assert list(ours) == list(theirs) == ["a", "b/ü"]
    assert isinstance(ours["a"][1], np.ndarray) and ours["a"][1].dtype == np.float32  # the fast path was taken
    mine, sdks = to_batch(list(ours.values()), "text"), to_batch(list(theirs.values()), "text")
    assert mine.records == sdks.records
    assert mine.vectors is not None and sdks.vectors is not None
    assert np.array_equal(mine.vectors.view(np.uint32), sdks.vectors.view(np.uint32))
    # records without values (which the SDK refuses to decode) are read as records without a vector
    more = to_batch(list(decode_fetch(_tricky_fetch_reply(without_values=True), "ns").values()), "text")
    assert more.records[:2] == mine.records and more.vectors is not None
    assert more.has_vector is not None and more.has_vector.tolist() == [True, True, False, False]
    assert np.array_equal(more.vectors[:2].view(np.uint32), mine.vectors.view(np.uint32))
    assert more.records[2].metadata == {"only": "meta"} and more.records[3].metadata is None
    # a reply that is not a fetch reply is an error, as it is for the SDK
    with pytest.raises(Exception, match="Expected"):
        decode_fetch(b'{"vectors":{"a":{"id":"a","values":[[1,2]]}}}', "ns")
    with pytest.raises(Exception, match="Expected"):
        decode_fetch(b'{"vectors":[]}', "ns")


def test_the_export_reads_fetch_replies_itself(
    fake: FakePinecone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the SDK it was checked with, the export sends the SDK's own fetch request and decodes the reply
    itself; the records and vectors are those the SDK's ``index.fetch`` gives."""
    from vexrun.connectors.pinecone import readback

    name = _name()
    sink = _sink(fake, tmp_path, name)
    sink.prepare(8, "m")
    recs, vecs = _records(300, seed=5)
    assert _write(sink, recs, vecs) == {}
    sink.close()
    replies: list[int] = []
    decode = readback.decode_fetch

    def spy(content: bytes, namespace: str, floats: Any = None) -> Any:
        replies.append(len(content))
        return decode(content, namespace, floats)

    monkeypatch.setattr(readback, "decode_fetch", spy)
    fast = [(r, v) for batch, _ in _read(fake, tmp_path, name, size=64) for r, v in from_store(batch)]
    assert len(replies) == 6  # 3 namespaces of 100 records, in batches of 64 and 36: one reply each
    monkeypatch.setattr(readback, "_raw_fetch", lambda index: None)  # the SDK's index.fetch
    slow = [(r, v) for batch, _ in _read(fake, tmp_path, name, size=64) for r, v in from_store(batch)]
    assert len(replies) == 6 and len(fast) == len(slow) == 300
    for (r1, v1), (r2, v2) in zip(fast, slow, strict=True):
        assert r1 == r2 and v1 is not None and v2 is not None
        assert np.array_equal(v1.view(np.uint32), v2.view(np.uint32))
    want = {r.id: v for r, v in zip(recs, vecs, strict=True)}
    assert all(np.array_equal(v.view(np.uint32), want[r.id].view(np.uint32)) for r, v in fast if v is not None)


@pytest.mark.parametrize("rows", [1, 2, 257])
def test_wire_values_are_each_rows_json_and_its_size(rows: int) -> None:
    """The upsert values of a float32 matrix: each row's JSON (float32's shortest decimals, or exact doubles
    where a double parse could come back one bit off) and its size in bytes, for one row and many."""
    from vexrun.connectors.pinecone.codec import wire_values

    rng = np.random.default_rng(rows)
    mat = (rng.standard_normal((rows, 24)) * 0.05).astype(np.float32)
    mat[0, :3] = [1e-30, -3.0e20, 2.0**60]  # the rows checked through a double
    for fragments in (True, False):
        values, sizes = wire_values(mat, fragments=fragments)
        assert len(values) == len(sizes) == rows
        for row, value, size in zip(mat, values, sizes, strict=True):
            text = orjson.dumps(value)
            assert len(text) == size
            back = np.asarray(orjson.loads(text), dtype=np.float64).astype(np.float32)
            assert np.array_equal(back.view(np.uint32), row.view(np.uint32))
