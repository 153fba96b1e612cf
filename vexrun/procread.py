"""Read a big ``.vmig.jsonl`` file in worker processes, so that parsing (JSON, float text → float32) runs on
the other cores while the runner encodes and writes what was read before.

The file is cut into chunks of whole lines (about ``chunk_bytes`` each); worker ``w`` of ``J`` parses
chunks ``w, w + J, w + 2J, …`` with the same reader as a serial read and sends each batch through a pipe of its
own (:class:`_Sender`: the records as one msgpack blob, the vectors as they lie in memory, neither pickled nor
copied on the way); this process takes the chunks back in file order, so the records, their order and the
cursors are exactly those of a serial read, except that a batch also ends at a chunk's end. Line numbers
are counted per chunk in the workers and made absolute here. A gzip file is decompressed by one worker
from start to end (a gzip stream cannot be cut).

Memory is bounded: each worker runs at most ``depth`` batches ahead. Workers run at a lower CPU priority
(:data:`READER_NICE`): what waits on them comes first when the cores are contended. Workers ignore SIGINT
(the runner's first Ctrl-C finishes the batch in flight; the workers must not die under it), are stopped by
PID when the consumer leaves early, and exit on their own when this process dies. An error in a worker is
raised here, with its message.
"""

from __future__ import annotations

import os
import pickle
import queue
import signal
import struct
import threading
from collections.abc import Iterator
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from .errors import VexrunError
from .vmig.batch import Batch, Reject
from .vmig.model import Record
from .vmig.workers import forkserver, release

__all__ = ["CHUNK_BYTES", "MIN_BYTES", "READER_NICE", "ProcessReader", "read_batches_in_process"]

_RECORDS_ENC = msgspec.msgpack.Encoder()
_RECORDS_DEC = msgspec.msgpack.Decoder(list[Record])

#: Files smaller than this are read in the runner's own process: workers cost ~0.2 s to start.
MIN_BYTES = 48 * 1024 * 1024
#: The size of the chunks workers parse, at least (a chunk holds ~8 batches of the file's average line).
CHUNK_BYTES = 8 * 1024 * 1024
#: Batches a worker may run ahead, at most, and in bytes of the file at most (each worker holds that much while
#: the run is busy: at 128 MB two workers added ~55 MB to a 100k × 384 import into LanceDB, and running 2-3
#: batches of 2,000 ahead instead of 10 cost no throughput: vmig → vmig at 105% of the bare copy either way;
#: 32 → 16 MB took each worker of a 1M-record LanceDB import from 32-36 to 29-32 MB, at the same speed).
DEPTH = 10
DEPTH_BYTES = 16 * 1024 * 1024

_BATCH = "batch"
_PACKED = "packed"  # a batch as (records as msgpack, the rest): see _pack
_END = "end"  # a chunk is done: (k, the number of its last line, counted from the chunk's start)
_EOF = "eof"  # no chunk k: the file ends before it
_ERROR = "error"


def _align(fh: BinaryIO, cut: int, size: int) -> int:
    """The first line boundary at or after ``cut`` (the end of the line ``cut`` falls into)."""
    if cut <= 0:
        return 0
    if cut >= size:
        return size
    fh.seek(cut - 1)
    while True:
        block = fh.read(1 << 16)
        if not block:
            return size
        nl = block.find(b"\n")
        if nl >= 0:
            return cut - 1 + nl + 1
        cut += len(block)


#: How much less CPU priority the workers take than the run's own process (``nice`` steps). They read ahead into
#: bounded queues, so when the cores are contended the work that waits on them should come first: the run's
#: encoding and writing, and a store server on the same machine. 100k records into a local Redis: 3.45-3.70 s
#: with the workers at the run's priority, 2.99-3.70 s at +5 (3.14-3.32 s at +10, 3.10-3.57 s at +19). Where
#: nothing else wants the cores, it changes nothing.
READER_NICE = 5


#: a message's first part: how many out-of-band buffers follow it, then their sizes (see :class:`_Sender`)
_COUNT = struct.Struct("<I")


class _Sender:
    """A worker's end of its pipe. :meth:`put` queues a message and returns; a thread writes the queued messages,
    so the parser runs up to ``depth`` messages ahead of the consumer. Each message goes out as its pickle (protocol
    5) with the large buffers (a batch's vectors, its records' msgpack) left out of band, then those buffers, each
    written to the pipe from where it lies: :func:`_recv` reads them into buffers of their own. (A
    ``multiprocessing.Queue`` pickled each message twice and copied every buffer six times on the way.)"""

    def __init__(self, conn: Connection, depth: int) -> None:
        self.conn = conn
        self.queue: queue.Queue[tuple[bytes, list[memoryview]] | None] = queue.Queue(maxsize=depth)
        self.thread = threading.Thread(target=self._send, name="vexrun-reader-send", daemon=True)
        self.thread.start()

    def put(self, item: tuple[Any, ...]) -> None:
        buffers: list[pickle.PickleBuffer] = []
        head = pickle.dumps(item, protocol=5, buffer_callback=buffers.append)
        views = [b.raw() for b in buffers]
        sizes = struct.pack(f"<{len(views)}Q", *(v.nbytes for v in views))
        self.queue.put((_COUNT.pack(len(views)) + sizes + head, views))

    def _send(self) -> None:
        send = self.conn.send_bytes
        gone = False
        while (msg := self.queue.get()) is not None:
            if gone:  # the consumer is gone (it stopped early, or died): the rest is dropped, nothing blocks
                continue
            head, views = msg
            try:
                send(head)
                for view in views:
                    send(view)
            except OSError:
                gone = True

    def close(self) -> None:
        """Send what is queued, then close the pipe."""
        self.queue.put(None)
        self.thread.join()
        self.conn.close()


def _recv(conn: Connection) -> Any:
    """The next message a :class:`_Sender` sent on ``conn``; EOFError if the pipe closed first."""
    head = conn.recv_bytes()
    (count,) = _COUNT.unpack_from(head)
    sizes = struct.unpack_from(f"<{count}Q", head, _COUNT.size)
    buffers = []
    for size in sizes:
        buf = bytearray(size)
        if conn.recv_bytes_into(buf) != size:
            raise EOFError("a message ended early")
        buffers.append(buf)
    return pickle.loads(memoryview(head)[_COUNT.size + 8 * count :], buffers=buffers)


def _yield_cpu() -> None:
    if hasattr(os, "nice"):
        try:
            os.nice(READER_NICE)
        except OSError:  # pragma: no cover - raising one's own niceness is always allowed on Linux and macOS
            pass


def _produce(
    path: str,
    batch_size: int,
    start: tuple[int, int],
    size: int | None,
    chunk_bytes: int,
    worker: int,
    jobs: int,
    out: Connection,
    depth: int,
    alive: Connection,
    max_line_bytes: int | None = None,
) -> None:
    """A worker: parse chunks ``worker, worker + jobs, …`` and send their batches on ``out``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _yield_cpu()
    _watch_parent(alive)
    from .vmig.io import DEFAULT_MAX_LINE_BYTES
    from .vmig.reader import read_range

    limits = {"batch_size": batch_size, "max_line_bytes": max_line_bytes or DEFAULT_MAX_LINE_BYTES}

    sender = _Sender(out, depth)
    put = sender.put
    try:
        if size is None:  # gzip: one chunk, the whole stream from the start cursor
            put((_END, 0, _put_all(read_range(path, start=(start[0], 0), **limits), put)))
            put((_EOF, 1))
            return
        with open(path, "rb") as fh:
            k = worker
            while True:
                lo = start[0] if k == 0 else _align(fh, start[0] + k * chunk_bytes, size)
                if lo >= size:
                    put((_EOF, k))
                    return
                hi = _align(fh, start[0] + (k + 1) * chunk_bytes, size)
                gen = read_range(path, start=(lo, 0), end=hi, **limits)
                put((_END, k, _put_all(gen, put)))
                k += jobs
    except BaseException as exc:  # noqa: BLE001 - sent to the consumer and raised there
        put((_ERROR, _portable(exc)))
    finally:
        sender.close()  # everything put is in the pipe before the process ends


def _watch_parent(alive: Connection) -> None:
    """Exit when the consumer is gone (a ``kill -9`` of the runner): the worker would otherwise be an orphan,
    blocked on a full queue nobody reads. ``alive`` is the read end of a pipe whose only write end the
    consumer holds, so it reads EOF when the consumer dies. (The forkserver is no help: it lives as long as
    its children do.)"""

    def watch() -> None:
        try:
            while not alive.poll(None):
                pass
        except (EOFError, OSError):
            pass
        os._exit(1)

    threading.Thread(target=watch, name="vexrun-reader-watch", daemon=True).start()


def _put_all(gen: Any, put: Any) -> int:
    """Put every batch of ``gen`` and return its return value."""
    while True:
        try:
            batch = next(gen)
        except StopIteration as stop:
            return int(stop.value)
        put(_pack(batch))


def _pack(batch: Batch) -> tuple[Any, ...]:
    """A batch as a message: its records as one msgpack blob (msgspec encodes and decodes them 3-4× faster
    than pickle rebuilds each record), the rest as it is. Records msgpack cannot hold exactly (an integer
    beyond 64 bits in metadata) go pickled."""
    try:
        records = _RECORDS_ENC.encode(batch.records)
    except (TypeError, OverflowError, msgspec.EncodeError):
        return (_BATCH, batch)
    rest = (batch.vectors, batch.has_vector, batch.lines, batch.rejects, batch.warnings, batch.cursor)
    return (_PACKED, pickle.PickleBuffer(records), rest)


def _unpack(records: Any, rest: tuple[Any, ...]) -> Batch:
    vectors, has_vector, lines, rejects, warnings, cursor = rest
    batch = Batch(_RECORDS_DEC.decode(records), vectors, has_vector, lines, rejects, warnings)
    batch.cursor = cursor
    return batch


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a VexrunError with its message."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any exception that does not pickle
        return VexrunError(str(exc) or type(exc).__name__)


def _shift(batch: Batch, base: int) -> Batch:
    """Line numbers counted from a chunk's start → line numbers of the file."""
    if not base:
        return batch
    batch.lines = [ln + base for ln in batch.lines]
    batch.rejects = [
        Reject(r.line + base, [replace(f, line=f.line + base) if f.line else f for f in r.findings], r.raw)
        for r in batch.rejects
    ]
    batch.warnings = [replace(f, line=f.line + base) if f.line else f for f in batch.warnings]
    if batch.cursor is not None:
        batch.cursor = (batch.cursor[0], batch.cursor[1] + base)
    return batch


def _sizes(path: Path, start: int, batch_size: int, chunk_bytes: int | None) -> tuple[int, int]:
    """(chunk bytes, depth) from the average line of the file's first MiB: chunks of about 8 batches, so
    few batches are cut short at a chunk's end, and ``DEPTH`` batches ahead, fewer when batches are big."""
    with open(path, "rb") as fh:
        fh.seek(start)
        sample = fh.read(1 << 20)
    lines = sample.count(b"\n") or 1
    batch_bytes = max(1, len(sample) // lines) * batch_size
    depth = max(2, min(DEPTH, DEPTH_BYTES // batch_bytes))
    return chunk_bytes or max(CHUNK_BYTES, (depth - 2) * batch_bytes), depth


def read_batches_in_process(
    path: str | os.PathLike[str],
    *,
    batch_size: int,
    start: tuple[int, int] = (0, 0),
    jobs: int = 2,
    chunk_bytes: int | None = None,
    max_line_bytes: int | None = None,
) -> Iterator[Batch]:
    """The batches :func:`~vexrun.vmig.reader.read_batches` yields for the same arguments (cut also at
    chunk ends), parsed by ``jobs`` worker processes (one for a gzip file), started at the first batch asked."""
    yield from ProcessReader(
        path, batch_size=batch_size, start=start, jobs=jobs, chunk_bytes=chunk_bytes, max_line_bytes=max_line_bytes
    )


class ProcessReader:
    """The worker processes of :func:`read_batches_in_process`, started at once: they parse while the caller
    does something else (the runner opens the sinks, importing their SDKs); iterate it once for the batches.
    :meth:`close` stops them (iterating to the end or abandoning the iteration does too)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        batch_size: int,
        start: tuple[int, int] = (0, 0),
        jobs: int = 2,
        chunk_bytes: int | None = None,
        max_line_bytes: int | None = None,
    ) -> None:
        from .vmig.io import check_readable, is_gzip

        p = self.path = check_readable(path)
        gz = is_gzip(p)
        size = None if gz else p.stat().st_size
        jobs = self.jobs = 1 if gz else max(1, jobs)
        chunk_bytes, depth = (0, 2) if gz else _sizes(p, start[0], batch_size, chunk_bytes)
        ctx = forkserver()
        # the pipes keep the kernel's default size (64 KiB): a worker runs ahead by its `depth` queued messages
        pipes = [ctx.Pipe(duplex=False) for _ in range(jobs)]
        self.pipes = [reader for reader, _ in pipes]
        alive, self.held = ctx.Pipe(duplex=False)  # the workers watch `alive`; `held` stays here until the end
        self.workers = [
            ctx.Process(
                target=_produce,
                args=(str(p), batch_size, start, size, chunk_bytes, w, jobs, pipes[w][1], depth, alive, max_line_bytes),
                name=f"vexrun-reader-{w}",
                daemon=True,
            )
            for w in range(jobs)
        ]
        self.base = start[1]
        self.closed = False
        try:
            for worker in self.workers:
                worker.start()
        except BaseException:
            self.close()
            raise
        finally:
            alive.close()
            for _, writer in pipes:  # a worker's end is the worker's alone: its exit is then the pipe's end here
                writer.close()

    def __iter__(self) -> Iterator[Batch]:
        jobs, pipes, workers, p = self.jobs, self.pipes, self.workers, self.path
        base = self.base
        try:
            k = 0
            while True:
                w = k % jobs
                while True:
                    kind, *value = _get(pipes[w], workers[w], p)
                    if kind == _PACKED:
                        yield _shift(_unpack(*value), base)
                    elif kind == _BATCH:
                        yield _shift(value[0], base)
                    elif kind == _END:
                        if value[0] != k:
                            raise VexrunError(f"{p}: the reader processes lost their order (chunk {value[0]}, not {k})")
                        base += value[1]
                        break
                    elif kind == _EOF:
                        return
                    else:
                        raise value[0]
                k += 1
        finally:
            self.close()

    def close(self) -> None:
        """Stop the workers (idempotent)."""
        if self.closed:
            return
        self.closed = True
        for worker in self.workers:
            if worker.is_alive():
                worker.terminate()
        for worker in self.workers:
            if worker.pid is not None:
                worker.join(timeout=5)
        for conn in self.pipes:
            conn.close()
        self.held.close()
        release()


def _get(conn: Connection, worker: Any, path: Path) -> Any:
    """The next message of ``worker``; an error if it died without one."""
    while True:
        if conn.poll(1.0):
            try:
                return _recv(conn)
            except (EOFError, OSError):  # its end of the pipe closed: it exited
                break
        if not worker.is_alive() and not conn.poll(0.5):
            break
    worker.join(timeout=1.0)
    raise VexrunError(f"{path}: a reader process stopped unexpectedly (exit code {worker.exitcode})") from None
