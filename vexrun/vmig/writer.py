"""Atomic ``.vmig.jsonl`` writer with its sidecar meta file.

Lines go to a temporary file in the target's directory, which is fsynced and renamed over the target
only on :meth:`VmigWriter.close`, so a reader never sees half a file and a crash leaves the old file in
place. Every record is stamped with the format version vexrun writes. Vectors are written from float32
with the shortest decimal form that reads back to the same float32, so they round-trip bit-exactly.
"""

from __future__ import annotations

import gzip
import os
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import blake3
import numpy as np
import orjson

from ..appendfile import drop_cached
from ..errors import FormatError, UsageError
from .batch import Batch
from .model import FIELDS, VEX_VERSION, Record
from .sidecar import write_meta

__all__ = ["VmigWriter", "encode_record", "encode_record_hole"]

_OPTS = orjson.OPT_SERIALIZE_NUMPY
_KNOWN = frozenset(FIELDS)
_FLUSH = 1 << 20
#: how much a :class:`VmigWriter` writes between two calls of :func:`~vexrun.appendfile.drop_cached`
_ADVISE_BYTES = 32 << 20


def encode_record(rec: Record, vector: np.ndarray | None, *, source_store: str | None = None) -> bytes:
    """One ``.vmig.jsonl`` line (with its newline) for ``rec``, in Vex's field order."""
    dims = int(vector.shape[0]) if vector is not None else rec.dims
    return orjson.dumps(_fields(rec, vector, dims, source_store), option=_OPTS) + b"\n"


def encode_record_hole(rec: Record, dims: int, *, source_store: str | None = None) -> bytes:
    """:func:`encode_record`'s line for ``rec`` with a vector of ``dims`` floats, but with ``"vector":null``
    where the vector goes (:func:`vexrun.vmig.encproc.fill_vectors` puts its text there)."""
    return orjson.dumps(_fields(rec, None, dims, source_store), option=_OPTS) + b"\n"


def _fields(rec: Record, vector: np.ndarray | None, dims: int | None, source_store: str | None) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": rec.id,
        "text": rec.text,
        "vector": vector,
        "model": rec.model,
        "dims": dims,
        "namespace": rec.namespace,
        "metadata": rec.metadata,
        "created_at": rec.created_at,
        "source_store": rec.source_store if rec.source_store is not None else source_store,
        "modality": rec.modality,
        "score": rec.score,
        "vex_version": VEX_VERSION,
    }
    if rec.extra:
        for k, v in rec.extra.items():
            if k not in _KNOWN:
                d[k] = v
    return d


class _HashingSink:
    """A write-only file object that hashes what it passes on (the bytes as they land on disk). Every
    :data:`_ADVISE_BYTES` it asks the kernel to start writing back what it wrote and to drop from the page cache
    what was written back since the call before (:func:`~vexrun.appendfile.drop_cached`; no fsync: the file is
    synced at close): a big file then writes into recycled pages, not new ones."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.hasher = blake3.blake3(max_threads=1)
        self.size = 0
        self._advised = 0

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        self.size += len(data)
        n = self.fh.write(data)
        if self.size - self._advised >= _ADVISE_BYTES:
            self.fh.flush()
            start = max(0, self._advised - 2 * _ADVISE_BYTES)
            drop_cached(self.fh.fileno(), start, self.size - start)
            self._advised = self.size
        return n

    def flush(self) -> None:
        self.fh.flush()


class VmigWriter:
    """Write records to ``path`` atomically; the sidecar ``<path>.meta.json`` is written on close.

    >>> with VmigWriter("out.vmig.jsonl", source_store="chroma") as w:   # doctest: +SKIP
    ...     w.write_batch(batch)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        source_store: str | None = None,
        compress: bool | None = None,
        meta: dict[str, Any] | None = None,
        sidecar: bool = True,
    ) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise UsageError(f"{self.path}: is a directory")
        if not self.path.parent.is_dir():
            raise UsageError(f"{self.path.parent}: no such directory")
        self.source_store = source_store
        self.compress = self.path.name.endswith(".gz") if compress is None else compress
        self.extra_meta = meta or {}
        self.sidecar = sidecar
        self.count = 0
        self._dims: Counter[int] = Counter()
        self._models: Counter[str | None] = Counter()
        self._namespaces: Counter[str | None] = Counter()
        self._stores: Counter[str | None] = Counter()
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self._raw = open(self._tmp, "wb")
        except OSError as exc:
            raise UsageError(f"{self.path}: cannot write ({exc.strerror or exc})") from None
        self._sink = _HashingSink(self._raw)
        self._out: Any = gzip.GzipFile(fileobj=self._sink, mode="wb", mtime=0) if self.compress else self._sink
        self._buf: list[bytes] = []
        self._buf_n = 0
        self._closed = False

    def __enter__(self) -> VmigWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _emit(self, line: bytes) -> None:
        self._buf.append(line)
        self._buf_n += len(line)
        if self._buf_n >= _FLUSH:
            self._drain()

    def _drain(self) -> None:
        if self._buf:
            self._out.write(b"".join(self._buf))
            self._buf.clear()
            self._buf_n = 0

    def _account(self, rec: Record, dims: int | None) -> None:
        self.count += 1
        if dims is not None:
            self._dims[dims] += 1
        self._models[rec.model] += 1
        self._namespaces[rec.namespace] += 1
        self._stores[rec.source_store if rec.source_store is not None else self.source_store] += 1

    def write(self, rec: Record, vector: np.ndarray | list[float] | None = None) -> None:
        """Write one record with its vector (any float sequence; stored as float32)."""
        vec = None if vector is None else np.ascontiguousarray(vector, dtype=np.float32)
        if vec is not None:
            if vec.ndim != 1 or not len(vec):
                raise FormatError(f"record '{rec.id}': a vector must be a non-empty 1-d array")
            if not np.isfinite(vec).all():
                raise FormatError(f"record '{rec.id}': vector holds NaN or infinity; refusing to write it")
        self._emit(encode_record(rec, vec, source_store=self.source_store))
        self._account(rec, None if vec is None else len(vec))

    def write_batch(self, batch: Batch) -> None:
        """Write every record of a batch."""
        vectors, mask = batch.vectors, batch.has_vector
        if vectors is not None:
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            rows = vectors if mask is None else vectors[mask]
            if rows.size and not np.isfinite(rows).all():
                bad = [r.id for i, r in enumerate(batch.records) if batch.vector(i) is not None][:1]
                raise FormatError(
                    f"record '{bad[0] if bad else '?'}': vector holds NaN or infinity; refusing to write it"
                )
        d = None if vectors is None else int(vectors.shape[1])
        store = self.source_store
        emit = self._emit
        for i, rec in enumerate(batch.records):
            vec = None if vectors is None or (mask is not None and not mask[i]) else vectors[i]
            emit(encode_record(rec, vec, source_store=store))
            self._account(rec, d if vec is not None else rec.dims)

    def close(self) -> Path:
        """Flush, fsync and rename the file into place, then write the sidecar. Returns the path."""
        if self._closed:
            return self.path
        self._drain()
        if self.compress:
            self._out.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        os.replace(self._tmp, self.path)
        self._fsync_dir()
        self._closed = True
        if self.sidecar:
            stores = [s for s in self._stores if s is not None]
            write_meta(
                self.path,
                {
                    "source_store": self.source_store or (stores[0] if len(stores) == 1 else None),
                    "record_count": self.count,
                    "dims": sorted(self._dims),
                    "models": sorted(m for m in self._models if m is not None),
                    "namespaces": sorted(n for n in self._namespaces if n is not None),
                    "bytes": self._sink.size,
                    "checksum": "blake3:" + self._sink.hasher.hexdigest(),
                    **self.extra_meta,
                },
            )
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; the target is left as it was."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.compress:
                self._out.close()
            self._raw.close()
        finally:
            self._tmp.unlink(missing_ok=True)

    def _fsync_dir(self) -> None:
        try:
            fd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:  # pragma: no cover - platforms without directory fds
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
