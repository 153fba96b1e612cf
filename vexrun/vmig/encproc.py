"""Write a ``.vmig.jsonl`` sink's vectors as text, and append its batches, in a worker process.

Turning float32 vectors into their shortest decimal text is most of the work of writing a ``.vmig.jsonl`` file
(about 1.0 s of 1.4 s per 100k × 384 records, all of it holding the GIL), and it would otherwise share one
interpreter with the source's decoding. So the sink encodes each line *without* its vector, with
``"vector":null`` where the vector goes (:func:`~vexrun.vmig.writer.encode_record_hole`: every other byte, and
every error a record can raise, are the serial encoder's), and sends those lines with the batch's raw float32
matrix to :class:`EncodeWorker`. The worker puts each vector's text in its place, compresses when asked,
appends the batch to the partial file, makes it durable, and answers with the file's new size: the sink's
write returns only then, so the commit rule (a batch is committed after its target acknowledged it) holds as
before, while the run's own process decodes the next batch. The bytes are those of the serial writer.

The worker holds a copy of the output's lock descriptor, so a second run cannot take the output while the
worker may still write; it ignores SIGINT (the runner's first Ctrl-C finishes the batch in flight) and exits
when the run's process is gone (its pipe reads EOF).
"""

from __future__ import annotations

import fcntl
import gzip
import os
import queue
import signal
import threading
from collections.abc import Iterable
from multiprocessing import reduction
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ..errors import VexrunError
from .workers import forkserver

__all__ = ["HOLE", "EncodeWorker", "fill_vectors"]

#: where a line encoded without its vector keeps its place: the first ``,"vector":`` of a line is the field's
#: own, as ``id`` and ``text`` before it are JSON strings, inside which every ``"`` is escaped
HOLE = b',"vector":null,'
_KEY = len(b',"vector":')
_NULL = len(b"null")
_OPTS = orjson.OPT_SERIALIZE_NUMPY


def fill_vectors(blob: bytes, vectors: np.ndarray | None, mask: np.ndarray | None) -> bytes:
    """``blob`` (lines, each with its newline) with the text of ``vectors[i]`` in the hole of line ``i`` for
    every ``i`` that ``mask`` marks (every line without a mask; none without vectors)."""
    if vectors is None:
        return blob
    lines = blob.split(b"\n")
    return b"".join(_filled(lines, 0, len(lines) - 1, vectors, mask))


def _filled(lines: list[bytes], lo: int, hi: int, vectors: np.ndarray, mask: np.ndarray | None) -> list[bytes]:
    """The parts of lines ``lo … hi - 1`` with their vectors, each line's newline restored."""
    parts: list[bytes] = []
    add = parts.append
    dumps = orjson.dumps
    for i in range(lo, hi):
        line = lines[i]
        if mask is not None and not mask[i]:
            add(line)
            add(b"\n")
            continue
        at = line.find(HOLE) + _KEY
        add(line[:at])
        add(dumps(vectors[i], option=_OPTS))
        add(line[at + _NULL :])
        add(b"\n")
    return parts


class _Appender:
    """Appends chunks on a thread (a file write and BLAKE3 release the GIL) while the next chunk is filled, and
    at each batch's end (:meth:`end`) makes the batch durable and answers the run: the next batch is filled
    meanwhile. Every answer goes out through :meth:`answer`, in order."""

    def __init__(self, out: Any, conn: Connection) -> None:
        self.out = out
        self.conn = conn
        self.lock = threading.Lock()
        self.queue: queue.Queue[bytes | memoryview | threading.Event | None] = queue.Queue(maxsize=4)
        self.error: BaseException | None = None
        threading.Thread(target=self._run, name="vexrun-writer-append", daemon=True).start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if isinstance(item, threading.Event):
                item.set()
            elif item is None:  # a batch's end: durable, then said so (or the error that struck it or one before)
                if self.error is None:
                    try:
                        self.out.sync()
                    except BaseException as exc:  # noqa: BLE001 - sent to the run
                        self.error = exc
                self.answer(["ok", self.out.size] if self.error is None else _failure(self.error))
            elif self.error is None:  # after an error nothing more is written
                try:
                    self.out.write(item)
                except BaseException as exc:  # noqa: BLE001 - sent to the run at the batch's end
                    self.error = exc

    def put(self, data: bytes) -> None:
        self.queue.put(data)

    def end(self) -> None:
        """The batch's chunks were all put: once they are written, make them durable and say so."""
        self.queue.put(None)

    def answer(self, message: list[Any]) -> None:
        with self.lock:
            try:
                self.conn.send_bytes(orjson.dumps(message))
            except OSError:  # the run's process is gone: the serving thread reads EOF and returns
                pass

    def flush(self) -> None:
        """Wait until every chunk and end put so far is done; raise the first error of a write or sync."""
        done = threading.Event()
        self.queue.put(done)
        done.wait()
        if self.error is not None:
            raise self.error


def _failure(exc: BaseException) -> list[Any]:
    """The answer that makes the run raise ``exc`` (an OSError as itself)."""
    if isinstance(exc, OSError):
        return ["oserror", exc.errno, exc.strerror, exc.filename]
    return ["error", f"{type(exc).__name__}: {exc}"]


class _Receiver:
    """Reads the pieces on a thread (a pipe's read releases the GIL) while the one before is filled; puts each
    as (head, lines, vectors, mask) on :attr:`queue`, and None once the run's process is gone."""

    def __init__(self, data_in: Connection) -> None:
        self.data_in = data_in
        self.queue: queue.Queue[tuple[list[Any], bytes, np.ndarray | None, np.ndarray | None] | None]
        self.queue = queue.Queue(maxsize=4)
        threading.Thread(target=self._run, name="vexrun-writer-receive", daemon=True).start()

    def _run(self) -> None:
        recv = self.data_in.recv_bytes
        try:
            while True:
                head = orjson.loads(recv())
                if head[0] != "write":
                    self.queue.put((head, b"", None, None))
                    if head[0] == "close":
                        return
                    continue
                _, dtype, rows, dims, has_mask = head
                blob = recv()
                vectors = None if dtype is None else np.frombuffer(recv(), dtype=dtype).reshape(rows, dims)
                mask = np.frombuffer(recv(), dtype=np.bool_) if has_mask else None
                self.queue.put((head, blob, vectors, mask))
        except (EOFError, OSError):
            self.queue.put(None)


def _serve(conn: Connection, data_in: Connection, path: str, committed: int, compress: bool) -> None:
    """The worker: append each batch sent on ``data_in`` to ``path`` (cut back to ``committed`` bytes first),
    and say on ``conn`` when it is durable."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lock = reduction.recv_handle(conn)  # a copy of the run's lock on the output: held while this process lives
    try:
        out = _open(conn, path, committed)
        if out is None:
            return
        app = _Appender(out, conn)
        pieces = _Receiver(data_in)
        gz: list[bytes] = []  # a gzip batch's filled pieces: one gzip member per batch, as the serial sink writes
        while True:
            item = pieces.queue.get()
            if item is None:
                return  # the run's process is gone: write nothing more
            head, blob, vectors, mask = item
            try:
                if head[0] == "close":
                    app.flush()
                    out.close()
                    app.answer(["closed", out.size, out.hasher.hexdigest()])
                    return
                if head[0] == "end":  # the batch's last piece was sent: the appender makes it durable, says so
                    if gz:
                        app.put(gzip.compress(b"".join(gz), mtime=0))
                        gz.clear()
                    app.end()  # and the next batch is filled meanwhile
                    continue
                data = fill_vectors(blob, vectors, mask)  # written by the thread while the next piece is filled
                gz.append(data) if compress else app.put(data)
            except Exception as exc:  # noqa: BLE001 - sent to the run and raised there
                try:
                    app.flush()  # the batches before this one are answered first
                except BaseException:  # noqa: BLE001, S110 - an error of the appender's: this batch's answer
                    pass
                app.answer(_failure(app.error or exc))
                return
    finally:
        os.close(lock)


def _open(conn: Connection, path: str, committed: int) -> Any:
    """The partial file, cut back to ``committed`` bytes (an AppendFile); None once its error was sent."""
    from ..appendfile import AppendFile

    try:
        out = AppendFile(Path(path), committed)
    except OSError as exc:
        conn.send_bytes(orjson.dumps(["oserror", exc.errno, exc.strerror, exc.filename]))
        return None
    except Exception as exc:  # noqa: BLE001 - sent to the run and raised there
        conn.send_bytes(orjson.dumps(["error", f"{type(exc).__name__}: {exc}"]))
        return None
    conn.send_bytes(orjson.dumps(["ok", out.size]))
    return out


def _widen(pipe: Connection) -> None:
    """Let the pipe hold 1 MiB (Linux's default ceiling for a user) instead of 64 KiB: a piece of a batch then
    passes in a few writes, not dozens of wake-ups of the worker."""
    try:
        fcntl.fcntl(pipe.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except OSError:
        pass  # the pipe keeps its size: slower, not wrong


class EncodeWorker:
    """The worker process that appends a sink's batches to ``path``, which it takes over at ``committed`` bytes
    (the file must be synced and closed here first). ``lock_fd``: the output lock's descriptor, shared with the
    worker. Its :attr:`size` is the file's committed length after the last batch waited for."""

    def __init__(self, path: str, committed: int, *, compress: bool, lock_fd: int) -> None:
        self.path = path
        ctx = forkserver()
        self.conn, child = ctx.Pipe(duplex=True)  # the lock's descriptor there, and the worker's answers back
        data_in, self.data_out = ctx.Pipe(duplex=False)  # the batches: a pipe, widened to hold a piece or more
        _widen(self.data_out)
        self.proc = ctx.Process(
            target=_serve, args=(child, data_in, path, committed, compress), name="vexrun-writer", daemon=True
        )
        self.proc.start()
        child.close()
        data_in.close()
        self.closed = False
        self.size = committed
        #: batches sent and not yet waited for
        self.in_flight = 0
        #: the worker said it opened the file: its answer is read with the first batch's, so that the process
        #: starts (~0.3 s: a new interpreter, numpy) while the run goes on
        self.opened = False
        try:
            reduction.send_handle(self.conn, lock_fd, self.proc.pid)
        except BaseException:
            self.close()
            raise

    def append(self, pieces: Iterable[tuple[bytes, np.ndarray | None, np.ndarray | None]]) -> int:
        """Append one batch, sent as ``pieces`` as they are made (the worker fills one while the next is
        encoded here): each the lines of some records with their vectors' holes, the vectors (rows
        ``mask`` marks have one). Returns once the whole batch is durable, with the file's new size."""
        self.send(pieces)
        return self.wait()

    def send(self, pieces: Iterable[tuple[bytes, np.ndarray | None, np.ndarray | None]]) -> None:
        """Send one batch as :meth:`append` does, without waiting for it: :meth:`wait` returns once it is
        durable. Batches sent before it are answered first, in order, and the worker fills this one while it
        makes the one before durable."""
        send = self.data_out.send_bytes
        self.in_flight += 1
        try:
            for blob, vectors, mask in pieces:
                if vectors is not None:
                    vectors = np.ascontiguousarray(vectors)
                    rows, dims = vectors.shape
                    send(orjson.dumps(["write", vectors.dtype.str, rows, dims, mask is not None]))
                    send(blob)
                    send(vectors.data.cast("B"))
                    if mask is not None:
                        send(np.ascontiguousarray(mask, dtype=np.bool_).tobytes())
                else:
                    send(orjson.dumps(["write", None, 0, 0, False]))
                    send(blob)
            send(b'["end"]')
        except (BrokenPipeError, ConnectionResetError):
            pass  # the worker stopped: its answer (an error, or none) says why

    def wait(self) -> int:
        """Wait until the oldest batch sent and not yet waited for is durable; the file's size after it."""
        if self.in_flight <= 0:
            raise RuntimeError("no batch was sent to the writer process")
        self.in_flight -= 1
        self._expect_open()
        self.size = self._answer()
        return self.size

    def _expect_open(self) -> None:
        if not self.opened:
            self._answer()
            self.opened = True

    def sync(self) -> None:
        """Nothing to do: every batch the worker acknowledged is durable."""

    def checksum(self) -> str:
        """Close the file in the worker and stop it; returns the BLAKE3 hex digest of the whole file."""
        while self.in_flight:
            self.wait()
        try:
            self.data_out.send_bytes(b'["close"]')
            self._expect_open()
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            head = orjson.loads(self.conn.recv_bytes())
        except (EOFError, OSError):
            head = []
        self.close()
        if not head or head[0] != "closed":
            raise self._lost()
        self.size = int(head[1])
        return str(head[2])

    def _answer(self) -> int:
        try:
            head = orjson.loads(self.conn.recv_bytes())
        except (EOFError, OSError):
            self.close()
            raise self._lost() from None
        if head[0] == "ok":
            return int(head[1])
        self.close()
        if head[0] == "oserror":
            raise OSError(head[1], head[2], head[3])
        raise VexrunError(f"{self.path}: the writer process failed ({head[1]})")

    def _lost(self) -> VexrunError:
        return VexrunError(f"{self.path}: the writer process stopped unexpectedly (exit code {self.proc.exitcode})")

    def close(self) -> None:
        """Stop the worker (idempotent); a batch it was writing is not committed."""
        if self.closed:
            return
        self.closed = True
        self.data_out.close()  # the worker reads EOF and returns
        self.conn.close()
        self.proc.join(timeout=5)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(timeout=5)
