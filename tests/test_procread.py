"""Parsing a .vmig.jsonl file in worker processes gives exactly what a serial read gives: the same records in
the same order, the same vectors, line numbers, rejects and warnings, cursors that resume; errors reach the
consumer; no worker outlives the read or the process that started it."""

from __future__ import annotations

import gzip
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vexrun.errors import FormatError
from vexrun.procread import read_batches_in_process
from vexrun.vmig import read_batches
from vexrun.vmig.batch import Batch


def _line(i: int, dims: int) -> dict[str, object]:
    rng = np.random.default_rng(i)
    return {
        "id": f"r{i}",
        "text": f"memory number {i} " * (1 + i % 7),
        "vector": [float(x) for x in rng.standard_normal(dims).astype(np.float32)],
        "dims": dims,
        "namespace": f"ns{i % 3}",
        "metadata": {"n": i, "tags": ["a", "b"]},
        "vex_version": "0.1.0",
    }


def _messy_file(path: Path) -> Path:
    """~1,000 lines: a BOM, comments, blank lines, broken JSON, an unknown field, a missing version, records
    without vectors, a change of dims half way, a line over the reader's limit."""
    out = [b"\xef\xbb\xbf" + json.dumps(_line(0, 8)).encode()]
    for i in range(1, 1000):
        dims = 8 if i < 500 else 12
        obj = _line(i, dims)
        if i % 97 == 0:
            out.append(b"# a comment")
        if i % 89 == 0:
            out.append(b"")
        if i % 83 == 0:
            out.append(b'{"id": "broken", "text": ')
        if i % 71 == 0:
            obj["surprise"] = True  # unknown field: a warning
        if i % 67 == 0:
            del obj["vex_version"]  # a warning
        if i % 13 == 0:
            obj["vector"] = None
            del obj["dims"]
        out.append(json.dumps(obj).encode())
    out.append(b'{"id": "long", "text": "' + b"x" * 3000 + b'"}')
    out.append(json.dumps(_line(1000, 12)).encode())  # no newline at the end
    path.write_bytes(b"\n".join(out))
    return path


def _flat(batches: list[Batch]) -> dict[str, object]:
    return {
        "records": [r for b in batches for r in b.records],
        "lines": [ln for b in batches for ln in b.lines],
        "rejects": [(r.line, r.findings, r.raw) for b in batches for r in b.rejects],
        "warnings": [w for b in batches for w in b.warnings],
        "vectors": [
            (bool(b.has_vector[i]), b.vectors[i].tobytes())
            for b in batches
            if b.vectors is not None and b.has_vector is not None
            for i in range(len(b.records))
        ],
        "dims": [b.dims for b in batches if len(b)],
    }


def _same(a: list[Batch], b: list[Batch]) -> None:
    fa, fb = _flat(a), _flat(b)
    for key in fa:
        assert fa[key] == fb[key] or key == "dims" and set(fa[key]) == set(fb[key]), key  # type: ignore[arg-type]
    assert a[-1].cursor == b[-1].cursor


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_workers_read_what_a_serial_read_reads(tmp_path: Path, jobs: int) -> None:
    path = _messy_file(tmp_path / "messy.vmig.jsonl")
    serial = list(read_batches(path, batch_size=40, max_line_bytes=2048))
    assert sum(len(b.rejects) for b in serial) >= 10 and sum(len(b.warnings) for b in serial) >= 20
    assert serial[0].records[0].id == "r0"  # the BOM was taken as one
    parallel = list(read_batches_in_process(path, batch_size=40, jobs=jobs, chunk_bytes=7_000, max_line_bytes=2048))
    assert len(parallel) > len(serial)  # cut at chunk ends too
    _same(serial, parallel)


def test_a_cursor_from_either_read_resumes_the_other(tmp_path: Path) -> None:
    path = _messy_file(tmp_path / "messy.vmig.jsonl")
    serial = list(read_batches(path, batch_size=40))
    parallel = list(read_batches_in_process(path, batch_size=40, jobs=2, chunk_bytes=9_000))
    for batches, k in ((serial, 7), (parallel, 11), (parallel, len(parallel) - 2)):
        cursor = batches[k].cursor
        assert cursor is not None
        rest_serial = list(read_batches(path, batch_size=40, start=cursor))
        rest_parallel = list(read_batches_in_process(path, batch_size=40, start=cursor, jobs=2, chunk_bytes=9_000))
        _same(rest_serial, rest_parallel)
        assert _flat(batches[k + 1 :])["records"] == _flat(rest_serial)["records"]


def test_gzip_is_read_by_one_worker(tmp_path: Path) -> None:
    plain = _messy_file(tmp_path / "messy.vmig.jsonl")
    gz = tmp_path / "messy.vmig.jsonl.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    _same(list(read_batches(gz, batch_size=50)), list(read_batches_in_process(gz, batch_size=50, jobs=2)))


def test_a_corrupt_gzip_fails_in_the_consumer_with_its_place(tmp_path: Path) -> None:
    plain = _messy_file(tmp_path / "messy.vmig.jsonl")
    gz = tmp_path / "cut.vmig.jsonl.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes())[:-4000])
    with pytest.raises(FormatError) as serial:
        list(read_batches(gz, batch_size=50))
    got: list[Batch] = []
    with pytest.raises(FormatError) as parallel:
        for batch in read_batches_in_process(gz, batch_size=50):
            got.append(batch)
    assert str(parallel.value) == str(serial.value)
    assert parallel.value.location == serial.value.location
    assert got  # the batches before the damage arrived first


def _readers() -> list[multiprocessing.process.BaseProcess]:
    return [p for p in multiprocessing.active_children() if p.name.startswith("vexrun-reader")]


def test_leaving_early_stops_the_workers(tmp_path: Path) -> None:
    path = _messy_file(tmp_path / "messy.vmig.jsonl")
    gen = read_batches_in_process(path, batch_size=10, jobs=2, chunk_bytes=5_000)
    first = next(gen)
    assert len(first) == 10
    workers = _readers()
    assert len(workers) == 2
    gen.close()
    assert not any(p.is_alive() for p in workers)
    assert _readers() == []


def test_workers_read_at_a_lower_cpu_priority(tmp_path: Path) -> None:
    from vexrun.procread import READER_NICE

    path = _messy_file(tmp_path / "messy.vmig.jsonl")
    gen = read_batches_in_process(path, batch_size=10, jobs=2, chunk_bytes=5_000)
    next(gen)
    try:
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        workers = [p.pid for p in _readers()]
        assert len(workers) == 2
        want = [min(19, ours + READER_NICE)] * 2
        deadline = time.monotonic() + 10  # a worker that has not sent anything yet may still be starting
        got = [os.getpriority(os.PRIO_PROCESS, pid) for pid in workers]
        while got != want and time.monotonic() < deadline:
            time.sleep(0.02)
            got = [os.getpriority(os.PRIO_PROCESS, pid) for pid in workers]
        assert got == want
        assert os.getpriority(os.PRIO_PROCESS, 0) == ours  # the run's own process keeps its priority
    finally:
        gen.close()


def _primed(source: Any) -> list[multiprocessing.process.BaseProcess]:
    """The reader workers a source primed (from a thread of its own: this waits until they are started). A
    worker whose share of a short file fits in its pipe may have parsed it and exited already."""
    workers = source._primed[2].result(timeout=30).workers
    assert len(workers) == 2 and all(p.pid is not None for p in workers)
    return list(workers)


def test_a_primed_source_parses_before_it_is_read_and_stops_what_it_started(tmp_path: Path) -> None:
    """The runner primes the first source before it opens the sinks: the workers start then; ``batches()`` with
    the same cursor takes them, with another cursor stops them and starts its own; ``close()`` stops unread ones."""
    from vexrun.connectors.base import RunContext
    from vexrun.connectors.vmig import VmigSource, VmigSourceConfig

    path = _messy_file(tmp_path / "messy.vmig.jsonl")
    serial = [[r.id for r in b.records] for b in read_batches(path, batch_size=10)]
    source = VmigSource(VmigSourceConfig(path=str(path), read_workers=2), RunContext(tmp_path, tmp_path))
    source.open()
    source.prime(None, 10)
    _primed(source)
    pages = [([r.id for r in b.records], cursor) for b, cursor in source.batches(None, 10)]
    assert [ids for ids, _ in pages] == serial and _readers() == []
    source.prime(pages[2][1], 10)
    stale = _primed(source)
    rest = [[r.id for r in b.records] for b, _ in source.batches(pages[4][1], 10)]  # not the primed cursor
    assert rest == serial[5:] and not any(p.is_alive() for p in stale) and _readers() == []
    source.prime(pages[2][1], 10)
    unread = _primed(source)
    source.close()
    assert not any(p.is_alive() for p in unread) and _readers() == []


ORPHAN = """
import multiprocessing, os, sys
from vexrun.procread import read_batches_in_process
if __name__ == "__main__":
    gen = read_batches_in_process(sys.argv[1], batch_size=5, jobs=2, chunk_bytes=5_000)
    next(gen)
    print(" ".join(str(p.pid) for p in multiprocessing.active_children() if p.name.startswith("vexrun-reader")))
    sys.stdout.flush()
    os.kill(os.getpid(), 9)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_workers_exit_when_the_reading_process_is_killed(tmp_path: Path) -> None:
    path = _messy_file(tmp_path / "messy.vmig.jsonl")
    script = tmp_path / "orphan.py"
    script.write_text(ORPHAN)
    proc = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    pids = [int(p) for p in proc.stdout.split()]
    assert len(pids) == 2
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids), "a reader process outlived the process it read for"
    assert all(p != os.getpid() for p in pids)
