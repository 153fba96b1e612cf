"""Scale behaviour: parallel scans equal serial ones, duplicate detection spills and never trusts a
hash alone, and a million records validate within the memory bound."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from vexrun.testing.rss import measure
from vexrun.vmig import scan as scan_mod
from vexrun.vmig.dupes import DupDetector
from vexrun.vmig.scan import ScanOptions, scan_file


def _messy_file(path: Path, n: int) -> Path:
    rng = np.random.default_rng(5)
    with open(path, "w") as fh:
        for i in range(n):
            rid = f"id-{int(rng.integers(0, n * 0.9))}"  # about 10% duplicates, spread over the file
            kind = i % 97
            if kind == 1:
                fh.write('{"id": "' + rid + '", "vector": [1, 2], "dims": 3, "vex_version": "1.0.0"}\n')
            elif kind == 2:
                fh.write("{broken\n")
            elif kind == 3:
                fh.write('{"id": "' + rid + '", "text": "t", "zz": 1, "vex_version": "1.0.0"}\n')
            else:
                vec = ", ".join(f"{x:.6f}" for x in rng.standard_normal(8))
                fh.write(f'{{"id": "{rid}", "text": "row {i}", "vector": [{vec}], "vex_version": "1.0.0"}}\n')
    return path


def _key(res: scan_mod.ScanResult) -> tuple[object, ...]:
    return (
        res.records,
        res.errors,
        res.warnings,
        res.duplicates,
        res.invalid,
        [(f.line, f.code, f.record_id, f.message) for f in res.findings],
        res.not_shown,
    )


def test_parallel_scan_equals_serial(tmp_path: Path) -> None:
    f = _messy_file(tmp_path / "m.vmig.jsonl", 20_000)
    opts = ScanOptions(max_findings=10_000, collect_stats=True)
    serial = scan_file(f, opts, jobs=1, chunk_bytes=64 * 1024)
    parallel = scan_file(f, opts, jobs=2, chunk_bytes=64 * 1024)
    one_range = scan_file(f, opts, jobs=1, chunk_bytes=1 << 40)
    assert serial.jobs == 1 and parallel.jobs == 2
    assert _key(serial) == _key(parallel) == _key(one_range)
    assert serial.stats == parallel.stats == one_range.stats
    assert serial.duplicates > 1000
    # every duplicate finding points at a line whose id really appeared before
    lines = f.read_text().splitlines()
    for finding in serial.findings:
        if finding.code == "duplicate-id":
            first = int(finding.message.rsplit(" ", 1)[1])
            assert f'"id": "{finding.record_id}"' in lines[first - 1]
            assert first < finding.line


def test_findings_cap_is_the_same_in_parallel(tmp_path: Path) -> None:
    f = _messy_file(tmp_path / "m.vmig.jsonl", 20_000)
    serial = scan_file(f, ScanOptions(max_findings=25), jobs=1, chunk_bytes=64 * 1024)
    parallel = scan_file(f, ScanOptions(max_findings=25), jobs=2, chunk_bytes=64 * 1024)
    assert _key(serial) == _key(parallel)
    assert len(serial.findings) == 25
    assert serial.not_shown == serial.errors + serial.warnings - 25


def test_duplicate_detector_spills_to_disk() -> None:
    det = DupDetector(memory_pairs=1000)
    rng = np.random.default_rng(1)
    hashes = rng.integers(0, 2**63, size=50_000, dtype=np.int64).astype(np.uint64)
    hashes[40_000] = hashes[10]
    hashes[49_999] = hashes[10]
    hashes[30_000] = hashes[20_000]
    for start in range(0, 50_000, 700):
        det.add(hashes[start : start + 700], np.arange(start, min(start + 700, 50_000), dtype=np.int64) + 1)
    assert det._spill is not None and det._pending_n < 1000  # spilled, memory bounded
    spill_dir = det._spill
    groups = sorted(g.tolist() for g in det.candidates())
    assert groups == [[11, 40_001, 50_000], [20_001, 30_001]]
    assert not spill_dir.exists()


def test_hash_collisions_are_confirmed_not_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "c.vmig.jsonl"
    f.write_text("".join(f'{{"id": "u{i}", "text": "t", "vex_version": "1.0.0"}}\n' for i in range(100)))
    # Every id hashes alike: each line is a candidate, none is a real duplicate.
    monkeypatch.setattr(scan_mod, "hash_ids", lambda ids: np.zeros(len(ids), dtype=np.uint64))
    res = scan_file(f, jobs=1)
    assert res.duplicates == 0 and res.errors == 0
    with open(f, "a") as fh:
        fh.write('{"id": "u7", "text": "again", "vex_version": "1.0.0"}\n')
    res = scan_file(f, jobs=1)
    assert res.duplicates == 1
    assert (res.findings[0].line, res.findings[0].message) == (101, "id already used on line 8")


def _write_fast(path: Path, n: int, dims: int) -> None:
    """n valid records, written quickly (the test is about the validator, not the writer)."""
    vec = "[" + ",".join(["0.125"] * dims) + "]"
    tail = f', "vector": {vec}, "dims": {dims}, "metadata": {{"source": "bench", "turn": 3, "pinned": false}}, '
    tail += '"created_at": "2026-01-02T03:04:05Z", "vex_version": "1.0.0"}\n'
    with open(path, "w", buffering=1 << 22) as fh:
        for start in range(0, n, 10_000):
            fh.write(
                "".join(
                    f'{{"id": "m{i}", "text": "memory number {i} of the scale test"{tail}'
                    for i in range(start, min(start + 10_000, n))
                )
            )


def _peak_rss_mb(args: list[str]) -> tuple[int, float, str]:
    m = measure([sys.executable, "-m", "vexrun", *args])
    return m.code, m.rss_mb, m.out + m.err


@pytest.mark.slow
def test_a_million_records_validate_in_bounded_memory(tmp_path: Path) -> None:
    small, big = tmp_path / "100k.vmig.jsonl", tmp_path / "1m.vmig.jsonl"
    _write_fast(small, 100_000, 32)
    _write_fast(big, 1_000_000, 32)
    code_s, rss_s, out_s = _peak_rss_mb(["validate", "--jobs", "1", str(small)])
    code_b, rss_b, out_b = _peak_rss_mb(["validate", "--jobs", "1", str(big)])
    assert code_s == 0 and "valid: 100,000 records" in out_s, out_s
    assert code_b == 0 and "valid: 1,000,000 records" in out_b, out_b
    assert rss_b < 200, f"peak RSS {rss_b:.0f} MB at 1M records"
    assert rss_b < rss_s + 20, f"RSS grew from {rss_s:.0f} MB to {rss_b:.0f} MB"
