"""The Qdrant connector in local mode (qdrant-client's own engine; no Qdrant server can run here): collection
checks, upserts, the resumable scroll, search, payloads of other tools, and one-line errors."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vexrun.connectors.base import RunContext
from vexrun.connectors.encoding import from_store, to_store
from vexrun.connectors.qdrant import QdrantSink, QdrantSinkConfig, QdrantSource, QdrantSourceConfig
from vexrun.errors import ConnectError, InvalidInput, UsageError
from vexrun.registry import resolve
from vexrun.testing.git_servers import free_port
from vexrun.vmig.batch import Batch
from vexrun.vmig.model import Record

DIMS = 8
CAPS = resolve("sink", "qdrant").capabilities


@pytest.fixture(autouse=True)
def _quiet_local_mode() -> Iterator[None]:
    # qdrant-client warns about local mode above 20k points and about payload indexes; tests open the
    # store directly through the SDK too, where vexrun's own filter does not apply.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Local mode is not recommended", category=UserWarning)
        yield


def _ctx(tmp: Path) -> RunContext:
    return RunContext(state_dir=tmp, recipe_dir=tmp)


def _records(n: int, start: int = 0, ns: tuple[str, ...] = ("alpha", "beta")) -> Batch:
    rng = np.random.default_rng(start + 1)
    recs = [
        Record(
            id=f"mem-{i:04d}",
            text=f"memory number {i}",
            model="fake-8",
            namespace=ns[i % len(ns)],
            metadata={"turn": i, "tags": ["a", "b"], "nested": {"k": [1, None]}, "w": i / 7},
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


def _sink(tmp: Path, **kw: Any) -> QdrantSink:
    cfg = QdrantSinkConfig(path="q", collection=kw.pop("collection", "mem"), **kw)
    sink = QdrantSink(cfg, _ctx(tmp))
    sink.open(None)
    return sink


def _write(tmp: Path, batch: Batch, **kw: Any) -> None:
    sink = _sink(tmp, **kw)
    try:
        sink.prepare(DIMS, "fake-8")
        stored = to_store(batch, CAPS)
        assert sink.write(stored).written == len(batch)
        sink.finalize()
    finally:
        sink.close()


def _read(tmp: Path, batch_size: int = 100, **kw: Any) -> list[tuple[Record, np.ndarray | None]]:
    src = QdrantSource(QdrantSourceConfig(path="q", collection=kw.pop("collection", "mem"), **kw), _ctx(tmp))
    src.open()
    try:
        out = []
        for batch, _ in src.batches(None, batch_size):
            out.extend((rec, vec) for rec, vec in from_store(batch))
        return out
    finally:
        src.close()


def test_config_needs_url_or_path() -> None:
    with pytest.raises(ValueError, match="either url"):
        QdrantSinkConfig(collection="x")
    with pytest.raises(ValueError, match="either url"):
        QdrantSinkConfig(collection="x", url="http://h:6333", path="p")


def test_importing_the_module_loads_no_sdk() -> None:
    code = (
        "import sys, vexrun.connectors.qdrant; print(any(m.startswith(('qdrant_client', 'grpc')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_round_trip_of_every_field(tmp_path: Path) -> None:
    batch = _records(10)
    batch.records[0].metadata = None
    batch.records[1].metadata = {}
    # a UUID id is stored as it is; another id would get its original into the metadata, and the runner's
    # decoding (vexrun.connectors.encoding) then reads an empty metadata back as None
    batch.records[1].id = "0b6a3c1e-2f4d-4e5a-9b7c-8d9e0f1a2b3c"
    batch.records[2].text = None
    _write(tmp_path, batch)
    got = {rec.id: (rec, vec) for rec, vec in _read(tmp_path)}
    assert sorted(got) == sorted(r.id for r in batch.records)
    for i, want in enumerate(batch.records):
        rec, vec = got[want.id]
        assert rec == Record(**{**{f: getattr(want, f) for f in want.__struct_fields__}, "dims": DIMS})
        assert vec is not None
        expected = batch.vectors[i] / np.linalg.norm(batch.vectors[i])  # type: ignore[index]
        assert np.allclose(vec, expected, atol=1e-6)


def test_unsigned_integer_ids_stay_integers(tmp_path: Path) -> None:
    batch = _records(3)
    for rec, rid in zip(batch.records, ["0", "42", "9223372036854775807"], strict=True):
        rec.id = rid
    _write(tmp_path, batch)
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(tmp_path / "q"))
    try:
        points, _ = client.scroll("mem", limit=10)
        assert sorted(p.id for p in points) == [0, 42, 9223372036854775807]  # type: ignore[type-var]
    finally:
        client.close()
    assert sorted(rec.id for rec, _ in _read(tmp_path)) == ["0", "42", "9223372036854775807"]


def test_prepare_refuses_other_dims_or_metric_and_replace_recreates(tmp_path: Path) -> None:
    _write(tmp_path, _records(4))
    sink = _sink(tmp_path)
    try:
        with pytest.raises(InvalidInput, match="holds 8-d vectors by cosine, this run writes 16-d"):
            sink.prepare(16, "other")
    finally:
        sink.close()
    sink = _sink(tmp_path, metric="dot")
    try:
        with pytest.raises(InvalidInput, match="by cosine, this run writes 8-d vectors by dot"):
            sink.prepare(DIMS, "fake-8")
    finally:
        sink.close()
    sink = _sink(tmp_path, metric="l2", replace=True)
    try:
        sink.prepare(16, "other")
        assert sink.store.vector_params() == (16, "Euclid")
        assert sink.store.count() == 0
    finally:
        sink.close()


def test_upsert_is_idempotent_and_replaces_payloads(tmp_path: Path) -> None:
    batch = _records(20)
    _write(tmp_path, batch)
    _write(tmp_path, batch)
    changed = _records(20)
    changed.records[5].metadata = {"only": "this"}
    changed.records[5].text = None
    _write(tmp_path, changed)
    got = {rec.id: rec for rec, _ in _read(tmp_path)}
    assert len(got) == 20
    assert got["mem-0005"].metadata == {"only": "this"} and got["mem-0005"].text is None


@pytest.mark.parametrize("page", [7, 8192])
def test_resume_from_every_page_boundary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page: int) -> None:
    # local mode scrolls pages of LOCAL_PAGE points and cuts them into batches: batches end inside and at
    # the end of scroll pages
    monkeypatch.setattr("vexrun.connectors.qdrant.source.LOCAL_PAGE", page)
    _write(tmp_path, _records(23))
    src = QdrantSource(QdrantSourceConfig(path="q", collection="mem"), _ctx(tmp_path))
    src.open()
    try:
        pages = [(b.records, cur) for b, cur in src.batches(None, 5)]
        order = [r.id for recs, _ in pages for r in recs]
        assert len(order) == len(set(order)) == 23
        assert pages[-1][1].get("done") is True
        done = 0
        for k, (recs, cursor) in enumerate(pages):
            done += len(recs)
            rest = [r.id for b, _ in src.batches(cursor, 5) for r in b.records]
            assert rest == order[done:], k
    finally:
        src.close()


def test_namespace_filter(tmp_path: Path) -> None:
    _write(tmp_path, _records(30, ns=("work", "home", "travel")))
    got = _read(tmp_path, batch_size=4, namespace="home")
    assert sorted(r.id for r, _ in got) == [f"mem-{i:04d}" for i in range(30) if i % 3 == 1]
    src = QdrantSource(QdrantSourceConfig(path="q", collection="mem", namespace="home"), _ctx(tmp_path))
    src.open()
    try:
        assert src.estimate() == 10
    finally:
        src.close()


def test_points_added_behind_the_cursor_fail_the_export(tmp_path: Path) -> None:
    _write(tmp_path, _records(10, start=10))
    src = QdrantSource(QdrantSourceConfig(path="q", collection="mem"), _ctx(tmp_path))
    src.open()
    try:
        it = src.batches(None, 4)
        next(it)
        # a writer adds a point whose id sorts before the cursor: the scroll cannot see it
        extra = _records(1, start=0)
        extra.records[0].id = "0"  # integer ids sort before UUIDs
        src.store.api.upsert("mem", points=[_point(extra)])
        with pytest.raises(InvalidInput, match="holds 11 points but 10 were read"):
            list(it)
    finally:
        src.close()


def _point(batch: Batch) -> Any:
    from qdrant_client import models

    from vexrun.connectors.qdrant.client import point_id, record_payload

    cfg = QdrantSinkConfig(path="q", collection="mem")
    rec = to_store(batch, CAPS).records[0]
    return models.PointStruct(
        id=point_id(rec.id), vector=batch.vectors[0].tolist(), payload=record_payload(rec, cfg, None)
    )  # type: ignore[index]


def test_search_ranks_by_cosine_within_a_namespace(tmp_path: Path) -> None:
    batch = _records(40)
    _write(tmp_path, batch)
    sink = QdrantSink(QdrantSinkConfig(path="q", collection="mem"), _ctx(tmp_path))
    sink.connect()
    try:
        assert batch.vectors is not None
        hits = sink.search(batch.vectors[7] * 3, "", k=5)
        assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
        assert hits[0].id == "mem-0007" and hits[0].cosine == pytest.approx(1.0, abs=1e-5)
        assert hits[0].metadata == batch.records[7].metadata and hits[0].text == "memory number 7"
        assert all(a.score >= b.score for a, b in zip(hits, hits[1:], strict=False))
        in_ns = sink.search(batch.vectors[7], "", k=5, namespace="alpha")  # mem-0007 is in beta
        assert in_ns and all(h.namespace == "alpha" for h in in_ns) and "mem-0007" not in {h.id for h in in_ns}
    finally:
        sink.close()


def test_reads_collections_written_by_other_tools(tmp_path: Path) -> None:
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(tmp_path / "q"))
    try:
        client.create_collection(
            "lc", vectors_config={"dense": models.VectorParams(size=4, distance=models.Distance.DOT)}
        )
        client.upsert(
            "lc",
            points=[
                models.PointStruct(
                    id=7,
                    vector={"dense": [0.5, 0.25, 0.0, 1.0]},
                    payload={"page_content": "hello", "metadata": {"source": "a.md"}, "lang": "en"},
                )
            ],
        )
    finally:
        client.close()
    got = _read(tmp_path, collection="lc", text_key="page_content")
    ((rec, vec),) = got
    assert rec.id == "7" and rec.text == "hello" and rec.metadata == {"source": "a.md", "lang": "en"}
    assert vec is not None and vec.tolist() == [0.5, 0.25, 0.0, 1.0]


def test_local_writes_are_synced_per_batch(tmp_path: Path) -> None:
    _write(tmp_path, _records(5))
    db = sqlite3.connect(tmp_path / "q" / "collection" / "mem" / "storage.sqlite")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()
    _write(tmp_path, _records(5), collection="slow", local_durability="point")
    assert len(_read(tmp_path, collection="slow")) == 5


def test_errors_are_one_clear_line(tmp_path: Path) -> None:
    port = free_port()
    cfg = QdrantSinkConfig(url=f"http://u:pw@127.0.0.1:{port}", grpc_port=port, collection="x", api_key="s3cret")
    t0 = time.monotonic()
    with pytest.raises(ConnectError) as err:
        QdrantSink(cfg, _ctx(tmp_path)).open(None)
    assert time.monotonic() - t0 < 5
    assert f"cannot reach qdrant at http://127.0.0.1:{port}" in str(err.value)
    assert "s3cret" not in str(err.value) and "pw" not in str(err.value)
    rest = QdrantSinkConfig(url=f"http://127.0.0.1:{port}", prefer_grpc=False, collection="x")
    with pytest.raises(ConnectError, match="connection refused"):
        QdrantSink(rest, _ctx(tmp_path)).open(None)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        QdrantSink(QdrantSinkConfig(path="afile", collection="x"), _ctx(tmp_path)).open(None)
    with pytest.raises(UsageError, match="no such directory"):
        QdrantSource(QdrantSourceConfig(path="nothing", collection="x"), _ctx(tmp_path)).open()
    holder = _sink(tmp_path)
    try:
        with pytest.raises(ConnectError, match="open in another process"):
            _sink(tmp_path)
    finally:
        holder.close()
    _write(tmp_path, _records(2))
    with pytest.raises(InvalidInput, match="'nope' .* does not exist"):
        QdrantSource(QdrantSourceConfig(path="q", collection="nope"), _ctx(tmp_path)).open()


def test_records_without_vectors_are_rejected(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    try:
        sink.prepare(DIMS, "fake-8")
        batch = _records(3)
        assert batch.has_vector is not None
        batch.has_vector[1] = False
        result = sink.write(to_store(batch, CAPS))
        assert result.written == 2 and list(result.rejected.values()) == [
            "no vector (qdrant stores points with vectors)"
        ]
        wrong = Batch(records=_records(1).records, vectors=np.ones((1, 3), dtype=np.float32))
        assert "3 dims" in next(iter(sink.write(to_store(wrong, CAPS)).rejected.values()))
    finally:
        sink.close()


def test_check_reports_without_writing(tmp_path: Path) -> None:
    cfg = QdrantSinkConfig(path="q", collection="mem")
    assert "does not exist yet" in QdrantSink(cfg, _ctx(tmp_path)).check()
    assert not (tmp_path / "q").exists()
    _write(tmp_path, _records(6))
    assert QdrantSink(cfg, _ctx(tmp_path)).check().endswith("reachable, 6 points, 8-d cosine")
    source = QdrantSource(QdrantSourceConfig(path="q", collection="mem", namespace="beta"), _ctx(tmp_path))
    assert source.check().endswith("readable, 3 points")
