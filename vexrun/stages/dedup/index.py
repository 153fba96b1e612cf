"""A growing cosine index of one namespace's facts, for "is there a fact at least this alike?".

Vectors are unit-normalised and stored as int8 codes with one float32 scale per vector (a quarter of the
memory of float32: 1M × 384-d is 388 MB; a cosine error around 3e-4 — a few 1e-3 for a vector with one
outlier dimension —, far below any useful threshold; and
widened back to float32 by one fast cast), and appended to a file so the index survives a restart. Up to
``ann_above`` vectors a search is exact (blocked matrix products over all of them). Past it the index becomes
an inverted file (IVF): spherical k-means cells (k = 4·√n, at most 4,096), each query searching its ``nprobe``
nearest cells; every cell is searched with one matrix product for all the queries that probe it, on two
threads with single-threaded BLAS (threadpoolctl, when installed), so no Python loop runs per pair or per
vector. When the index has grown 8-fold since the cells were made, they are made again. Searches are exact
within the probed cells; the recall of the IVF (near-duplicates found / all) is measured by
``bench/bench_dedup.py``.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CosineIndex", "decode", "encode", "normalise"]

_BLOCK = 16_384  # rows per block of an exact search
_LOAD_ROWS = 65_536  # vectors read at once when the index is rebuilt from its file
_RETRAIN = 8  # the cells are rebuilt when the index has grown this many times since
_MAX_CELLS = 4096
_SAMPLE_PER_CELL = 40
_KMEANS_ITERS = 8


def normalise(vectors: np.ndarray) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: np.ndarray = v / norms
    return out


def encode(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 rows → (int8 codes, float32 scale per row), the scale mapping each row's largest value to 127."""
    x = np.asarray(x, dtype=np.float32)
    scales = np.abs(x).max(axis=1) / 127.0
    scales[scales == 0] = 1.0
    codes = np.rint(x / scales[:, None]).astype(np.int8)
    return codes, scales.astype(np.float32)


def decode(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """(int8 codes, scales) → float32 rows."""
    out: np.ndarray = codes.astype(np.float32) * scales[:, None]
    return out


@contextlib.contextmanager
def _single_blas() -> Iterator[bool]:
    """One BLAS thread per call (we run two calls at once), when threadpoolctl can say so."""
    try:
        threadpoolctl: Any = importlib.import_module("threadpoolctl")
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn; without it, run serially
        yield False
        return
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        yield True


class _Grow:
    """An append-only 2-d array that grows by half of itself (so at most a third of it is slack)."""

    def __init__(self, cols: int, dtype: Any, cap: int = 16) -> None:
        self.data = np.empty((cap, cols) if cols else (cap,), dtype=dtype)
        self.n = 0

    def extend(self, rows: np.ndarray) -> None:
        need = self.n + len(rows)
        if need > len(self.data):
            cap = max(need, len(self.data) + len(self.data) // 2 + 16)
            grown = np.empty((cap, *self.data.shape[1:]), dtype=self.data.dtype)
            grown[: self.n] = self.data[: self.n]
            self.data = grown
        self.data[self.n : need] = rows
        self.n = need

    def view(self) -> np.ndarray:
        return self.data[: self.n]


def _kmeans(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Spherical k-means (cosine): ``k`` unit centroids of the unit rows ``x``."""
    rng = np.random.default_rng(seed)
    centroids = x[rng.choice(len(x), size=k, replace=False)].astype(np.float32)
    for _ in range(_KMEANS_ITERS):
        assign = _nearest(x, centroids)
        order = np.argsort(assign, kind="stable")
        present, starts = np.unique(assign[order], return_index=True)
        sums = np.zeros_like(centroids)
        sums[present] = np.add.reduceat(x[order], starts, axis=0)
        empty = np.ones(k, dtype=bool)
        empty[present] = False
        if empty.any():  # re-seed empty cells with random points
            sums[empty] = x[rng.choice(len(x), size=int(empty.sum()), replace=False)]
        centroids = normalise(sums)
    return centroids


def _nearest(x: np.ndarray, centroids: np.ndarray, block: int = 8192) -> np.ndarray:
    """The nearest centroid of each float32 row."""
    out = np.empty(len(x), dtype=np.int32)
    for a in range(0, len(x), block):
        out[a : a + block] = np.argmax(x[a : a + block] @ centroids.T, axis=1)
    return out


class _Cell:
    """Vectors as int8 codes and scales, and their row numbers."""

    def __init__(self, dims: int, cap: int = 0) -> None:
        self.codes = _Grow(dims, np.int8, cap)
        self.scales = _Grow(0, np.float32, cap)
        self.rows = _Grow(0, np.int64, cap)

    @property
    def n(self) -> int:
        return self.codes.n

    def extend(self, codes: np.ndarray, scales: np.ndarray, rows: np.ndarray) -> None:
        self.codes.extend(codes)
        self.scales.extend(scales)
        self.rows.extend(rows)

    def vectors(self) -> np.ndarray:
        return decode(self.codes.view(), self.scales.view())


class CosineIndex:
    """The vectors of one namespace, each with its owner (the row of the fact it stands for: a fact may own
    several vectors, its own and those of the near-duplicates merged into it). ``add`` appends, ``search``
    finds each query's most similar vector and returns its owner. ``path`` is the file the vectors are appended
    to (``dims`` code bytes, a float32 scale and an int64 owner per vector)."""

    def __init__(self, dims: int, path: Path, *, ann_above: int = 20_000, nprobe: int = 8, seed: int = 0) -> None:
        self.dims = dims
        self.path = path
        self.ann_above = ann_above
        self.nprobe = nprobe
        self.seed = seed
        self.n = 0
        self.record = dims + 12
        self._flat: _Cell | None = _Cell(dims, 16)
        self.centroids: np.ndarray | None = None
        self.trained_at = 0
        self._cells: list[_Cell] = []
        self._file: Any = None
        #: vector comparisons the last search made (for tests and benchmarks: far below n × queries past ann_above)
        self.last_compared = 0
        #: each query's nearest cell in the last search (reused by ``add`` for the same vectors)
        self.last_nearest: np.ndarray | None = None
        self._nearest_at = -1

    # --- persistence ------------------------------------------------------------------------------------------

    def centroids_path(self, trained_at: int) -> Path:
        return self.path.with_name(f"{self.path.name}.cells-{trained_at}.npy")

    def load(self, rows: int, trained_at: int) -> None:
        """Rebuild from the file's first ``rows`` vectors (cutting off any written after them) and the cells
        made when the index held ``trained_at`` vectors (0: none)."""
        self.close()
        have = os.path.getsize(self.path) // self.record if self.path.exists() else 0
        if have < rows:
            raise ValueError(f"{self.path} holds {have} vectors, the checkpoint says {rows}")
        if self.path.exists():
            with open(self.path, "r+b") as f:
                f.truncate(rows * self.record)
        self.n = 0
        self._flat = _Cell(self.dims, 16)
        self.centroids, self.trained_at, self._cells = None, 0, []
        if trained_at and rows >= trained_at:
            self._set_cells(np.load(self.centroids_path(trained_at)), trained_at)
        d = self.dims
        for a in range(0, rows, _LOAD_ROWS):
            count = min(_LOAD_ROWS, rows - a)
            raw = np.fromfile(self.path, dtype=np.uint8, count=count * self.record, offset=a * self.record)
            raw = raw.reshape(count, self.record)
            codes = np.ascontiguousarray(raw[:, :d]).view(np.int8)
            scales = np.ascontiguousarray(raw[:, d : d + 4]).view("<f4").reshape(count).astype(np.float32)
            owners = np.ascontiguousarray(raw[:, d + 4 :]).view("<i8").reshape(count).astype(np.int64)
            self._put(codes, scales, owners, None)
        self.n = rows

    def sync(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    # --- adding -----------------------------------------------------------------------------------------------

    def add(self, vectors: np.ndarray, owners: np.ndarray, nearest: np.ndarray | None = None) -> None:
        """Append unit vectors owned by ``owners`` (fact rows). ``nearest``: each vector's nearest cell when the
        caller knows it from :attr:`last_nearest` (-1 where it does not). May (re)build the cells."""
        v = np.asarray(vectors, dtype=np.float32)
        owners = np.asarray(owners, dtype=np.int64)
        codes, scales = encode(v)
        if self._file is None:
            self._file = open(self.path, "ab")  # noqa: SIM115 - kept open across batches, closed in close()
        rec = np.empty((len(v), self.record), dtype=np.uint8)
        rec[:, : self.dims] = codes.view(np.uint8)
        rec[:, self.dims : self.dims + 4] = scales.astype("<f4").view(np.uint8).reshape(len(v), 4)
        rec[:, self.dims + 4 :] = owners.astype("<i8").view(np.uint8).reshape(len(v), 8)
        self._file.write(rec.tobytes())
        if self.centroids is not None:
            if nearest is None or self._nearest_at != self.trained_at:
                nearest = _nearest(v, self.centroids)
            elif (nearest < 0).any():
                nearest = nearest.copy()
                missing = nearest < 0
                nearest[missing] = _nearest(v[missing], self.centroids)
        self._put(codes, scales, owners, nearest)
        self.n += len(v)
        if self.centroids is None and self.n >= self.ann_above:
            self._train()
        elif self.centroids is not None and self.n >= _RETRAIN * self.trained_at:
            self._train()

    def _put(self, codes: np.ndarray, scales: np.ndarray, rows: np.ndarray, nearest: np.ndarray | None) -> None:
        if self.centroids is None:
            assert self._flat is not None
            self._flat.extend(codes, scales, rows)
            return
        if nearest is None:
            nearest = _nearest(decode(codes, scales), self.centroids)
        order = np.argsort(nearest, kind="stable")
        sorted_cells = nearest[order]
        starts = np.flatnonzero(np.r_[True, sorted_cells[1:] != sorted_cells[:-1]])
        ends = np.r_[starts[1:], len(order)]
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            idx = order[a:b]
            self._cells[int(sorted_cells[a])].extend(codes[idx], scales[idx], rows[idx])

    def _sample(self, take: int, rng: np.random.Generator) -> np.ndarray:
        """About ``take`` vectors picked at random, as float32."""
        if self.centroids is None:
            assert self._flat is not None
            pick = np.sort(rng.choice(self.n, size=take, replace=False))
            return decode(self._flat.codes.view()[pick], self._flat.scales.view()[pick])
        frac = take / self.n
        parts = []
        for c in self._cells:
            if c.n:
                keep = rng.random(c.n) < frac
                parts.append(decode(c.codes.view()[keep], c.scales.view()[keep]))
        return np.concatenate(parts)

    def _train(self) -> None:
        """Make the cells (again): k-means on a sample, then every vector moved to its new cell, one old cell
        at a time (so the index never holds two copies of its vectors)."""
        k = min(_MAX_CELLS, max(16, int(4 * math.sqrt(self.n))))
        rng = np.random.default_rng(self.seed + self.n)
        sample = self._sample(min(self.n, k * _SAMPLE_PER_CELL), rng)
        k = min(k, len(sample))
        centroids = _kmeans(sample, k, self.seed + self.n)
        del sample
        np.save(self.centroids_path(self.n), centroids)
        old: list[_Cell | None] = [self._flat] if self._flat is not None else list(self._cells)
        self._set_cells(centroids, self.n)
        for i, cell in enumerate(old):
            if cell is not None and cell.n:
                self._put(cell.codes.view(), cell.scales.view(), cell.rows.view(), None)
            old[i] = None  # free it now

    def _set_cells(self, centroids: np.ndarray, trained_at: int) -> None:
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        self.trained_at = trained_at
        self._cells = [_Cell(self.dims) for _ in range(len(centroids))]
        self._flat = None

    # --- searching --------------------------------------------------------------------------------------------

    def search(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each unit query: the owner of the most similar vector (-1 when the index is empty) and the
        cosine."""
        q = np.asarray(queries, dtype=np.float32)
        best = np.full(len(q), -np.inf, dtype=np.float32)
        rows = np.full(len(q), -1, dtype=np.int64)
        self.last_compared = 0
        self.last_nearest = None
        if self.n == 0 or len(q) == 0:
            return rows, best
        if self.centroids is None:
            assert self._flat is not None
            self.last_compared = self.n * len(q)
            flat = self._flat
            for a in range(0, self.n, _BLOCK):
                block = decode(flat.codes.view()[a : a + _BLOCK], flat.scales.view()[a : a + _BLOCK])
                sims = q @ block.T
                j = np.argmax(sims, axis=1)
                s = sims[np.arange(len(q)), j]
                better = s > best
                best[better] = s[better]
                rows[better] = flat.rows.view()[a + j[better]]
            return rows, best
        return self._search_cells(q, rows, best)

    def _search_cells(self, q: np.ndarray, rows: np.ndarray, best: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert self.centroids is not None
        k = len(self.centroids)
        nprobe = min(self.nprobe, k)
        near = q @ self.centroids.T
        self.last_nearest = np.argmax(near, axis=1)
        self._nearest_at = self.trained_at
        if nprobe < k:
            probe = np.argpartition(near, k - nprobe, axis=1)[:, k - nprobe :]
        else:
            probe = np.tile(np.arange(k), (len(q), 1))
        flat_cells = probe.ravel()
        flat_queries = np.repeat(np.arange(len(q)), nprobe)
        order = np.argsort(flat_cells, kind="stable")
        cells_sorted = flat_cells[order]
        starts = np.flatnonzero(np.r_[True, cells_sorted[1:] != cells_sorted[:-1]])
        ends = np.r_[starts[1:], len(order)]
        groups = [
            (int(cells_sorted[a]), flat_queries[order[a:b]])
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
            if self._cells[int(cells_sorted[a])].n
        ]

        def work(part: list[tuple[int, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
            out = []
            for c, qi in part:
                cell = self._cells[c]
                sims = (q[qi] @ cell.codes.view().astype(np.float32).T) * cell.scales.view()
                j = np.argmax(sims, axis=1)
                out.append((qi, cell.rows.view()[j], sims[np.arange(len(qi)), j]))
            return out

        with _single_blas() as single:
            if single and len(groups) > 8:
                halves = [groups[0::2], groups[1::2]]
                with ThreadPoolExecutor(max_workers=2) as pool:
                    parts = [r for rs in pool.map(work, halves) for r in rs]
            else:
                parts = work(groups)
        self.last_compared = sum(len(qi) * self._cells[c].n for c, qi in groups)
        for qi, r, s in parts:
            better = s > best[qi]
            best[qi[better]] = s[better]
            rows[qi[better]] = r[better]
        return rows, best

    def stats(self) -> dict[str, Any]:
        sizes = [c.n for c in self._cells]
        return {
            "vectors": self.n,
            "mode": "flat" if self.centroids is None else "ivf",
            "cells": len(sizes),
            "largest_cell": max(sizes) if sizes else 0,
            "trained_at": self.trained_at,
        }
