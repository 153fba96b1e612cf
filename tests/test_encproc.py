"""The ``.vmig.jsonl`` sink's writer process (:mod:`vexrun.vmig.encproc`): the same bytes as the serial sink for
every kind of batch, a switch to it in the middle of a file, resume after it, its errors, and its hold on the
output's lock."""

from __future__ import annotations

import gzip
import json
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import run_cli
from vexrun.connectors.base import RunContext
from vexrun.connectors.vmig import VmigSink, VmigSinkConfig
from vexrun.connectors.vmig import sink as vmig_file
from vexrun.errors import LockHeld, UsageError, VexrunError
from vexrun.vmig import Record
from vexrun.vmig.batch import Batch
from vexrun.vmig.encproc import HOLE, fill_vectors
from vexrun.vmig.writer import encode_record, encode_record_hole


def _batches(seed: int = 7) -> list[Batch]:
    """Batches of every shape the sink meets: all vectors, some rows without one, none at all, float64 rows,
    and texts, ids and metadata that hold what the hole's marker looks like."""
    rng = np.random.default_rng(seed)
    tricky = [
        'says ,"vector":null, inside its text',
        '\\",\\"vector\\":null,',
        'line\nbreaks\tand \u2028 \U0001f600 and a quote " and a backslash \\',
        "",
        None,
    ]
    out: list[Batch] = []
    k = 0
    for shape in ("all", "some", "none", "all", "float64", "some"):
        n = 7
        recs = []
        for _ in range(n):
            recs.append(
                Record(
                    id=f'id,"vector":null,{k}' if k % 5 == 0 else f"r{k}",
                    text=tricky[k % len(tricky)],
                    namespace="ns" if k % 2 else None,
                    model="m" if k % 3 else None,
                    dims=8 if shape == "none" else None,
                    metadata={"a": k, "b": [1.5, None, "x"], "c": {"vector": None}} if k % 4 else None,
                    created_at="2026-12-03T00:00:00Z",
                    score=0.25 if k % 2 else None,
                    extra={"custom": {"n": k}} if k % 3 == 0 else None,
                )
            )
            k += 1
        if shape == "none":
            out.append(Batch(records=recs))
            continue
        vectors = rng.standard_normal((n, 8)).astype(np.float64 if shape == "float64" else np.float32)
        mask = None
        if shape == "some":
            mask = np.array([j % 3 != 1 for j in range(n)])
            vectors[~mask] = 0
        out.append(Batch(records=recs, vectors=vectors, has_vector=mask))
    return out


def _write(tmp: Path, name: str, batches: list[Batch], **cfg: Any) -> bytes:
    ctx = RunContext(state_dir=tmp, recipe_dir=tmp)
    sink = VmigSink(VmigSinkConfig(path=name, **cfg), ctx)
    sink.open(None)
    try:
        for b in batches:
            sink.write(b)
        sink.finalize()
    finally:
        sink.close()
    return (tmp / name).read_bytes()


def _worker_sink(tmp: Path) -> tuple[VmigSink, vmig_file.EncodeWorker]:
    """A sink forced onto its writer process, one batch written through it (close it when done)."""
    sink = VmigSink(VmigSinkConfig(path="out.vmig.jsonl", write_worker=True), RunContext(state_dir=tmp, recipe_dir=tmp))
    sink.open(None)
    sink.write(_batches()[0])
    assert isinstance(sink.data, vmig_file.EncodeWorker) and sink.data.proc.pid is not None
    return sink, sink.data


def test_a_line_with_its_hole_filled_is_the_serial_encoders_line() -> None:
    rec = Record(id='a,"vector":null,b', text='x,"vector":null,y', metadata={"vector": None})
    vec = np.array([0.1, -2.5e-8, 3.0, 1e30], dtype=np.float32)
    hole = encode_record_hole(rec, 4)
    assert HOLE in hole
    assert fill_vectors(hole, vec[None, :], None) == encode_record(rec, vec)


@pytest.mark.parametrize("name", ["out.vmig.jsonl", "out.vmig.jsonl.gz"])
def test_the_worker_writes_the_serial_sinks_bytes(tmp_path: Path, name: str) -> None:
    serial = _write(tmp_path, "serial-" + name, _batches(), write_worker=False)
    worker = _write(tmp_path, "worker-" + name, _batches(), write_worker=True)
    assert worker == serial
    if name.endswith(".gz"):
        assert gzip.decompress(worker).count(b"\n") == 42
    meta = [json.loads((tmp_path / f"{p}-{name}.meta.json").read_text()) for p in ("serial", "worker")]
    for m in meta:
        m.pop("exported_at")
    assert meta[0] == meta[1]  # the checksum the worker computed is the serial sink's
    # (the records are odd on purpose, so validate finds faults in them: but not in the file's checksum)
    assert "checksum verified" in run_cli("validate", str(tmp_path / ("worker-" + name))).out


def test_the_sink_hands_the_file_to_the_worker_in_the_middle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """By default the worker starts once the output passes WORKER_BYTES: the file is the same bytes as a serial
    write, and the batches after the switch were written by the worker process."""
    serial = _write(tmp_path, "serial.vmig.jsonl", _batches() * 3, write_worker=False)
    started: list[int] = []

    class Spy(vmig_file.EncodeWorker):
        def __init__(self, path: str, committed: int, **kwargs: Any) -> None:
            started.append(committed)  # the committed length the worker takes the file over at
            super().__init__(path, committed, **kwargs)

    monkeypatch.setattr(vmig_file, "WORKER_BYTES", 4000)
    monkeypatch.setattr(vmig_file, "EncodeWorker", Spy)
    monkeypatch.setattr("vexrun.vmig.scan.default_jobs", lambda: 2)
    assert _write(tmp_path, "auto.vmig.jsonl", _batches() * 3) == serial
    assert len(started) == 1 and 4000 <= started[0] < len(serial)


def test_a_resumed_sink_continues_in_the_worker(tmp_path: Path) -> None:
    """A sink killed after some batches is opened again from its checkpointed state: the worker cuts the partial
    file back to the committed length (a batch written after it is dropped) and the result is the serial one."""
    batches = _batches()
    serial = _write(tmp_path, "serial.vmig.jsonl", batches, write_worker=False)
    ctx = RunContext(state_dir=tmp_path, recipe_dir=tmp_path)
    first = VmigSink(VmigSinkConfig(path="out.vmig.jsonl", write_worker=True), ctx)
    first.open(None)
    for b in batches[:3]:
        first.write(b)
    state = first.state()
    first.write(batches[3])  # written, never committed
    first.close()
    again = VmigSink(VmigSinkConfig(path="out.vmig.jsonl", write_worker=True), ctx)
    again.open(state)
    try:
        for b in batches[3:]:
            again.write(b)
        again.finalize()
    finally:
        again.close()
    assert (tmp_path / "out.vmig.jsonl").read_bytes() == serial


def test_a_record_that_cannot_be_encoded_fails_as_in_the_serial_sink(tmp_path: Path) -> None:
    """The lines are encoded in the run's process, so a bad record raises the serial sink's error, and the
    batches written before it stay committed."""
    ctx = RunContext(state_dir=tmp_path, recipe_dir=tmp_path)
    sink = VmigSink(VmigSinkConfig(path="out.vmig.jsonl", write_worker=True), ctx)
    sink.open(None)
    try:
        sink.write(_batches()[0])
        size = sink.state()["bytes"]
        bad = Batch(records=[Record(id="x", metadata={"n": 1 << 70})], vectors=np.ones((1, 8), np.float32))
        with pytest.raises(TypeError):
            sink.write(bad)
        assert sink.state()["bytes"] == size
        assert (tmp_path / ".out.vmig.jsonl.partial").stat().st_size == size
    finally:
        sink.close()


def test_a_dead_worker_is_one_clear_error(tmp_path: Path) -> None:
    sink, worker = _worker_sink(tmp_path)
    try:
        os.kill(worker.proc.pid, signal.SIGKILL)  # type: ignore[arg-type]
        worker.proc.join(5)
        with pytest.raises(Exception, match=r"out\.vmig\.jsonl\.partial: the writer process stopped unexpectedly"):
            sink.write(_batches()[1])
    finally:
        sink.close()


def test_a_full_disk_in_the_worker_is_the_serial_sinks_error(tmp_path: Path) -> None:
    """An OS error of the worker's write (here: a file size limit, EFBIG) comes back as that OS error: one line
    naming the partial file and the output, as from the serial sink; what was committed stays."""
    import resource

    sink, worker = _worker_sink(tmp_path)
    try:
        size = sink.state()["bytes"]
        _, hard = resource.prlimit(worker.proc.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(worker.proc.pid, resource.RLIMIT_FSIZE, (size + 10, hard))  # Python ignores SIGXFSZ
        with pytest.raises(
            UsageError,
            match=r"\.out\.vmig\.jsonl\.partial: cannot write the output out\.vmig\.jsonl \(File too large\)",
        ):
            sink.write(_batches()[1])
        assert sink.state()["bytes"] == size
    finally:
        sink.close()


def test_the_worker_holds_the_outputs_lock_while_it_lives(tmp_path: Path) -> None:
    sink, _ = _worker_sink(tmp_path)
    # this process lets go of its own descriptor, as a killed run would: the worker's copy still holds the lock
    assert sink.lock is not None
    os.close(sink.lock.fileno())
    sink.lock._fd = None
    other = VmigSink(VmigSinkConfig(path="out.vmig.jsonl"), sink.ctx)
    with pytest.raises(LockHeld):
        other.open(None)
    sink.close()  # the worker exits: the lock is free
    other.open(None)
    other.close()


def test_a_worker_that_cannot_start_leaves_the_writing_to_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not asked for by name, a worker that cannot start (a script without a ``__main__`` guard) is no error: the
    run's process writes on, says so, and the bytes are the same."""

    serial = _write(tmp_path, "serial.vmig.jsonl", _batches() * 3, write_worker=False)

    class Broken(vmig_file.EncodeWorker):
        """A worker whose process dies before it opens the file, as one that runs an unguarded script again."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            os.kill(self.proc.pid, signal.SIGKILL)  # type: ignore[arg-type]
            self.proc.join(5)

    monkeypatch.setattr(vmig_file, "WORKER_BYTES", 4000)
    monkeypatch.setattr(vmig_file, "EncodeWorker", Broken)
    monkeypatch.setattr("vexrun.vmig.scan.default_jobs", lambda: 2)
    said: list[str] = []
    ctx = RunContext(state_dir=tmp_path, recipe_dir=tmp_path, log=said.append)
    sink = VmigSink(VmigSinkConfig(path="auto.vmig.jsonl"), ctx)
    sink.open(None)
    try:
        for b in _batches() * 3:
            sink.write(b)
        sink.finalize()
    finally:
        sink.close()
    assert (tmp_path / "auto.vmig.jsonl").read_bytes() == serial
    assert len([s for s in said if "written in the run's own process" in s]) == 1
    forced = VmigSink(VmigSinkConfig(path="forced.vmig.jsonl", write_worker=True), ctx)
    forced.open(None)
    try:
        with pytest.raises(VexrunError, match="stopped unexpectedly"):
            forced.write(_batches()[0])
    finally:
        forced.close()


@pytest.mark.parametrize("name", ["out.vmig.jsonl", "out.vmig.jsonl.gz"])
def test_batches_sent_ahead_give_the_serial_bytes_and_the_state_of_what_was_acknowledged(
    tmp_path: Path, name: str
) -> None:
    """``send`` hands batches to the writer process without waiting (the first one is written at once: the
    worker starts with it); each is acknowledged in order, and ``state()`` never counts a batch only sent."""
    batches = _batches()
    ctx = RunContext(state_dir=tmp_path, recipe_dir=tmp_path)
    ref = VmigSink(VmigSinkConfig(path="serial-" + name, write_worker=False), ctx)
    ref.open(None)
    after: list[dict[str, Any]] = []
    for b in batches:
        ref.write(b)
        after.append(ref.state())
    ref.finalize()
    ref.close()
    sink = VmigSink(VmigSinkConfig(path=name, write_worker=True), ctx)
    sink.open(None)
    try:
        waits = [sink.send(b) for b in batches]
        assert isinstance(sink.data, vmig_file.EncodeWorker) and sink.data.in_flight == len(batches) - 1
        assert sink.state() == after[0]
        for i, wait in enumerate(waits):
            assert wait().written == len(batches[i])
            assert sink.state() == after[i]
        sink.finalize()
    finally:
        sink.close()
    assert (tmp_path / name).read_bytes() == (tmp_path / ("serial-" + name)).read_bytes()


def test_a_full_disk_under_batches_sent_ahead_is_raised_by_their_waits(tmp_path: Path) -> None:
    """The worker's OS error reaches the wait of the batch it struck as the serial sink's error; the run's side
    then stops the worker, so the wait of a batch sent after it raises too (none hangs); the state stays at the
    last batch acknowledged."""
    import resource

    sink, worker = _worker_sink(tmp_path)
    try:
        first = sink.send(_batches()[1])
        assert first().written == 7
        size = sink.state()["bytes"]
        assert size == (tmp_path / ".out.vmig.jsonl.partial").stat().st_size
        _, hard = resource.prlimit(worker.proc.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(worker.proc.pid, resource.RLIMIT_FSIZE, (size + 10, hard))
        second, third = sink.send(_batches()[3]), sink.send(_batches()[4])
        with pytest.raises(UsageError, match=r"cannot write the output out\.vmig\.jsonl \(File too large\)"):
            second()
        with pytest.raises(VexrunError, match="the writer process stopped"):  # stopped after the error
            third()
        assert sink.state()["bytes"] == size
    finally:
        sink.close()


def test_waiting_without_a_batch_sent_is_a_bug_not_a_hang(tmp_path: Path) -> None:
    sink, worker = _worker_sink(tmp_path)
    try:
        with pytest.raises(RuntimeError, match="no batch was sent"):
            worker.wait()
    finally:
        sink.close()
