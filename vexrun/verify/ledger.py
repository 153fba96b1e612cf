"""What a run wrote to each target, kept beside its checkpoint so the run can prove it afterwards.

``ledger.sqlite`` in the state directory holds, per target and batch, the ids the run wrote with their
namespaces and seeded 64-bit hashes (one row a batch: ids and namespaces as msgpack lists, hashes as an
array, so a batch costs one insert, not one keyed row a record); for the ids whose hash falls under the run's
*keep* fraction it also holds the record and its vector as written (all of them with ``run.verify: full``).
The verification sample is the ``k`` smallest hashes among those (a bottom-k sample: uniform, seeded, and the
same whatever order the records came in).

A batch's rows are committed before the checkpoint commits the batch; rows of batches the checkpoint does not
have yet (a crash between the two) are dropped when the run resumes, and the resumed run writes them again.
The last write of an id wins, as in the targets: ids written twice are told apart by their hash once, when the
run is checked (:meth:`Ledger.counts`), with numpy over 8 bytes an id. The ledger belongs to one run: a new
run starts it empty.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from ..ids import id_hashes
from ..vmig.batch import Batch
from ..vmig.model import Record

__all__ = ["Ledger", "keep_fraction", "sample_size"]

#: the layout of the tables below; a ledger of another layout is started again
LAYOUT = "2"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    sink TEXT NOT NULL,
    batch INTEGER NOT NULL,
    ids BLOB NOT NULL,
    names BLOB NOT NULL,
    ns BLOB NOT NULL,
    h BLOB NOT NULL,
    PRIMARY KEY (sink, batch)
);
CREATE TABLE IF NOT EXISTS kept (
    sink TEXT NOT NULL,
    id TEXT NOT NULL,
    ns TEXT NOT NULL,
    batch INTEGER NOT NULL,
    h INTEGER NOT NULL,
    rec BLOB NOT NULL,
    vec BLOB,
    PRIMARY KEY (sink, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kept_h ON kept (sink, h);
"""
_SEED = b"vexrun-verify\x1f"
_OFFSET = 2**63
_ENC = msgspec.msgpack.Encoder()
_DEC = msgspec.msgpack.Decoder(Record)
_STRS = msgspec.msgpack.Decoder(list[str])


def keep_fraction(mode: str, sample: int, estimate: int | None) -> float:
    """The share of records whose content the ledger keeps: all for ``full``, none for ``count``/``off``, and
    for ``sample`` twice what a sample of ``max(sample, 1%)`` needs (all when the size is unknown or small)."""
    if mode == "full":
        return 1.0
    if mode != "sample":
        return 0.0
    if not estimate or estimate <= 0:
        return 1.0
    return min(1.0, 2.0 * max(sample / estimate, 0.01))


def sample_size(sample: int, total: int) -> int:
    """``run.verify_sample`` records or 1% of them, whichever is more."""
    return min(total, max(sample, total // 100))


@dataclass
class _Written:
    """The ids a run wrote to one target, as it stands: one entry per distinct id (its last write)."""

    #: per batch row, in batch order: (batch number, position of its first record)
    starts: list[tuple[int, int]]
    #: every record written, in order: the seeded hash, the namespace's code
    hashes: np.ndarray
    codes: np.ndarray
    names: list[str]
    #: positions of the last write of each distinct id
    last: np.ndarray

    def counts(self) -> dict[str, int]:
        per = np.bincount(self.codes[self.last], minlength=len(self.names))
        return {name: int(n) for name, n in zip(self.names, per, strict=True) if n}


class Ledger:
    def __init__(
        self, path: Path, *, run_id: int, keep: float, resume_batches: int | None, readonly: bool = False
    ) -> None:
        self.path = path
        self._cache: dict[str, _Written] = {}
        if readonly:
            self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            meta = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
            self.keep = float(meta.get("keep", 0.0))
            self._cut = -1
            return
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("DROP TABLE IF EXISTS written")  # the first layout (one keyed row a record)
        self.db.executescript(_SCHEMA)
        meta = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        same = meta.get("run") == str(run_id) and meta.get("layout") == LAYOUT
        if resume_batches is not None and same:
            self.keep = float(meta["keep"])
            with self.db:
                self.db.execute("BEGIN")
                self.db.execute("DELETE FROM batches WHERE batch > ?", (resume_batches,))
                self.db.execute("DELETE FROM kept WHERE batch > ?", (resume_batches,))
        else:
            self.keep = keep
            with self.db:
                self.db.execute("BEGIN")
                self.db.execute("DELETE FROM batches")
                self.db.execute("DELETE FROM kept")
                self.db.executemany(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                    [("run", str(run_id)), ("keep", repr(keep)), ("layout", LAYOUT)],
                )
        self._cut = min(int(min(keep, 1.0) * (2**64 - 1)), 2**64 - 1) if keep > 0 else -1

    @classmethod
    def reader(cls, path: Path) -> Ledger:
        """The ledger at ``path``, opened read-only (a run's ledger, for its report)."""
        return cls(path, run_id=0, keep=0.0, resume_batches=None, readonly=True)

    def close(self) -> None:
        self.db.close()

    def add(self, sink: str, batch_no: int, batch: Batch, refused: set[str] | frozenset[str] = frozenset()) -> None:
        """The records of ``batch`` the target accepted (ids in ``refused`` are left out), in one transaction."""
        records = [r for r in batch.records if r.id not in refused] if refused else batch.records
        if not records:
            return
        ids = [r.id for r in records]
        hashes = id_hashes(_SEED + i.encode("utf-8", "surrogatepass") for i in ids)
        codes: dict[str, int] = {}
        ns = np.fromiter((codes.setdefault(r.namespace or "", len(codes)) for r in records), np.uint32, len(records))
        kept: list[tuple[Any, ...]] = []
        if self._cut >= 0:
            where = np.flatnonzero(hashes <= np.uint64(self._cut))
            index = {r.id: i for i, r in enumerate(batch.records)} if refused and len(where) else None
            for j in where.tolist():
                rec = records[j]
                vec = batch.vector(j if index is None else index[rec.id])
                vec_blob = None if vec is None else np.asarray(vec, dtype="<f4").tobytes()
                h = int(hashes[j]) - _OFFSET
                kept.append((sink, rec.id, rec.namespace or "", batch_no, h, _ENC.encode(rec), vec_blob))
        row = (sink, batch_no, _ENC.encode(ids), _ENC.encode(list(codes)), ns.tobytes(), hashes.tobytes())
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("INSERT OR REPLACE INTO batches VALUES (?, ?, ?, ?, ?, ?)", row)
            if kept:
                self.db.executemany("INSERT OR REPLACE INTO kept VALUES (?, ?, ?, ?, ?, ?, ?)", kept)
        self._cache.pop(sink, None)

    def _written(self, sink: str) -> _Written:
        """Every write to ``sink`` (hashes and namespace codes, 12 bytes a record) and which ones stand."""
        if sink in self._cache:
            return self._cache[sink]
        starts: list[tuple[int, int]] = []
        hashes: list[np.ndarray] = []
        codes: list[np.ndarray] = []
        names: dict[str, int] = {}
        at = 0
        for batch_no, names_blob, ns_blob, h_blob in self.db.execute(
            "SELECT batch, names, ns, h FROM batches WHERE sink = ? ORDER BY batch", (sink,)
        ):
            local = np.fromiter((names.setdefault(n, len(names)) for n in _STRS.decode(names_blob)), np.uint32)
            h = np.frombuffer(h_blob, dtype=np.uint64)
            starts.append((int(batch_no), at))
            hashes.append(h)
            codes.append(local[np.frombuffer(ns_blob, dtype=np.uint32)])
            at += len(h)
        all_h = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
        all_c = np.concatenate(codes) if codes else np.zeros(0, np.uint32)
        # the last write of each id: the first occurrence in the reversed order
        _, first_rev = np.unique(all_h[::-1], return_index=True)
        last = np.sort(len(all_h) - 1 - first_rev)
        out = _Written(starts=starts, hashes=all_h, codes=all_c, names=list(names), last=last)
        self._cache[sink] = out
        return out

    def counts(self, sink: str) -> dict[str, int]:
        """Distinct ids written per namespace ('' for records without one)."""
        return self._written(sink).counts()

    def total(self, sink: str) -> int:
        """Distinct ids written to ``sink``."""
        return len(self._written(sink).last)

    def sample(self, sink: str, k: int) -> list[tuple[Record, np.ndarray | None]]:
        """The ``k`` kept records with the smallest hashes."""
        rows = self.db.execute("SELECT rec, vec FROM kept WHERE sink = ? ORDER BY h LIMIT ?", (sink, k))
        return [_item(rec, vec) for rec, vec in rows]

    def kept(self, sink: str, chunk: int = 1000) -> Iterator[list[tuple[Record, np.ndarray | None]]]:
        """Every kept record, in chunks (``full``)."""
        cur = self.db.execute("SELECT rec, vec FROM kept WHERE sink = ? ORDER BY id", (sink,))
        while rows := cur.fetchmany(chunk):
            yield [_item(rec, vec) for rec, vec in rows]

    def ids(self, sink: str, namespace: str | None = None, chunk: int = 1000) -> Iterator[list[tuple[str, str]]]:
        """Every (id, namespace) written (its last write), in chunks in the order written, optionally of one
        namespace."""
        w = self._written(sink)
        stands = np.zeros(len(w.hashes), dtype=bool)
        stands[w.last] = True
        if namespace is not None:
            if namespace not in w.names:
                return
            stands &= w.codes == w.names.index(namespace)
        out: list[tuple[str, str]] = []
        for at, ids in self._id_lists(sink, w):
            picked = np.flatnonzero(stands[at : at + len(ids)]).tolist()
            out.extend((ids[j], w.names[w.codes[at + j]]) for j in picked)
            while len(out) >= chunk:
                yield out[:chunk]
                out = out[chunk:]
        if out:
            yield out

    def smallest(self, sink: str, k: int) -> list[tuple[str, str]]:
        """The ``k`` distinct ids (with their namespaces) of ``sink`` with the smallest hashes."""
        w = self._written(sink)
        if not len(w.last) or k <= 0:
            return []
        order = w.last[np.argsort(w.hashes[w.last], kind="stable")[:k]]
        wanted = set(order.tolist())
        found: dict[int, tuple[str, str]] = {}
        for at, ids in self._id_lists(sink, w, wanted):
            for j, rid in enumerate(ids):
                if at + j in wanted:
                    found[at + j] = (rid, w.names[w.codes[at + j]])
        return [found[int(p)] for p in order]

    def _id_lists(self, sink: str, w: _Written, positions: set[int] | None = None) -> Iterator[tuple[int, list[str]]]:
        """(position of the first record, its ids) of each batch row, or of the rows holding ``positions``."""
        rows = range(len(w.starts))
        if positions is not None:
            firsts = np.array([at for _, at in w.starts], dtype=np.int64)
            where = np.searchsorted(firsts, np.fromiter(positions, np.int64, len(positions)), side="right") - 1
            rows = sorted(set(where.tolist()))
        for r in rows:
            batch_no, at = w.starts[r]
            row = self.db.execute("SELECT ids FROM batches WHERE sink = ? AND batch = ?", (sink, batch_no)).fetchone()
            yield at, _STRS.decode(row[0])


def _item(rec: bytes, vec: bytes | None) -> tuple[Record, np.ndarray | None]:
    return _DEC.decode(rec), None if vec is None else np.frombuffer(vec, dtype="<f4")
