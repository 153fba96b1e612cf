"""Duplicate-id detection that scales to tens of millions of records.

Ids are not kept: each is reduced to a 64-bit hash (xxh3) stored with its line number, 16 bytes a
record. Past a threshold the pairs spill to 256 partition files on disk (by the hash's top byte), so
memory stays flat however long the file is. At the end each partition is sorted on its own; equal hashes
are only *candidates*, which the caller confirms by reading those lines' real ids again, so a hash
collision can never produce a false finding.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import xxhash

__all__ = ["DupDetector", "hash_ids"]

_PAIR = np.dtype([("h", "<u8"), ("line", "<i8")])
_PARTS = 256


def hash_ids(ids: list[str]) -> np.ndarray:
    """64-bit hashes of the ids, stable across processes and runs."""
    h = xxhash.xxh3_64_intdigest
    return np.fromiter((h(i.encode("utf-8", "surrogatepass")) for i in ids), dtype=np.uint64, count=len(ids))


class DupDetector:
    """Collects (hash, line) pairs; :meth:`candidates` yields groups of lines whose ids may be equal."""

    def __init__(self, memory_pairs: int = 65_536, tmp_dir: str | None = None) -> None:
        self._memory_pairs = memory_pairs
        self._tmp_dir = tmp_dir
        self._pending: list[np.ndarray] = []
        self._pending_n = 0
        self._spill: Path | None = None
        self.total = 0

    def add(self, hashes: np.ndarray, lines: np.ndarray) -> None:
        if not len(hashes):
            return
        pairs = np.empty(len(hashes), dtype=_PAIR)
        pairs["h"] = hashes
        pairs["line"] = lines
        self._pending.append(pairs)
        self._pending_n += len(pairs)
        self.total += len(pairs)
        if self._pending_n >= self._memory_pairs:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        if self._spill is None:
            self._spill = Path(tempfile.mkdtemp(prefix="vexrun-ids-", dir=self._tmp_dir))
        pairs = np.concatenate(self._pending)
        self._pending, self._pending_n = [], 0
        part = (pairs["h"] >> np.uint64(56)).astype(np.intp)
        order = np.argsort(part, kind="stable")
        pairs, part = pairs[order], part[order]
        bounds = np.searchsorted(part, np.arange(_PARTS + 1))
        for p in range(_PARTS):
            lo, hi = bounds[p], bounds[p + 1]
            if hi > lo:
                with open(self._spill / f"{p:02x}", "ab") as fh:
                    pairs[lo:hi].tofile(fh)

    def _partitions(self) -> Iterator[np.ndarray]:
        if self._spill is None:
            if self._pending:
                yield np.concatenate(self._pending)
            return
        self._flush()
        for p in range(_PARTS):
            path = self._spill / f"{p:02x}"
            if path.exists():
                yield np.fromfile(path, dtype=_PAIR)

    def candidates(self) -> Iterator[np.ndarray]:
        """Groups (arrays of line numbers, ascending) of two or more lines that share an id hash."""
        try:
            for pairs in self._partitions():
                order = np.lexsort((pairs["line"], pairs["h"]))
                h = pairs["h"][order]
                lines = pairs["line"][order]
                same = h[1:] == h[:-1]
                if not same.any():
                    continue
                starts = np.flatnonzero(np.concatenate(([True], ~same)))
                ends = np.concatenate((starts[1:], [len(h)]))
                for s, e in zip(starts, ends, strict=True):
                    if e - s > 1:
                        yield lines[s:e]
        finally:
            self.close()

    def close(self) -> None:
        self._pending, self._pending_n = [], 0
        if self._spill is not None:
            shutil.rmtree(self._spill, ignore_errors=True)
            self._spill = None
