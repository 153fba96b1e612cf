"""``.vmig.jsonl`` files as a source and as a resumable sink.

The sink appends to a partial file beside the target (``.<name>.partial``); the checkpoint stores its
committed length with every batch, so a resumed run truncates away whatever a killed run wrote after its
last commit, and the finished file is renamed into place (with its sidecar) only when the run completes.
Edges, when a run produces them, go to ``<file>.edges.jsonl`` the same way. While it is open the sink holds
``<file>.lock`` (:class:`~vexrun.appendfile.OutputLock`): a second run writing the same file is refused.

An id written again in the same run replaces the earlier record (last write wins, as in every target). The
sink appends anyway and remembers each id it wrote in an :class:`~vexrun.ids.IdIndex` (16 bytes a record);
when the run completes with repeated ids, the partial file is copied into place without the lines that
were replaced, each confirmed by comparing the real ids (a hash collision keeps both lines). On resume the
index is rebuilt from the partial file itself, so a resumed run publishes the same bytes as an uninterrupted
one.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import numpy as np
import orjson
from pydantic import Field

from ...appendfile import AppendFile, OutputLock
from ...errors import UsageError
from ...ids import IdIndex, id_hashes
from ...vmig.batch import Batch
from ...vmig.reader import read_batches
from ...vmig.sidecar import write_meta
from ...vmig.writer import encode_record
from ..base import Cursor, Edge, PluginConfig, RunContext, Sink, Source, WriteResult

__all__ = ["VmigSink", "VmigSinkConfig", "VmigSource", "VmigSourceConfig", "edges_path"]

_M = TypeVar("_M", bound=Callable[..., Any])


class VmigSourceConfig(PluginConfig):
    """``type: vmig`` — read a ``.vmig.jsonl`` or ``.vmig.jsonl.gz`` file."""

    type: Literal["vmig"] = "vmig"
    path: str = Field(min_length=1, description="The file, relative to the recipe.")
    namespace: str | None = Field(default=None, description="Set this namespace on records that have none.")
    read_workers: int | None = Field(
        default=None,
        ge=0,
        le=64,
        description="Worker processes that parse the file while the run writes (default: 2 for a file of 48 MB "
        "or more on a machine with 2 cores or more, else 0: parse in the run's own process).",
    )


class VmigSinkConfig(PluginConfig):
    """``type: vmig`` — write a ``.vmig.jsonl`` file (``.gz`` compresses) with its sidecar."""

    type: Literal["vmig"] = "vmig"
    path: str = Field(min_length=1, description="The output file, relative to the recipe.")
    compress: bool | None = Field(default=None, description="gzip the output (default: when the name ends in .gz).")
    edges: bool = Field(default=True, description="Also write edges to <file>.edges.jsonl when the run makes any.")


def edges_path(data: Path) -> Path:
    return data.with_name(data.name + ".edges.jsonl")


class VmigSource(Source):
    name = "vmig"

    def __init__(self, config: VmigSourceConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.cfg = config
        self.path = Path(ctx.resolve_path(config.path))
        self.counts: Counter[str] = Counter()
        #: worker processes started by prime() for (start, batch_size), taken by the next batches()
        self._primed: tuple[tuple[int, int], int, Any] | None = None

    @property
    def workers(self) -> int:
        """How many worker processes parse the file (see :mod:`vexrun.procread`); 0: none."""
        from ...procread import MIN_BYTES
        from ...vmig.scan import default_jobs

        if self.cfg.read_workers is not None:
            return self.cfg.read_workers
        try:
            big = self.path.stat().st_size >= MIN_BYTES
        except OSError:
            return 0
        return 2 if big and default_jobs() >= 2 else 0

    @property
    def prefetch(self) -> bool:  # type: ignore[override]
        # Worker processes already read ahead; a thread on top of them only competes for the GIL.
        return self.workers == 0

    def open(self) -> None:
        from ...errors import FormatError
        from ...vmig.io import check_readable, sniff

        if not os.path.lexists(self.path):
            raise UsageError(f"{self.cfg.path}: no such file")
        # one line naming the file for a directory, a device or FIFO, no permission; then refuse what is
        # clearly no .vmig.jsonl file (an export, a zip, binary data) before every line of it is rejected
        problem = sniff(check_readable(self.path))
        if problem:
            raise FormatError(f"not a .vmig.jsonl file: this is {problem}", location=self.cfg.path)

    def identity(self) -> str:
        return f"vmig:{self.path.name}"

    def estimate(self) -> int | None:
        from ...vmig.sidecar import read_meta

        meta = read_meta(self.path)
        if meta and meta[1] and isinstance(meta[1].get("record_count"), int):
            return int(meta[1]["record_count"])
        return None

    def partitions(self, n: int, batch_size: int) -> list[tuple[str, Cursor | None]]:
        """Byte ranges of about equal size, named ``bytes A-B``, each starting at a line where a serial read's
        batch starts (every ``batch_size`` lines: a file with rejected or blank lines, or a batch cut early,
        shifts that, and the batches then differ near the cuts, not the records). A gzip file cannot be cut: one
        partition. Each start cursor carries the range's first line number and its ``end``."""
        size = self.path.stat().st_size
        if n <= 1 or size == 0 or self.path.name.endswith(".gz"):
            return [("all", None)]
        marks = _batch_starts(self.path, batch_size)  # (offset, line) of every batch_size-th line start
        cuts: list[tuple[int, int]] = [(0, 0)]
        for k in range(1, n):
            want = size * k // n
            found = next((m for m in marks if m[0] >= want and m[0] > cuts[-1][0]), None)
            if found is not None and found[0] < size:
                cuts.append(found)
        bounds = [*cuts, (size, -1)]
        return [
            (f"bytes {lo}-{hi}", {"offset": lo, "line": line, "end": hi})
            for (lo, line), (hi, _) in zip(bounds, bounds[1:], strict=False)
        ]

    def prime(self, cursor: Cursor | None, batch_size: int) -> None:
        """Start the worker processes (the file's parsing overlaps the opening of the sinks)."""
        if (cursor and cursor.get("end") is not None) or not self.workers or self._primed is not None:
            return
        from ... import procread

        start = (int(cursor["offset"]), int(cursor["line"])) if cursor else (0, 0)
        reader = procread.ProcessReader(self.path, batch_size=batch_size, start=start, jobs=self.workers)
        self._primed = (start, batch_size, reader)

    def close(self) -> None:
        if self._primed is not None:
            self._primed[2].close()
            self._primed = None

    def batches(self, cursor: Cursor | None, batch_size: int) -> Iterator[tuple[Batch, Cursor]]:
        start = (int(cursor["offset"]), int(cursor["line"])) if cursor else (0, 0)
        end = cursor.get("end") if cursor else None
        primed, self._primed = self._primed, None
        if primed is not None and primed[:2] != (start, batch_size):
            primed[2].close()
            primed = None
        bound: dict[str, int] = {}
        if end is not None:  # one partition of a distributed run, parsed in this process
            from ...vmig.reader import read_range

            bound = {"end": int(end)}
            batches: Iterator[Batch] = read_range(self.path, batch_size=batch_size, start=start, end=int(end))
        elif primed is not None:
            batches = iter(primed[2])
        elif workers := self.workers:
            from ... import procread

            # parse on the other cores while the runner encodes and writes the batches before
            batches = procread.read_batches_in_process(self.path, batch_size=batch_size, start=start, jobs=workers)
        else:
            batches = read_batches(self.path, batch_size=batch_size, start=start)
        for batch in batches:
            if self.cfg.namespace is not None:
                for rec in batch.records:
                    if rec.namespace is None:
                        rec.namespace = self.cfg.namespace
            self.counts["warnings"] += len(batch.warnings)
            assert batch.cursor is not None
            yield batch, {"offset": batch.cursor[0], "line": batch.cursor[1], **bound}

    @classmethod
    def declared_models(cls, config: Any, base_dir: Any) -> list[str]:
        """The models the file's sidecar names (no record is read)."""
        from ...vmig.sidecar import read_meta

        path = Path(base_dir) / config.path
        meta = read_meta(path) if path.is_file() else None
        models = meta[1].get("models") if meta and meta[1] else None
        return [str(m) for m in models if m] if isinstance(models, list) else []

    def report(self) -> dict[str, Any]:
        return dict(self.counts)


_BLOCK = 1 << 22


def _batch_starts(path: Path, every: int) -> list[tuple[int, int]]:
    """(byte offset, line number before it) of the start of every ``every``-th line after the first, in one
    pass over the file."""
    out: list[tuple[int, int]] = []
    lines, base = 0, 0
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)  # newline positions
            # the line numbers these newlines end are lines + 1 … lines + len(ends)
            first = (every - 1 - lines) % every  # the first of them ending a line number divisible by `every`
            for i in range(first, len(ends), every):
                out.append((base + int(ends[i]) + 1, lines + i + 1))
            lines += len(ends)
            base += len(block)
    return out


def _members(fh: Any, size: int) -> Iterator[bytes]:
    """The uncompressed bytes of each gzip member in the first ``size`` bytes of ``fh`` (one per batch)."""
    left = size
    d = zlib.decompressobj(31)
    out: list[bytes] = []
    pending = b""
    while True:
        if not pending:
            if not left:
                break
            pending = fh.read(min(_BLOCK, left))
            if not pending:
                break
            left -= len(pending)
        out.append(d.decompress(pending))
        pending = b""
        if d.eof:
            pending = d.unused_data
            yield b"".join(out)
            out = []
            d = zlib.decompressobj(31)
    if out:
        yield b"".join(out) + d.flush()


def _blobs(path: Path, size: int, compressed: bool) -> Iterator[bytes]:
    """The first ``size`` bytes of a partial file, uncompressed, as runs of whole lines: one per gzip member
    (a batch), or blocks of about 4 MiB cut after a newline."""
    with open(path, "rb") as fh:
        if compressed:
            yield from _members(fh, size)
            return
        carry = bytearray()
        left = size
        while left:
            chunk = fh.read(min(_BLOCK, left))
            if not chunk:
                break
            left -= len(chunk)
            cut = chunk.rfind(b"\n") + 1
            if not cut:
                carry += chunk
                continue
            yield bytes(carry) + chunk[:cut]
            carry = bytearray(chunk[cut:])
        if carry:
            yield bytes(carry)


def _lines(blob: bytes) -> list[bytes]:
    lines = blob.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    return lines


def _id_json(line: bytes) -> bytes:
    """The id of a record line as the JSON string it is written as.
    ``encode_record`` writes ``{"id":"…","text":…`` and a JSON string holds no unescaped quote, so the
    first ``","text":`` ends the id; anything else is parsed."""
    if line.startswith(b'{"id":"'):
        end = line.find(b'","text":', 7)
        if end > 0:
            return line[6 : end + 1]
    try:
        value = orjson.loads(line).get("id")
    except (orjson.JSONDecodeError, AttributeError):
        value = None
    return orjson.dumps(value)


def _id_key(line: bytes) -> bytes:
    """What the index hashes for a record line: its id's UTF-8 bytes, as :func:`_hash_ids` has them."""
    found = _id_json(line)
    value = orjson.loads(found)
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else found


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

    def __init__(self, config: VmigSinkConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.cfg = config
        self.path = Path(ctx.resolve_path(config.path))
        self.compress = self.path.name.endswith(".gz") if config.compress is None else config.compress
        self.partial = self.path.with_name(f".{self.path.name}.partial")
        self.edges_partial = self.path.with_name(f".{edges_path(self.path).name}.partial")
        self.done = False
        self.lock: OutputLock | None = None
        self.data: AppendFile | None = None
        self.edges: AppendFile | None = None
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

    def identity(self) -> str:
        return str(self.path)

    def check(self) -> str:
        parent = self.path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent  # the first existing ancestor is where the directory would be made
        if not parent.is_dir():
            raise UsageError(f"{parent}: not a directory (for the output {self.cfg.path})")
        if not os.access(parent, os.W_OK):
            raise UsageError(f"{parent}: not writable (for the output {self.cfg.path})")
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
        vectors, mask = batch.vectors, batch.has_vector
        records = batch.records
        if vectors is None:
            lines = [encode_record(rec, None) for rec in records]
        elif mask is None or mask.all():
            lines = [encode_record(rec, vectors[i]) for i, rec in enumerate(records)]
            self.dims[int(vectors.shape[1])] += len(records)
        else:
            lines = [encode_record(rec, vectors[i] if mask[i] else None) for i, rec in enumerate(records)]
            self.dims[int(vectors.shape[1])] += int(mask.sum())
        duplicates = self._remember(_hash_ids([rec.id for rec in records]), self.lines_written)
        self.lines_written += len(records)
        self.models.update(r.model for r in records if r.model)
        self.ns_counts.update(r.namespace for r in records if r.namespace)
        self.stores.update(r.source_store for r in records if r.source_store)
        blob = b"".join(lines)
        if self.compress:
            blob = gzip.compress(blob, mtime=0)  # one gzip member per batch: concatenated members are valid gzip
        self.data.write(blob)
        self.data.sync()
        return WriteResult(written=len(records), duplicates=duplicates)

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
        self._write_meta(self.lines_written, self.data.size, self.data.hasher.hexdigest())

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
