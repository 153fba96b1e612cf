"""The format layer as a library: reader, writer, sidecar, round trips, gzip, resume cursors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA
from vexrun.errors import FormatError, UsageError
from vexrun.vmig import Batch, Record, VmigWriter, read_batches, validate_file
from vexrun.vmig.sidecar import meta_path


def _read_all(path: Path, **kw: object) -> tuple[list[Record], list[np.ndarray | None], list[int]]:
    recs, vecs, rejects = [], [], []
    for batch in read_batches(path, **kw):  # type: ignore[arg-type]
        for rec, vec in batch:
            recs.append(rec)
            vecs.append(None if vec is None else vec.copy())
        rejects.extend(r.line for r in batch.rejects)
    return recs, vecs, rejects


def _hard_float32(n: int, dims: int, seed: int = 3) -> np.ndarray:
    """Float32 values that are hard to print: random bit patterns (finite), subnormals, extremes."""
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2**32, size=(n, dims), dtype=np.uint64).astype(np.uint32)
    vals = bits.view(np.float32).copy()
    vals[~np.isfinite(vals)] = 1.0
    fi = np.finfo(np.float32)
    specials = np.array(
        [fi.max, -fi.max, fi.tiny, fi.smallest_subnormal, -fi.smallest_subnormal, 0.0, -0.0, 0.1, 1 / 3, 16777217],
        dtype=np.float32,
    )
    k = min(dims, len(specials))
    vals[0, :k] = specials[:k]
    vals[1 % n, : len(specials) - k] = specials[k:]
    return vals


def test_float32_round_trip_is_bit_exact(tmp_path: Path) -> None:
    vecs = _hard_float32(500, 64)
    recs = [Record(id=f"r{i}", text=None if i % 3 else f"text {i}") for i in range(500)]
    first = tmp_path / "a.vmig.jsonl"
    with VmigWriter(first) as w:
        w.write_batch(Batch(records=recs, vectors=vecs, has_vector=np.ones(500, dtype=bool)))
    got, got_vecs, rejects = _read_all(first)
    assert rejects == []
    assert [r.id for r in got] == [r.id for r in recs]
    back = np.stack(got_vecs)  # type: ignore[arg-type]
    assert back.dtype == np.float32
    assert np.array_equal(back.view(np.uint32), vecs.view(np.uint32))
    # and a second generation is byte-identical to the first
    second = tmp_path / "b.vmig.jsonl"
    with VmigWriter(second) as w:
        for batch in read_batches(first):
            w.write_batch(batch)
    assert second.read_bytes() == first.read_bytes()


def test_unknown_fields_survive_a_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "in.vmig.jsonl"
    src.write_text(
        '{"id": "a", "text": "t", "source": "vektor", "graph": {"edges": [1, 2]}, "vex_version": "1.0.0"}\n'
        '{"id": "b", "text": "u", "vex_version": "1.0.0"}\n'
    )
    out = tmp_path / "out.vmig.jsonl"
    with VmigWriter(out) as w:
        for batch in read_batches(src):
            assert [f.code for f in batch.warnings] == ["unknown-field"]
            w.write_batch(batch)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines[0]["source"] == "vektor"
    assert lines[0]["graph"] == {"edges": [1, 2]}
    assert list(lines[0])[:12] == [
        "id",
        "text",
        "vector",
        "model",
        "dims",
        "namespace",
        "metadata",
        "created_at",
        "source_store",
        "modality",
        "score",
        "vex_version",
    ]
    assert "source" not in lines[1]
    assert validate_file(out).warnings == 1


def test_writer_stamps_version_and_sidecar(tmp_path: Path) -> None:
    out = tmp_path / "m.vmig.jsonl"
    with VmigWriter(out, source_store="chroma") as w:
        w.write(Record(id="a", text="x", vex_version="0.9.0", namespace="ns1", model="m"), [1.0, 2.0, 3.0])
        w.write(Record(id="b", text="y", namespace="ns2"))
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["vex_version"] for r in rows] == ["1.0.0", "1.0.0"]
    assert rows[0]["dims"] == 3 and rows[0]["source_store"] == "chroma"
    meta = json.loads(meta_path(out).read_text())
    assert meta["record_count"] == 2
    assert meta["dims"] == [3]
    assert meta["models"] == ["m"]
    assert meta["namespaces"] == ["ns1", "ns2"]
    assert meta["source_store"] == "chroma"
    assert meta["checksum"].startswith("blake3:")
    assert meta["bytes"] == out.stat().st_size
    assert set(meta) >= {"exported_at", "source_store", "record_count", "dims", "models", "namespaces", "checksum"}
    report = validate_file(out)
    assert report.ok and report.checksum == "verified"


def test_writer_is_atomic(tmp_path: Path) -> None:
    out = tmp_path / "keep.vmig.jsonl"
    out.write_text('{"id": "old", "text": "old", "vex_version": "1.0.0"}\n')
    with pytest.raises(RuntimeError), VmigWriter(out) as w:
        w.write(Record(id="new", text="new"))
        raise RuntimeError("crash mid-write")
    assert out.read_text() == '{"id": "old", "text": "old", "vex_version": "1.0.0"}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.vmig.jsonl"]


def test_writer_refuses_non_finite_vectors(tmp_path: Path) -> None:
    with VmigWriter(tmp_path / "x.vmig.jsonl") as w, pytest.raises(FormatError, match="record 'a'"):
        w.write(Record(id="a"), [1.0, float("nan")])


def test_gzip_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "z.vmig.jsonl.gz"
    vecs = _hard_float32(100, 8)
    with VmigWriter(out) as w:
        w.write_batch(Batch.from_records([Record(id=str(i)) for i in range(100)], list(vecs)))
    assert out.read_bytes()[:2] == b"\x1f\x8b"
    assert len(gzip.decompress(out.read_bytes()).splitlines()) == 100
    _, got, _ = _read_all(out)
    assert np.array_equal(np.stack(got).view(np.uint32), vecs.view(np.uint32))  # type: ignore[arg-type]
    assert validate_file(out).checksum == "verified"


def test_truncated_gzip_is_a_clear_error(tmp_path: Path) -> None:
    out = tmp_path / "z.vmig.jsonl.gz"
    with VmigWriter(out) as w:
        for i in range(2000):
            w.write(Record(id=f"id-{i}", text="some text " * 20))
    data = out.read_bytes()
    out.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match=r"z.vmig.jsonl.gz:\d+: the gzip stream is corrupt or truncated"):
        _read_all(out)
    report = validate_file(out)
    assert [f.code for f in report.findings if f.severity == "error"][-1:] == ["bad-gzip"]


def test_reader_batches_are_bounded_and_resume_from_cursor(tmp_path: Path) -> None:
    from vexrun.testing.data import write_synthetic

    f = write_synthetic(tmp_path / "s.vmig.jsonl", 2500, dims=16)
    batches = list(read_batches(f, batch_size=1000))
    assert [len(b) for b in batches] == [1000, 1000, 500]
    assert all(b.vectors is not None and b.vectors.shape == (len(b), 16) for b in batches)
    cursor = batches[0].cursor
    assert cursor is not None and cursor[1] == 1000
    rest = list(read_batches(f, batch_size=1000, start=cursor))
    assert [b.records[0].id for b in rest] == [b.records[0].id for b in batches[1:]]
    assert rest[-1].lines[-1] == 2500
    small = list(read_batches(f, batch_size=10_000, max_batch_bytes=100_000))
    assert max(sum(1 for _ in b.records) for b in small) < 2500
    assert sum(len(b) for b in small) == 2500


def test_reader_rejects_bad_lines_and_keeps_going(tmp_path: Path) -> None:
    f = tmp_path / "mixed.vmig.jsonl"
    f.write_text(
        '{"id": "a", "text": "ok", "vex_version": "1.0.0"}\n'
        '{"id": "b", "vector": [1, 2], "dims": 3, "vex_version": "1.0.0"}\n'
        "not json\n"
        '{"id": "c", "vector": [1e39, 0], "vex_version": "1.0.0"}\n'
        '{"id": "d", "vector": [0.5, 0.25], "vex_version": "1.0.0"}\n'
    )
    (batch,) = list(read_batches(f))
    assert [r.id for r in batch.records] == ["a", "d"]
    assert batch.vector(0) is None
    assert np.array_equal(batch.vector(1), np.array([0.5, 0.25], dtype=np.float32))  # type: ignore[arg-type]
    assert [(r.line, r.findings[0].code) for r in batch.rejects] == [
        (2, "dims-mismatch"),
        (3, "bad-json"),
        (4, "non-finite"),
    ]
    assert batch.rejects[1].raw == b"not json\n"
    assert "float32" in batch.rejects[2].reason


def test_reader_splits_batches_when_dims_change(tmp_path: Path) -> None:
    f = tmp_path / "dims.vmig.jsonl"
    lines = [f'{{"id": "a{i}", "vector": [{", ".join(["0.5"] * (4 if i < 3 else 8))}]}}' for i in range(5)]
    f.write_text("\n".join(lines) + "\n")
    batches = list(read_batches(f))
    assert [(len(b), b.dims) for b in batches] == [(3, 4), (2, 8)]
    resumed = list(read_batches(f, start=batches[0].cursor))  # type: ignore[arg-type]
    assert [r.id for r in resumed[0].records] == ["a3", "a4"]


def test_handwritten_file_reads(tmp_path: Path) -> None:
    recs, vecs, rejects = _read_all(DATA / "vmig" / "handwritten.vmig.jsonl")
    assert rejects == []
    assert [r.id for r in recs] == ["pref-001", "fact-002", "vec-003", "émoji-🙂-004"]
    assert recs[0].metadata is not None and recs[0].metadata["tags"] == ["ui", "editor"]
    assert recs[3].text == "Unicode survives: e\u0301, 👩\u200d💻, 🇩🇪, עברית, 中文"
    assert vecs[1] is None and vecs[2] is not None and vecs[2].tolist() == [1.0, 2.0, 3.0, 4.0]


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        list(read_batches(tmp_path / "nope.vmig.jsonl"))
    with pytest.raises(UsageError, match="is a directory"):
        VmigWriter(tmp_path)
