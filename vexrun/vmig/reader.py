"""Streaming reader: ``.vmig.jsonl`` / ``.vmig.jsonl.gz`` → batches with a float32 vector matrix.

Memory is bounded by the batch (``batch_size`` records or ``max_batch_bytes`` of lines), whatever the
file size. A line that breaks a SPEC rule is not a record: it comes back in ``batch.rejects`` with its
findings and raw bytes, so a caller can write it to a rejects file and go on. Warnings (an unknown
field, a missing ``vex_version``) keep the record and come back in ``batch.warnings``.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from typing import Any

import numpy as np

from ..errors import FormatError
from .batch import Batch, Reject
from .checks import Checker
from .findings import Finding, make
from .io import DECOMPRESS_ERRORS, DEFAULT_MAX_LINE_BYTES, check_readable, iter_lines, open_data
from .model import FIELDS, Record

__all__ = ["read_batches", "read_range", "record_from_object"]

_BOM = b"\xef\xbb\xbf"
_KNOWN = frozenset(FIELDS)


def record_from_object(obj: dict[str, Any]) -> tuple[Record, list[float] | None]:
    """A Record (unknown fields kept in ``extra``) and its vector from a parsed, valid line."""
    extra = {k: v for k, v in obj.items() if k not in _KNOWN} or None
    vec = obj.get("vector")
    rec = Record(
        id=obj["id"],
        text=obj.get("text"),
        model=obj.get("model"),
        dims=len(vec) if vec is not None else obj.get("dims"),
        namespace=obj.get("namespace"),
        metadata=obj.get("metadata"),
        created_at=obj.get("created_at"),
        source_store=obj.get("source_store"),
        modality=obj.get("modality"),
        score=obj.get("score"),
        vex_version=obj.get("vex_version"),
        extra=extra,
    )
    return rec, vec


class _Builder:
    """Collects one batch. Vectors are turned into float32 every ``_CHUNK`` records, so the Python float
    lists of at most that many records are alive at once, whatever the batch size."""

    _CHUNK = 256

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.lines: list[int] = []
        self.rejects: list[Reject] = []
        self.warnings: list[Finding] = []
        self.dims: int | None = None
        self.nbytes = 0
        self.chunks: list[np.ndarray] = []
        self.vec_rows: list[int] = []
        #: vectors as float lists or float64 buffers, and how many are lists
        self.pending: list[Any] = []
        self.pending_lists = 0
        self.pending_rows: list[int] = []
        self.pending_raws: list[bytes] = []
        #: row → raw line of records whose vector does not fit float32
        self.overflow: dict[int, bytes] = {}

    def __len__(self) -> int:
        return len(self.records)

    def add(self, rec: Record, vec: Any, lineno: int, raw: bytes, n: int | None = None) -> None:
        """``vec``: a list of floats, or (with its length ``n``) a buffer of float64 from :meth:`Checker.vector`."""
        if vec is not None:
            if isinstance(vec, list):
                n = len(vec)
                self.pending_lists += 1
            self.pending.append(vec)
            self.pending_rows.append(len(self.records))
            self.pending_raws.append(raw)
            self.dims = n
            if len(self.pending) >= self._CHUNK:
                self._convert()
        self.records.append(rec)
        self.lines.append(lineno)
        self.nbytes += len(raw)

    def _convert(self) -> None:
        if not self.pending:
            return
        # Vectors come as simdjson's float64 buffers, or as float lists (which convert fastest to float64);
        # astype then rounds each value to the nearest float32, exactly as a direct conversion would.
        pending = self.pending
        if not self.pending_lists:
            rows64 = np.frombuffer(b"".join(pending), dtype=np.float64).reshape(len(pending), -1)
        elif self.pending_lists == len(pending):
            rows64 = np.array(pending, dtype=np.float64)
        else:
            rows64 = np.array(
                [v if isinstance(v, list) else np.frombuffer(v, dtype=np.float64) for v in pending], dtype=np.float64
            )
        with np.errstate(over="ignore"):
            rows = rows64.astype(np.float32)
        with np.errstate(over="ignore", invalid="ignore"):
            finite = np.isfinite(rows).all(axis=1)
        if not finite.all():
            for j in np.flatnonzero(~finite).tolist():
                self.overflow[self.pending_rows[j]] = self.pending_raws[j]
        self.chunks.append(rows)
        self.vec_rows.extend(self.pending_rows)
        self.pending, self.pending_rows, self.pending_raws = [], [], []
        self.pending_lists = 0

    def build(self, cursor: tuple[int, int]) -> Batch:
        self._convert()
        n = len(self.records)
        batch = Batch(records=self.records, lines=self.lines, rejects=self.rejects, warnings=self.warnings)
        batch.cursor = cursor
        if not self.chunks or self.dims is None:
            return batch
        rows = self.chunks[0] if len(self.chunks) == 1 else np.concatenate(self.chunks)
        if len(self.vec_rows) == n:
            mat = rows
            mask = np.ones(n, dtype=bool)
        else:
            mat = np.zeros((n, self.dims), dtype=np.float32)
            mat[self.vec_rows] = rows
            mask = np.zeros(n, dtype=bool)
            mask[self.vec_rows] = True
        if self.overflow:
            # Finite in the file but out of float32's range: reject, never write it wrongly.
            for i, raw in sorted(self.overflow.items()):
                rec = self.records[i]
                msg = "vector holds a value outside the float32 range (|x| > 3.4e38)"
                batch.rejects.append(Reject(self.lines[i], [make(self.lines[i], "non-finite", msg, rec.id)], raw))
            keep = np.ones(n, dtype=bool)
            keep[list(self.overflow)] = False
            flags = keep.tolist()
            batch.records = [r for r, k in zip(self.records, flags, strict=True) if k]
            batch.lines = [ln for ln, k in zip(self.lines, flags, strict=True) if k]
            mat, mask = mat[keep], mask[keep]
            batch.rejects.sort(key=lambda r: r.line)
        batch.vectors, batch.has_vector = mat, mask
        return batch


def read_batches(
    path: str | os.PathLike[str],
    *,
    batch_size: int = 1000,
    max_batch_bytes: int = 64 * 1024 * 1024,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    start: tuple[int, int] = (0, 0),
) -> Iterator[Batch]:
    """Yield batches of records from a ``.vmig.jsonl`` file. ``start`` is a ``batch.cursor`` from an
    earlier read: reading resumes right after that batch. A batch is cut early when the vector dimension
    changes, so every batch's matrix has one dimension."""
    yield from read_range(
        path, batch_size=batch_size, max_batch_bytes=max_batch_bytes, max_line_bytes=max_line_bytes, start=start
    )


def read_range(
    path: str | os.PathLike[str],
    *,
    batch_size: int = 1000,
    max_batch_bytes: int = 64 * 1024 * 1024,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    start: tuple[int, int] = (0, 0),
    end: int | None = None,
) -> Generator[Batch, None, int]:
    """:func:`read_batches` of the lines from byte ``start[0]`` up to byte ``end`` (a line boundary; None:
    the end of the file), numbering lines from ``start[1]``. Returns the number of the last line read."""
    p = check_readable(path)
    checker = Checker()
    decode = checker.decode
    decode_raw = checker.decode_raw
    vector_of = checker.vector
    split = checker.split
    check_fast = checker.check_fast
    offset, lineno = start
    fh = open_data(p)
    try:
        if offset:
            fh.seek(offset)
        b = _Builder()
        limit = None if end is None else max(0, end - offset)
        for raw in iter_lines(fh, limit=limit, max_line_bytes=max_line_bytes):
            lineno += 1
            if not raw:
                msg = f"line is longer than {max_line_bytes:,} bytes; skipped"
                b.rejects.append(Reject(lineno, [make(lineno, "line-too-long", msg)], b""))
                continue
            rec: Record
            vec: Any
            n: int | None
            try:
                hit = split(raw)
                if hit is not None:
                    w, vec, n = hit
                else:
                    w = decode_raw(raw)
                    got = vector_of(w.vector)
                    if got is None:  # a vector the fast path cannot vouch for: the reference decoder's verdict
                        w = decode(raw)
                        vec = w.vector
                        n = None if vec is None else len(vec)
                    else:
                        vec, n = got
            except ValueError:  # msgspec.DecodeError, or UnicodeDecodeError on bad UTF-8
                stripped = raw.strip()
                if not stripped or stripped.startswith(b"#"):
                    continue
                at_start = offset == 0 and lineno == start[1] + 1  # a BOM may only open the file
                line = raw[len(_BOM) :] if at_start and raw.startswith(_BOM) else raw
                obj, found = checker.diagnose(line, lineno, at_eof=True)
                if obj is None or any(f.severity == "error" for f in found):
                    b.rejects.append(Reject(lineno, found, raw))
                    continue
                b.warnings.extend(found)
                rec, vec = record_from_object(obj)
                n = None if vec is None else len(vec)
            else:
                fs = check_fast(w, lineno, n)
                if fs is not None:
                    if any(f.severity == "error" for f in fs):
                        b.rejects.append(Reject(lineno, fs, raw))
                        continue
                    b.warnings.extend(fs)
                rec = Record(
                    id=w.id,
                    text=w.text,
                    model=w.model,
                    dims=n if vec is not None else w.dims,
                    namespace=w.namespace,
                    metadata=w.metadata,
                    created_at=w.created_at,
                    source_store=w.source_store,
                    modality=w.modality,
                    score=w.score,
                    vex_version=w.vex_version,
                )
            if vec is not None and b.dims is not None and n != b.dims and len(b):
                yield b.build((fh.tell() - len(raw), lineno - 1))
                b = _Builder()
            b.add(rec, vec, lineno, raw, n)
            if len(b) >= batch_size or b.nbytes >= max_batch_bytes:
                yield b.build((fh.tell(), lineno))
                b = _Builder()
        if len(b) or b.rejects or b.warnings:
            yield b.build((fh.tell(), lineno))
        return lineno
    except DECOMPRESS_ERRORS as exc:
        raise FormatError(
            f"the gzip stream is corrupt or truncated ({exc}); the records before this line were read",
            location=f"{path}:{lineno + 1}",
        ) from None
    finally:
        fh.close()
