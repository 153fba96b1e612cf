"""The vectors of a local store held in memory, for a store that is searched again and again (an agent's recall).

A single search (``vexrun search``) scans the vectors in chunks, so memory stays flat whatever the store size. A
:class:`~.search.LocalStore` searched a second time loads them once into one float32 matrix (when they fit in
:data:`MAX_BYTES`), and each search is then one matrix-vector product: at 100k × 384 that is ~150 MB held and a
few milliseconds a query instead of reading the whole table again.

The matrix follows the store: before each search it asks SQLite whether another connection committed since
(``PRAGMA data_version``); if so, it drops the records that are gone (their seqs read from an index) and re-reads
the rows whose ``updated_at`` is not older than the newest it holds (upserts, new records): a scan of the table,
paid once per change, not per search. The cosines are computed as the chunked scan computes them (the same
float32 operations, row by row).
"""

from __future__ import annotations

import sqlite3
from typing import Any

import numpy as np

__all__ = ["MAX_BYTES", "VectorCache"]

#: the largest matrix held in memory (larger stores are scanned in chunks on every search)
MAX_BYTES = 512 * 1024 * 1024
_CHUNK = 4096
#: the namespaces, one index seek each (a skip scan), and the vectors of one of them in seq order
_NAMESPACES = (
    "WITH RECURSIVE ns(n) AS (SELECT min(namespace) FROM records UNION ALL "
    "SELECT (SELECT min(namespace) FROM records WHERE namespace > n) FROM ns WHERE n IS NOT NULL) "
    "SELECT n FROM ns WHERE n IS NOT NULL"
)
_HAS_NULL = "SELECT 1 FROM records WHERE namespace IS NULL LIMIT 1"
_BY_NAMESPACE = (
    "SELECT seq, updated_at, vector FROM records WHERE namespace IS ? AND seq > ? AND length(vector) = ? "
    "ORDER BY seq LIMIT ?"
)


class VectorCache:
    """Every vector of ``dims`` values of a store: the records' seqs, their namespaces (as codes), the matrix and
    its norms, row by row, ordered by namespace code then seq."""

    def __init__(self, conn: sqlite3.Connection, dims: int) -> None:
        self.conn = conn
        self.dims = dims
        self.version = -1
        self.stamp = ""
        self.seqs = np.empty(0, dtype=np.int64)
        self.codes = np.empty(0, dtype=np.int32)
        self.mat = np.empty((0, dims), dtype=np.float32)
        self.norms = np.empty(0, dtype=np.float32)
        self.names: dict[str | None, int] = {}

    @staticmethod
    def fits(conn: sqlite3.Connection, dims: int) -> bool:
        rows = int(conn.execute("SELECT count(*) FROM records").fetchone()[0])
        return rows * dims * 4 <= MAX_BYTES

    def _code(self, namespace: str | None) -> int:
        return self.names.setdefault(namespace, len(self.names))

    def _read(self, where: str, params: tuple[Any, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
        """(seqs, namespace codes, matrix, seqs of rows without a vector of ``dims`` values, newest updated_at) of
        the rows ``where`` selects, read in chunks."""
        d = self.dims
        sql = f"SELECT seq, namespace, updated_at, vector FROM records WHERE seq > ? AND {where} ORDER BY seq LIMIT ?"
        seqs: list[np.ndarray] = []
        codes: list[np.ndarray] = []
        mats: list[np.ndarray] = []
        other: list[int] = []
        stamp, after = "", 0
        while True:
            rows = self.conn.execute(sql, (after, *params, _CHUNK)).fetchall()
            if not rows:
                break
            stamp = max(stamp, max(str(r[2]) for r in rows))
            after = int(rows[-1][0])
            full = len(rows) == _CHUNK
            other.extend(r[0] for r in rows if r[3] is None or len(r[3]) != d * 4)
            rows = [r for r in rows if r[3] is not None and len(r[3]) == d * 4]
            if rows:
                seqs.append(np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)))
                codes.append(np.fromiter((self._code(r[1]) for r in rows), dtype=np.int32, count=len(rows)))
                mats.append(np.frombuffer(b"".join(r[3] for r in rows), dtype="<f4").reshape(len(rows), d))
            if not full:
                break
        gone = np.asarray(other, dtype=np.int64)
        if not seqs:
            return np.empty(0, np.int64), np.empty(0, np.int32), np.empty((0, d), np.float32), gone, stamp
        mat = np.concatenate(mats).astype(np.float32, copy=False)
        return np.concatenate(seqs), np.concatenate(codes), mat, gone, stamp

    def _load(self) -> str:
        """Read every vector, namespace by namespace (through the namespace index), straight into one matrix: the
        rows come in the order they are held, so nothing is copied twice. Returns the newest ``updated_at``."""
        d, conn = self.dims, self.conn
        capacity = int(conn.execute("SELECT count(*) FROM records").fetchone()[0])
        mat = np.empty((capacity, d), dtype=np.float32)
        seqs = np.empty(capacity, dtype=np.int64)
        codes = np.empty(capacity, dtype=np.int32)
        self.names = {}
        spaces: list[str | None] = [None] if conn.execute(_HAS_NULL).fetchone() else []
        spaces += [row[0] for row in conn.execute(_NAMESPACES)]
        filled, stamp = 0, ""
        for namespace in spaces:
            code, after = self._code(namespace), 0
            while True:
                rows = conn.execute(_BY_NAMESPACE, (namespace, after, d * 4, _CHUNK)).fetchall()
                if not rows:
                    break
                n = min(len(rows), capacity - filled)  # a record written since the count waits for the refresh
                rows = rows[:n]
                seqs[filled : filled + n] = [r[0] for r in rows]
                codes[filled : filled + n] = code
                mat[filled : filled + n] = np.frombuffer(b"".join(r[2] for r in rows), dtype="<f4").reshape(n, d)
                stamp = max(stamp, max(str(r[1]) for r in rows))
                filled += n
                after = int(rows[-1][0])
                if n < _CHUNK:
                    break
        self._set(seqs[:filled], codes[:filled], mat[:filled])
        return stamp

    def refresh(self) -> None:
        """Bring the matrix up to date with the store (cheap when nothing was committed since the last call)."""
        version = int(self.conn.execute("PRAGMA data_version").fetchone()[0])
        if version == self.version:
            return
        if self.version < 0:
            stamp = self._load()
        else:
            # deleted records: the seqs the store still holds (read from an index, no vector touched)
            sql = "SELECT seq FROM records INDEXED BY records_namespace"
            present = np.fromiter((r[0] for r in self.conn.execute(sql)), dtype=np.int64)
            seqs, codes, mat, other, stamp = self._read("updated_at >= ?", (self.stamp,))
            kept = np.isin(self.seqs, present) & ~np.isin(self.seqs, other)  # gone, or its vector is
            if not kept.all():
                self._set(self.seqs[kept], self.codes[kept], self.mat[kept])
            if len(seqs):
                self._merge(seqs, codes, mat)
        self.stamp = max(self.stamp, stamp)
        self.version = version

    def _set(self, seqs: np.ndarray, codes: np.ndarray, mat: np.ndarray) -> None:
        """Hold these rows, ordered by namespace then seq: a namespace is then one contiguous block of the matrix,
        searched without copying it."""
        order = np.lexsort((seqs, codes))
        if len(order) and not (np.diff(order) == 1).all():
            seqs, codes, mat = seqs[order], codes[order], mat[order]
        self.seqs, self.codes, self.mat = seqs, codes, mat
        self.norms = np.sqrt(np.einsum("ij,ij->i", mat, mat, dtype=np.float32))
        self.norms[self.norms == 0] = np.inf

    def _merge(self, seqs: np.ndarray, codes: np.ndarray, mat: np.ndarray) -> None:
        """Replace the rows of seqs already held (in place when their namespace is the same), add the others."""
        if not len(self.seqs):
            self._set(seqs, codes, mat)
            return
        by_seq = np.argsort(self.seqs, kind="stable")
        sorted_seqs = self.seqs[by_seq]
        pos = np.searchsorted(sorted_seqs, seqs)
        held = (pos < len(sorted_seqs)) & (sorted_seqs[np.minimum(pos, len(sorted_seqs) - 1)] == seqs)
        at = by_seq[pos[held]]
        if held.all() and (self.codes[at] == codes).all():
            self.mat[at] = mat
            norms = np.sqrt(np.einsum("ij,ij->i", mat, mat, dtype=np.float32))
            norms[norms == 0] = np.inf
            self.norms[at] = norms
            return
        keep = np.ones(len(self.seqs), dtype=bool)
        keep[at] = False
        self._set(
            np.concatenate((self.seqs[keep], seqs)),
            np.concatenate((self.codes[keep], codes)),
            np.concatenate((self.mat[keep], mat)),
        )

    def top(self, q: np.ndarray, limit: int, namespace: str | None) -> list[tuple[int, float]]:
        """The ``limit`` best (seq, cosine) for the unit query ``q``; ties go to the older record."""
        lo, hi = 0, len(self.seqs)
        if namespace is not None:
            code = self.names.get(namespace)
            if code is None:
                return []
            lo, hi = (int(i) for i in np.searchsorted(self.codes, [code, code + 1]))
        if lo == hi:
            return []
        seqs = self.seqs[lo:hi]
        sims = ((self.mat[lo:hi] @ q) / self.norms[lo:hi]).astype(np.float32)
        idx = np.flatnonzero(np.isfinite(sims))  # a stored NaN or inf never ranks
        if len(idx) > limit:
            idx = idx[np.argpartition(-sims[idx], limit - 1)[:limit]]
        order = np.lexsort((seqs[idx], -sims[idx]))
        return [(int(seqs[i]), float(sims[i])) for i in idx[order]]
