"""``.vmig.jsonl`` files as a resumable sink (see :mod:`.file` for how the partial file, the lock and repeated ids
work), with the vectors written as text by a worker process once the output is big (:mod:`vexrun.vmig.encproc`)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import numpy as np
import orjson
from pydantic import Field

from ...appendfile import AppendFile, OutputLock, writable_parent
from ...errors import UsageError
from ...ids import IdIndex, id_hashes
from ...vmig.batch import Batch
from ...vmig.encproc import EncodeWorker
from ...vmig.model import Record
from ...vmig.sidecar import write_meta
from ...vmig.writer import encode_record, encode_record_hole
from ..base import Edge, PluginConfig, RunContext, Sink, WriteResult
from .file import _blobs, _id_json, _id_key, _lines, edges_path

__all__ = ["VmigSink", "VmigSinkConfig"]

_M = TypeVar("_M", bound=Callable[..., Any])

#: an output this big is worth a worker process (~0.2 s to start) that writes the vectors as text
WORKER_BYTES = 16 * 1024 * 1024


class VmigSinkConfig(PluginConfig):
    """``type: vmig`` — write a ``.vmig.jsonl`` file (``.gz`` compresses) with its sidecar."""

    type: Literal["vmig"] = "vmig"
    path: str = Field(min_length=1, description="The output file, relative to the recipe.")
    compress: bool | None = Field(default=None, description="gzip the output (default: when the name ends in .gz).")
    edges: bool = Field(default=True, description="Also write edges to <file>.edges.jsonl when the run makes any.")
    write_worker: bool | None = Field(
        default=None,
        description="Write the vectors as text, and append the lines, in a worker process while the run reads the "
        "next batch (default: once the output passes 16 MB, on a machine with 2 cores or more and outside a "
        "partitioned run; the bytes are the same either way).",
    )


#: records a piece of a batch sent to the writer process holds: it fills one while the next is sent
PIECE = 250


def _hole_lines(records: list[Record], d: int, mask: np.ndarray | None) -> list[bytes]:
    """The lines of a batch with holes where their ``d``-float vectors go (see :mod:`vexrun.vmig.encproc`),
    all encoded before any is sent, so a record that cannot be encoded fails the batch before it is written."""
    hole = encode_record_hole
    if mask is None:
        return [hole(rec, d) for rec in records]
    return [hole(rec, d) if mask[i] else encode_record(rec, None) for i, rec in enumerate(records)]


def _pieces(
    lines: list[bytes], vectors: np.ndarray, mask: np.ndarray | None
) -> Iterator[tuple[bytes, np.ndarray, np.ndarray | None]]:
    """A batch as pieces for :meth:`EncodeWorker.append`."""
    for lo in range(0, len(lines), PIECE):
        hi = lo + PIECE
        yield b"".join(lines[lo:hi]), vectors[lo:hi], None if mask is None else mask[lo:hi]


def _mask(batch: Batch) -> np.ndarray | None:
    """The rows of the batch that have a vector (None: all of them)."""
    mask = batch.has_vector
    return None if mask is None or mask.all() else mask


def _hash_ids(ids: list[str]) -> np.ndarray:
    # the lines were encoded already, so every id is valid UTF-8 (orjson refuses lone surrogates)
    return id_hashes(map(str.encode, ids))


def _check_hash(line: bytes) -> int:
    """A second hash of a line's id, independent of :func:`~vexrun.ids.id_hashes`, to confirm a match."""
    return int.from_bytes(hashlib.blake2b(_id_json(line), digest_size=8).digest(), "little")


def _os_errors(method: _M) -> _M:
    """Any OS error of a sink method (no permission, no space, a read-only file system) ends in one line naming
    the file, exit 2, instead of an internal error."""

    @functools.wraps(method)
    def wrapper(self: VmigSink, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except OSError as exc:
            name = exc.filename or self.partial
            raise UsageError(f"{name}: cannot write the output {self.cfg.path} ({exc.strerror or exc})") from None

    return cast(_M, wrapper)


class VmigSink(Sink):
    name = "vmig"
    #: plain files: encoding holds the GIL, but the file write and its hash do not
    write_behind = True
    #: with its writer process, a batch is sent to it and acknowledged later (:meth:`send`)
    pipelined = True

    def __init__(self, config: VmigSinkConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.cfg = config
        self.path = Path(ctx.resolve_path(config.path))
        self.compress = self.path.name.endswith(".gz") if config.compress is None else config.compress
        self.partial = self.path.with_name(f".{self.path.name}.partial")
        self.edges_partial = self.path.with_name(f".{edges_path(self.path).name}.partial")
        self.done = False
        self.lock: OutputLock | None = None
        #: the partial file: appended here, or by a worker process once :meth:`_hand_over` ran
        self.data: AppendFile | EncodeWorker | None = None
        self.edges: AppendFile | None = None
        #: the worker could not start: this process writes the file to the end
        self.no_worker = False
        self.lines_written = 0
        self.edge_count = 0
        self.dims: Counter[int] = Counter()
        self.models: Counter[str] = Counter()
        self.ns_counts: Counter[str] = Counter()
        self.stores: Counter[str] = Counter()
        #: every id written (hash → line), and the lines replaced by a later write of their id
        self.index = IdIndex()
        self.replaced: list[np.ndarray] = []
        self.replaced_by: list[np.ndarray] = []
        self.duplicates = 0
        #: what :meth:`state` says while batches are sent and not all acknowledged: the state after the last
        #: batch acknowledged (None: the state as it stands)
        self.acked: dict[str, Any] | None = None

    def identity(self) -> str:
        return str(self.path)

    def check(self) -> str:
        writable_parent(self.path, self.cfg.path)
        return f"{self.path}: directory writable" + (
            " (the file exists and will be replaced)" if self.path.exists() else ""
        )

    @_os_errors
    def open(self, state: dict[str, Any] | None) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(
                f"{self.path.parent}: cannot create the output directory ({exc.strerror or exc})"
            ) from None
        if self.path.is_dir():
            raise UsageError(f"{self.path}: is a directory (the output must be a file name)")
        # before anything touches the output or its partial files: another run may be writing them
        self.lock = OutputLock(self.path).acquire()
        state = state or {}
        self.done = bool(state) and not self.partial.exists() and self.path.exists()
        if self.done:
            # A run that was killed after the file was published: it is complete as it stands.
            self.data = AppendFile(self.partial, None)
            self.data.size = int(state.get("bytes", 0))
        else:
            self.data = AppendFile(self.partial, state.get("bytes"))
            published = edges_path(self.path)
            if state.get("edge_bytes") and not self.edges_partial.exists() and published.exists():
                # killed while publishing, after the edges were moved into place: take them back
                os.replace(published, self.edges_partial)
        self.edges = AppendFile(self.edges_partial, state.get("edge_bytes"))
        self.lines_written = int(state.get("count", 0))
        self.edge_count = int(state.get("edges", 0))
        self.dims = Counter({int(k): v for k, v in state.get("dims", {}).items()})
        self.models = Counter(state.get("models", {}))
        self.ns_counts = Counter(state.get("namespaces", {}))
        self.stores = Counter(state.get("stores", {}))
        if not self.done and self.data.size:
            self._rebuild_index()

    def _rebuild_index(self) -> None:
        """The id index of the committed part of the partial file, read back from the file itself."""
        assert self.data is not None
        line = 0
        for blob in _blobs(self.partial, self.data.size, self.compress):
            ids = [_id_key(x) for x in _lines(blob)]
            self._remember(id_hashes(ids), line)
            line += len(ids)
        self.lines_written = line

    def _remember(self, hashes: np.ndarray, first_line: int) -> int:
        """Index the ids of lines ``first_line…``; returns how many replaced an earlier line."""
        old, new = self.index.upsert(hashes, np.arange(first_line, first_line + len(hashes), dtype=np.int64))
        if len(old):
            self.replaced.append(old)
            self.replaced_by.append(new)
        self.duplicates += len(old)
        return len(old)

    @_os_errors
    def write(self, batch: Batch) -> WriteResult:
        assert self.data is not None
        if isinstance(self.data, AppendFile) and self._wants_worker(self.data):
            self._hand_over(self.data)
        if isinstance(self.data, EncodeWorker):  # the worker writes the lines, the vectors' text in their holes
            if not self._through(self.data, self._worker_pieces(batch)):
                return self.write(batch)
            return WriteResult(written=len(batch), duplicates=self._count(batch))
        vectors, mask = batch.vectors, _mask(batch)
        records = batch.records
        if vectors is None:
            lines = [encode_record(rec, None) for rec in records]
        else:
            lines = [
                encode_record(rec, vectors[i] if mask is None or mask[i] else None) for i, rec in enumerate(records)
            ]
        blob = b"".join(lines)
        duplicates = self._count(batch)
        if self.compress:
            blob = gzip.compress(blob, mtime=0)  # one gzip member per batch: concatenated members are valid gzip
        self.data.write(blob)
        self.data.sync()
        return WriteResult(written=len(records), duplicates=duplicates)

    def _worker_pieces(self, batch: Batch) -> Iterable[tuple[bytes, Any, Any]]:
        """The batch as pieces for the writer process, every line encoded before any piece is sent (a record
        that cannot be encoded fails the batch before it is written)."""
        vectors, mask = batch.vectors, _mask(batch)
        if vectors is None:
            return [(b"".join([encode_record(rec, None) for rec in batch.records]), None, None)]
        return _pieces(_hole_lines(batch.records, int(vectors.shape[1]), mask), vectors, mask)

    def _count(self, batch: Batch) -> int:
        """Count a batch this sink wrote (or sent); returns how many of its ids replaced an earlier line."""
        if batch.vectors is not None:
            mask = _mask(batch)
            self.dims[int(batch.vectors.shape[1])] += len(batch) if mask is None else int(mask.sum())
        duplicates = self._remember(_hash_ids([rec.id for rec in batch.records]), self.lines_written)
        self._account(batch.records)
        return duplicates

    @_os_errors
    def send(self, batch: Batch) -> Callable[[], WriteResult]:
        """Once the writer process has answered a batch, a batch goes to it and this returns at once: the
        function returned waits until the batch is durable, and from then on :meth:`state` describes it. The
        writer process fills the next batch while it makes this one durable. Before (this process writes the
        file, or the writer process is starting), the batch is written at once."""
        assert self.data is not None
        worker = self.data if isinstance(self.data, EncodeWorker) else None
        if worker is None or not worker.opened:
            result = self.write(batch)
            return functools.partial(self._acknowledged, None, self._state_now(), result)
        if self.acked is None:  # from now on the state is what was acknowledged, never a batch only sent
            self.acked = self._state_now()
        worker.send(self._worker_pieces(batch))
        result = WriteResult(written=len(batch), duplicates=self._count(batch))
        return functools.partial(self._acknowledged, worker, self._state_now(), result)

    def _acknowledged(self, worker: EncodeWorker | None, after: dict[str, Any], result: WriteResult) -> WriteResult:
        """Wait for the oldest batch sent to ``worker`` (none: it was written already); ``after`` is the state
        once it is durable, but for its size, which the worker says."""
        if worker is not None:
            try:
                after["bytes"] = worker.wait()
            except OSError as exc:
                name = exc.filename or self.partial
                raise UsageError(f"{name}: cannot write the output {self.cfg.path} ({exc.strerror or exc})") from None
        self.acked = after
        return result

    def _account(self, records: list[Record]) -> None:
        self.lines_written += len(records)
        self.models.update(r.model for r in records if r.model)
        self.ns_counts.update(r.namespace for r in records if r.namespace)
        self.stores.update(r.source_store for r in records if r.source_store)

    def _wants_worker(self, data: AppendFile) -> bool:
        if self.cfg.write_worker is not None:
            return self.cfg.write_worker
        return data.size >= WORKER_BYTES and self._may_use_worker()

    def _may_use_worker(self) -> bool:
        """The output will be handed to the writer process once it is big enough (it is by default)."""
        from ...vmig.scan import default_jobs

        if self.cfg.write_worker is not None:
            return self.cfg.write_worker
        return not self.no_worker and self.ctx.parallel <= 1 and default_jobs() >= 2

    def overlaps_reading(self) -> bool:
        """With its writer process, this sink's writes wait on that process: a source whose client waits too
        (a store) reads its next page meanwhile. Pgvector → vmig at 100k, interleaved: 2.50 → 2.43 s (Redis
        2.53 → 2.33 s)."""
        return self._may_use_worker()

    def _hand_over(self, data: AppendFile) -> None:
        """From now on a worker process appends the batches (see :mod:`vexrun.vmig.encproc`): this process's
        file is made durable and closed, and the worker takes it over at its committed length."""
        assert self.lock is not None
        data.sync()
        data.close()
        self.data = EncodeWorker(str(self.partial), data.size, compress=self.compress, lock_fd=self.lock.fileno())

    def _through(self, worker: EncodeWorker, pieces: Iterable[tuple[bytes, Any, Any]]) -> bool:
        """Append a batch through the worker: True once it is durable. False when the worker was not asked for
        by name and never started (a script run without ``if __name__ == "__main__":``, which a new process
        runs again): this process then writes the file to the end (and says so), the batch first."""
        from ...errors import VexrunError

        try:
            worker.append(pieces)
        except VexrunError as exc:
            if worker.opened or self.cfg.write_worker:
                raise
            committed = worker.size
            worker.close()
            self.no_worker = True
            self.ctx.info(f"{self.path}: written in the run's own process ({exc})")
            self.data = AppendFile(self.partial, committed)
            return False
        return True

    @_os_errors
    def write_edges(self, edges: list[Edge]) -> None:
        if not edges or not self.cfg.edges or self.edges is None:
            return
        blob = b"".join(
            orjson.dumps({"src": e.src, "dst": e.dst, "type": e.type, "weight": e.weight, "metadata": e.metadata})
            + b"\n"
            for e in edges
        )
        self.edges.write(blob)
        self.edges.sync()
        self.edge_count += len(edges)

    def state(self) -> dict[str, Any]:
        return dict(self.acked) if self.acked is not None else self._state_now()

    def _state_now(self) -> dict[str, Any]:
        assert self.data is not None and self.edges is not None
        return {
            "bytes": self.data.size,
            "edge_bytes": self.edges.size,
            "count": self.lines_written,
            "edges": self.edge_count,
            "dims": {str(k): v for k, v in self.dims.items()},
            "models": dict(self.models),
            "namespaces": dict(self.ns_counts),
            "stores": dict(self.stores),
        }

    @_os_errors
    def finalize(self) -> None:
        assert self.data is not None and self.edges is not None
        if self.done:
            self.partial.unlink(missing_ok=True)
            self.edges_partial.unlink(missing_ok=True)
            return
        self.data.sync()
        if self.replaced:
            self._publish_without_replaced()
            return
        os.replace(self.partial, self.path)
        self._publish_edges()
        checksum = self.data.checksum()
        self._write_meta(self.lines_written, self.data.size, checksum)

    def _publish_edges(self) -> None:
        assert self.edges is not None
        if self.edge_count:
            self.edges.sync()
            os.replace(self.edges_partial, edges_path(self.path))
        else:
            self.edges_partial.unlink(missing_ok=True)

    def _write_meta(self, count: int, size: int, checksum: str) -> None:
        stores = sorted(self.stores)
        write_meta(
            self.path,
            {
                "source_store": stores[0] if len(stores) == 1 else None,
                "record_count": count,
                "dims": sorted(self.dims),
                "models": sorted(self.models),
                "namespaces": sorted(self.ns_counts),
                "bytes": size,
                "checksum": "blake3:" + checksum,
                **({"edge_count": self.edge_count} if self.edge_count else {}),
            },
        )

    def _publish_without_replaced(self) -> None:
        """Copy the partial file into place without the lines a later write of their id replaced. The partial
        file goes last, so a run killed on the way publishes again from it when resumed."""
        replaced = np.concatenate(self.replaced)
        by = np.concatenate(self.replaced_by)
        order = np.argsort(replaced, kind="stable")
        replaced, by = replaced[order], by[order]
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.publish")
        try:
            false, size, checksum = self._copy_without(replaced, by, tmp)
            if len(false):  # 64-bit hash collisions: keep both lines of each pair whose ids differ
                self.ctx.info(
                    f"{self.path}: {len(false):,} id hash collision(s); those lines are kept "
                    "(check the file with `vexrun validate`)"
                )
                keep = np.isin(replaced, false)
                replaced, by = replaced[~keep], by[~keep]
                _, size, checksum = self._copy_without(replaced, by, tmp)
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        self._publish_edges()
        self._write_meta(self.lines_written - len(replaced), size, checksum)
        self.partial.unlink(missing_ok=True)

    def _copy_without(self, replaced: np.ndarray, by: np.ndarray, tmp: Path) -> tuple[np.ndarray, int, str]:
        """Write the partial file to ``tmp`` without the (sorted) ``replaced`` lines; gzip output is compressed
        again member by member, so the result depends only on the partial file. On the way, the ids of each
        replaced line and of the line that replaced it are compared by a second, independent hash (BLAKE2b):
        returns the replaced lines whose ids differ (a collision of the index's hash), and ``tmp``'s size and
        BLAKE3. Memory: a few arrays of 8 bytes per replaced line; runs without a replaced line are copied."""
        assert self.data is not None
        winners = np.unique(by)
        replaced_check = np.zeros(len(replaced), dtype=np.uint64)
        winner_check = np.zeros(len(winners), dtype=np.uint64)
        out = AppendFile(tmp, None)
        try:
            first = 0
            for blob in _blobs(self.partial, self.data.size, self.compress):
                n = blob.count(b"\n") + (1 if blob and not blob.endswith(b"\n") else 0)
                r0, r1 = (int(x) for x in np.searchsorted(replaced, (first, first + n)))
                w0, w1 = (int(x) for x in np.searchsorted(winners, (first, first + n)))
                if r0 == r1 and w0 == w1:
                    out.write(gzip.compress(blob, mtime=0) if self.compress else blob)
                    first += n
                    continue
                lines = _lines(blob)
                for k in range(w0, w1):
                    winner_check[k] = _check_hash(lines[int(winners[k]) - first])
                drop = set()
                for k in range(r0, r1):
                    j = int(replaced[k]) - first
                    replaced_check[k] = _check_hash(lines[j])
                    drop.add(j)
                kept = [line for j, line in enumerate(lines) if j not in drop]
                if kept:
                    chunk = b"\n".join(kept) + b"\n"
                    out.write(gzip.compress(chunk, mtime=0) if self.compress else chunk)
                first += n
            out.sync()
            false = replaced[replaced_check != winner_check[np.searchsorted(winners, by)]]
            return false, out.size, out.hasher.hexdigest()
        finally:
            out.close()

    def close(self) -> None:
        for appender in (self.data, self.edges):
            if appender is not None:
                appender.close()
        if self.lock is not None:
            self.lock.release()
            self.lock = None
