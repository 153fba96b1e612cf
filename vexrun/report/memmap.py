"""The map of the memories: a seeded sample of records with vectors, projected to two dimensions.

The projection is PCA through a seeded randomised SVD (numpy; each axis's sign fixed so that its largest
loading is positive), of at most :data:`MAX_POINTS` records: a page shows a sample, never every point, so its size and
the time to make it do not grow with the target.

Where the sample comes from:

* a run's target: the run's ledger (``ledger.sqlite``, :mod:`vexrun.verify.ledger`) holds every id the run
  wrote with a seeded 64-bit hash; the ids with the smallest hashes are a uniform seeded sample, read back from
  the target with ``Sink.fetch`` (the memories as the target now holds them). A target that cannot read back
  falls back to the records the ledger kept itself (``run.verify: sample`` or ``full``).
* a ``.vmig.jsonl`` file: ``k`` line numbers drawn with a seeded generator, parsed in one pass that decodes
  only those lines; a large uncompressed file is sampled by seeking to seeded byte offsets instead (the line
  after each offset: nearly uniform, as a line's chance follows the length of the line before it).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ..vmig.model import Record
from .page import clean_text

__all__ = ["MAX_POINTS", "ledger_sample", "map_data", "project", "sample_file"]

MAX_POINTS = 2000
#: an uncompressed file larger than this is sampled by seeking, not read through
SEEK_BYTES = 64 * 1024 * 1024

Item = tuple[Record, "np.ndarray | None"]


def project(vectors: np.ndarray, *, seed: int = 0) -> tuple[np.ndarray, list[float]]:
    """The rows of ``vectors`` on their first two principal axes, and the share of the variance each explains.

    A seeded randomised SVD (Halko, Martinsson and Tropp): the centred rows are multiplied by a seeded Gaussian
    block, refined by a few power iterations, and the small matrix that results goes through
    ``numpy.linalg.svd``. For two axes of 2,000 rows this is as exact as a full SVD, and costs milliseconds
    at any dimension (a full SVD of 2,000 x 1,536 takes seconds). Fewer than two usable axes leave zeros."""
    with _one_blas_thread():
        return _project(np.asarray(vectors, dtype=np.float64), seed)


def _one_blas_thread() -> AbstractContextManager[object]:
    """Small products run fastest on one BLAS thread: on a busy machine, a pool of threads per product costs
    seconds (threadpoolctl, when it is installed, sets the limit; else the BLAS's own setting stays)."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        return nullcontext()
    limits: AbstractContextManager[object] = threadpool_limits(limits=1, user_api="blas")
    return limits


def _project(x: np.ndarray, seed: int) -> tuple[np.ndarray, list[float]]:
    out = np.zeros((x.shape[0], 2))
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] == 0:
        return out, [0.0, 0.0]
    xc = x - x.mean(axis=0)
    total = float(np.einsum("ij,ij->", xc, xc))
    if total <= 0:
        return out, [0.0, 0.0]
    n, d = xc.shape
    width = min(n, d, 12)
    block = xc @ np.random.default_rng(seed).standard_normal((d, width))
    for _ in range(6):  # power iterations: the top axes stand out even when the spectrum is flat
        block, _ = np.linalg.qr(block)
        block = xc @ (xc.T @ block)
    q, _ = np.linalg.qr(block)
    _, s, vt = np.linalg.svd(q.T @ xc, full_matrices=False)
    axes = min(2, vt.shape[0])
    for a in range(axes):
        if vt[a, np.argmax(np.abs(vt[a]))] < 0:
            vt[a] = -vt[a]
    out[:, :axes] = xc @ vt[:axes].T
    explained = [float(s[a] ** 2 / total) if a < axes else 0.0 for a in range(2)]
    return out, explained


def _scaled(coords: np.ndarray) -> tuple[list[int], list[int]]:
    """Each axis to integers 0..1000 (compact in the page; the script scales them to the drawing)."""
    cols = []
    for a in range(2):
        c = coords[:, a]
        lo, hi = float(c.min()), float(c.max())
        span = hi - lo
        scaled = np.full(c.shape, 500.0) if span <= 0 else (c - lo) * (1000.0 / span)
        cols.append(np.rint(scaled).astype(int).tolist())
    return cols[0], cols[1]


def map_data(items: Sequence[Item], *, source: str, total: int | None, text_chars: int = 300) -> dict[str, Any]:
    """The page's map section for ``items`` (records without a vector, and vectors of another dimension than the
    most common one, are left out and counted)."""
    with_vec = [(r, v) for r, v in items if v is not None and len(v)]
    dims = Counter(len(v) for _, v in with_vec)
    if not with_vec:
        return {"note": f"no map: none of the {len(items):,} sampled records of {source} has a vector"}
    d = dims.most_common(1)[0][0]
    kept = [(r, v) for r, v in with_vec if len(v) == d]
    coords, explained = project(np.stack([np.asarray(v, dtype=np.float32) for _, v in kept]))
    xs, ys = _scaled(coords)
    names = sorted({r.namespace or "" for r, _ in kept})
    index = {name: i for i, name in enumerate(names)}
    ns = [index[r.namespace or ""] for r, _ in kept]
    per = Counter(ns)
    held = f"{total:,}" if total is not None else "?"
    note = (
        f"{len(kept):,} of {held} memories in {source}, a seeded sample, projected on their first two principal "
        f"axes ({100 * explained[0]:.1f}% and {100 * explained[1]:.1f}% of the variance of {d}-d vectors). "
        "Hover a point for its text, click to pin it; click a namespace to hide it."
    )
    left = len(items) - len(kept)
    if left:
        note += f" {left:,} sampled record(s) without a {d}-d vector are not drawn."
    return {
        "note": note,
        "source": source,
        "total": total,
        "dims": d,
        "explained": explained,
        "namespaces": names,
        "counts": [per.get(i, 0) for i in range(len(names))],
        "x": xs,
        "y": ys,
        "n": ns,
        "id": [clean_text(r.id, 120) for r, _ in kept],
        "t": [clean_text(r.text, text_chars) for r, _ in kept],
    }


# -- a run's target, through its ledger ------------------------------------------------------------------------


def ledger_sample(path: Path, sink: str, k: int) -> tuple[list[tuple[str, str]], int, list[Item]]:
    """From the ledger at ``path`` (read-only): the ``k`` ids of ``sink`` with the smallest seeded hashes, as
    (id, namespace); how many ids the run wrote there; and the records the ledger kept among those ids."""
    from ..verify.ledger import Ledger

    ledger = Ledger.reader(path)
    try:
        total = ledger.total(sink)
        # the kept records are those with the smallest hashes: when there are enough, they are the sample
        kept = ledger.sample(sink, k)
        if len(kept) >= min(k, total):
            ids = [(rec.id, rec.namespace or "") for rec, _ in kept]
        else:
            ids = ledger.smallest(sink, k)
    finally:
        ledger.close()
    return ids, total, kept


# -- a .vmig.jsonl file ---------------------------------------------------------------------------------------


def _parse(line: bytes) -> Item | None:
    from ..vmig.reader import record_from_object

    try:
        obj = orjson.loads(line)
        if not isinstance(obj, dict):
            return None
        rec, vec = record_from_object(obj)
    except Exception:  # noqa: BLE001 - an invalid line is not drawn (`vexrun validate` names it)
        return None
    return rec, None if vec is None else np.asarray(vec, dtype=np.float32)


def _by_lines(path: Path, lines: int, records: int, k: int, seed: int) -> list[Item]:
    """``k`` records at seeded line numbers: as many more lines are drawn as there are lines that are not
    records, and the records first in the draw's order are kept, so invalid lines do not thin the sample."""
    from ..vmig.io import iter_lines, open_data

    rng = np.random.default_rng(seed)
    draw = min(lines, k + max(0, lines - records))
    order = (rng.choice(lines, size=draw, replace=False) + 1).tolist() if lines > 0 else []
    rank = {no: i for i, no in enumerate(order)}
    found: list[tuple[int, Item]] = []
    with open_data(path) as fh:
        for no, raw in enumerate(iter_lines(fh), start=1):
            at = rank.get(no)
            if at is not None and raw and (item := _parse(raw)) is not None:
                found.append((at, item))
                if len(found) == len(rank):
                    break
    found.sort(key=lambda x: x[0])
    return [item for _, item in found[:k]]


def _by_offsets(path: Path, size: int, k: int, seed: int) -> list[Item]:
    rng = np.random.default_rng(seed)
    offsets = np.sort(rng.integers(0, size, size=k))
    seen: set[int] = set()
    out: list[Item] = []
    with open(path, "rb") as fh:
        for off in offsets.tolist():
            fh.seek(off)
            if off:
                fh.readline()  # the rest of the line the offset fell in
            start = fh.tell()
            if start in seen:
                continue
            seen.add(start)
            raw = fh.readline()
            if raw and (item := _parse(raw)) is not None:
                out.append(item)
    return out


def sample_file(
    path: str | os.PathLike[str], *, lines: int, records: int | None = None, k: int = MAX_POINTS, seed: int = 0
) -> list[Item]:
    """``k`` records (or all, if fewer; about ``k`` for a large file sampled by seeking) of a ``.vmig.jsonl(.gz)``
    file of ``lines`` lines holding ``records`` records, drawn with ``seed``."""
    from ..vmig.io import is_gzip

    p = Path(path)
    size = p.stat().st_size
    if k <= 0:
        return []
    if size > SEEK_BYTES and not is_gzip(p):
        return _by_offsets(p, size, k, seed)
    return _by_lines(p, lines, lines if records is None else records, k, seed)
