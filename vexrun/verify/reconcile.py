"""After a run: does each target hold what the run wrote? (``run.verify: sample|count|full|off``)

- ``count``: per namespace, the distinct ids the run wrote against what the target now holds there (a target
  may hold more: records of other runs are not the run's business, and are reported, not refused);
- ``sample`` (the default): the counts, then a seeded sample of ``run.verify_sample`` records or 1% (whichever
  is more) read back by id and compared with what was written (:func:`vexrun.verify.diff.differs`);
- ``full``: the counts and every record read back and compared.

When a namespace holds fewer records than the run wrote there, the run's ids of that namespace are looked up to
name the missing ones (``full`` has read every id back already). ``full`` reads a store that keeps the order of
its writes (:meth:`Sink.scan`) in one pass, and others by id. A target whose connector cannot read back (a file
of another format, a store without ``fetch``/``count``) is reported as not verified, which is not an error.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..connectors.encoding import from_store
from .diff import Diff, read_back
from .digest import NO_VECTOR, content_digests, content_matches, vector_sums
from .ledger import DigestChunk, Ledger, sample_size

if TYPE_CHECKING:
    from ..connectors.base import Capabilities, Sink
    from ..vmig.batch import Batch
    from ..vmig.model import Record

__all__ = ["Reconciled", "reconcile"]

_CHUNK = 1000


@dataclass
class Reconciled:
    target: str
    mode: str
    verified: bool = True
    note: str | None = None
    expected: dict[str, int] = field(default_factory=dict)
    held: dict[str, int] = field(default_factory=dict)
    diff: Diff = field(default_factory=Diff)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.diff.ok

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"mode": self.mode, "verified": self.verified, "seconds": round(self.seconds, 3)}
        if self.note:
            doc["note"] = self.note
        if self.verified:
            doc.update(expected=self.expected, held=self.held, **self.diff.to_json())
        return doc

    def headline(self) -> str:
        if not self.verified:
            return f"{self.target}: not verified ({self.note})"
        total = sum(self.expected.values())
        if self.ok:
            sampled = f", {self.diff.checked:,} read back and equal" if self.diff.checked else ""
            return f"{self.target}: verified ({self.mode}): holds all {total:,} records{sampled}"
        return f"{self.target}: verification ({self.mode}) FAILED: " + "; ".join(self.diff.lines())


def _check(sink: Sink, caps: Capabilities | None, items: list[tuple[Record, np.ndarray | None]], diff: Diff) -> None:
    normalized = caps is not None and caps.vectors == "normalized"
    for start in range(0, len(items), _CHUNK):
        part = items[start : start + _CHUNK]
        got = {rec.id: (rec, vec) for rec, vec in read_back(sink, caps, [rec.id for rec, _ in part])}
        for item in part:
            diff.check(item, got.get(item[0].id), normalized=normalized)


def _check_digests(sink: Sink, caps: Capabilities, ledger: Ledger, title: str, rows: DigestChunk, diff: Diff) -> None:
    """``full`` on a store that keeps float32 vectors, by id: the records of ``rows`` read back and judged."""
    got = read_back(sink, caps, rows.ids)
    at = {rec.id: j for j, rec in enumerate(got.records)}
    js = np.fromiter((at.get(rid, -1) for rid in rows.ids), dtype=np.int64, count=len(rows))
    _judge(ledger, title, rows, got, js, diff)


def _judge(ledger: Ledger, title: str, rows: DigestChunk, got: Batch, js: np.ndarray, diff: Diff) -> None:
    """Each record of ``rows`` against ``got.records[js[i]]`` (-1: not held), by the digests of what was
    written (:mod:`vexrun.verify.digest`), as arrays; only those that differ are compared with the ledger's
    copy (which finds the reason, within the comparison's tolerances)."""
    records = got.records
    found = js >= 0
    same = np.zeros(len(rows), dtype=bool)
    if found.any():
        mine = js[found]
        content = content_digests(records)
        sums, vsum = vector_sums(got), rows.vsum[found]
        vectors = (vsum == NO_VECTOR) | (sums[mine] == vsum)
        same[found] = (content[mine] == rows.content[found]) & vectors & (rows.content[found] != 0)
        # a record written without a namespace that came back with one (a target's default): digests of another seed
        for i in np.flatnonzero(found & ~same).tolist():
            j = int(js[i])
            if (rows.vsum[i] == NO_VECTOR or sums[j] == rows.vsum[i]) and content_matches(
                int(rows.content[i]), records[j]
            ):
                same[i] = True
    for code, n in zip(*np.unique(rows.codes[same], return_counts=True), strict=True):
        diff.add_equal(rows.names[int(code)] or None, int(n))
    for i in np.flatnonzero(~found).tolist():
        diff.add_missing(rows.ids[i], rows.names[int(rows.codes[i])] or None)
    closer = np.flatnonzero(found & ~same).tolist()
    if closer:
        kept = ledger.kept_items(title, [rows.ids[i] for i in closer])
        for i in closer:
            rid, j = rows.ids[i], int(js[i])
            want = kept.get(rid)
            if want is None:  # not kept (cannot happen with full): the digests' word stands
                diff.add_changed(rid, "differs from what was written", rows.names[int(rows.codes[i])] or None)
            else:
                diff.check(want, (records[j], got.vector(j)), normalized=False)


def _in_order(rows: DigestChunk, got: Batch) -> np.ndarray | None:
    """Where each id of ``rows`` is in ``got`` when ``got`` holds exactly those ids (in that order, the usual
    case, or another), else None."""
    if len(got) != len(rows):
        return None
    ids = [rec.id for rec in got.records]
    if ids == rows.ids:
        return np.arange(len(rows), dtype=np.int64)
    at = {rid: j for j, rid in enumerate(ids)}
    if len(at) != len(rows) or any(rid not in at for rid in rows.ids):
        return None
    return np.fromiter((at[rid] for rid in rows.ids), dtype=np.int64, count=len(rows))


def _check_all_digests(sink: Sink, caps: Capabilities, ledger: Ledger, title: str, diff: Diff) -> None:
    """``full`` by digests. A store that reads in the order it was written (:meth:`Sink.scan`: the local store)
    is read in one pass alongside the ledger, which lists the ids in the order written: while each of its batches
    holds the ids of the ledger's next chunk, no id is looked up (a scan costs 0.22 s per 100k records where
    lookups by id cost 0.29 s). From the first batch that does not (a target that held other records first, ids
    written twice), the rest is read by id."""
    chunks = ledger.digests(title, _CHUNK)
    try:
        scan: Iterator[Batch] | None = sink.scan(_CHUNK)
    except NotImplementedError:
        scan = None
    if scan is not None:
        departed: DigestChunk | None = None
        for rows in chunks:
            batch = next(scan, None)
            got = from_store(batch) if batch is not None else None
            js = _in_order(rows, got) if got is not None else None
            if got is None or js is None:
                departed = rows
                break
            _judge(ledger, title, rows, got, js, diff)
        close = getattr(scan, "close", None)
        if close is not None:
            close()  # before any lookup: a store may read through the same connection
        if departed is not None:
            _check_digests(sink, caps, ledger, title, departed, diff)
    for rows in chunks:
        _check_digests(sink, caps, ledger, title, rows, diff)


def _name_missing(
    sink: Sink, caps: Capabilities | None, chunks: Iterable[list[tuple[str, str]]], diff: Diff, seen: set[str]
) -> None:
    for rows in chunks:
        found = {rec.id for rec in read_back(sink, caps, [rid for rid, _ in rows]).records}
        for rid, ns in rows:
            if rid not in found and rid not in seen:
                diff.add_missing(rid, ns or None)
                seen.add(rid)


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """``full`` reads every record back, a chunk at a time: 100k records and their metadata dicts per 100k, none
    in a reference cycle, so the cyclic collector's passes over them (~10% of the check) find nothing. It is
    off while the check runs, and on again after (if it was on)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def reconcile(sink: Sink, caps: Capabilities | None, title: str, ledger: Ledger, mode: str, sample: int) -> Reconciled:
    """Check one target against what the ledger says the run wrote to it."""
    t0 = time.perf_counter()
    out = Reconciled(target=title, mode=mode, expected=ledger.counts(title))
    try:
        total_held, out.held = sink.counts([ns for ns in out.expected if ns])
    except NotImplementedError as exc:
        out.verified, out.note = False, str(exc)
        return out
    out.held[""] = total_held
    total = sum(out.expected.values())
    short = [ns for ns, n in out.expected.items() if ns and out.held.get(ns, 0) < n]
    diff = out.diff
    try:
        if mode == "sample":
            for items in ledger.sample_chunks(title, sample_size(sample, total), _CHUNK):
                _check(sink, caps, items, diff)
        elif mode == "full":
            with _no_cyclic_gc():
                if caps is not None and caps.vectors == "float32" and ledger.has_digests(title):
                    _check_all_digests(sink, caps, ledger, title, diff)
                else:  # a store that renormalises (or an older ledger): every record compared with its kept copy
                    for items in ledger.kept(title):
                        _check(sink, caps, items, diff)
        seen = set(diff.missing_ids)
        if mode == "full":
            pass  # every id was read back: the missing ones are counted and named already
        elif short:
            for ns in short:
                _name_missing(sink, caps, ledger.ids(title, ns), diff, seen)
        elif total_held < total:
            _name_missing(sink, caps, ledger.ids(title), diff, seen)
    except NotImplementedError as exc:
        out.verified, out.note = False, str(exc)
    out.seconds = time.perf_counter() - t0
    return out
