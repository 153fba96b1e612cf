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

import bisect
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
from .digest import content_digests, vector_sums

__all__ = ["DigestChunk", "Ledger", "keep_fraction", "sample_size"]

#: the layout of the tables below; a ledger of another layout is started again
LAYOUT = "3"
#: the kept records in the order written (a rowid table: appending to it cost a quarter of inserting into a table
#: keyed by the id, 0.9 s against 3.8 s per 100k kept records), the last write of an id replacing the earlier one
_KEPT = """
CREATE TABLE IF NOT EXISTS kept (
    sink TEXT NOT NULL,
    id TEXT NOT NULL,
    ns TEXT NOT NULL,
    batch INTEGER NOT NULL,
    h INTEGER NOT NULL,
    rec BLOB NOT NULL,
    vec BLOB,
    UNIQUE (sink, id)
);
"""
_SCHEMA = (
    """
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
CREATE TABLE IF NOT EXISTS digests (
    sink TEXT NOT NULL,
    batch INTEGER NOT NULL,
    d BLOB NOT NULL,
    PRIMARY KEY (sink, batch)
);
"""
    + _KEPT
)
_SEED = b"vexrun-verify\x1f"
_OFFSET = 2**63
_ENC = msgspec.msgpack.Encoder()
_DEC = msgspec.msgpack.Decoder(Record)
_STRS = msgspec.msgpack.Decoder(list[str])


def keep_fraction(mode: str, sample: int, estimate: int | None) -> float:
    """The share of records whose content the ledger keeps: all for ``full``, none for ``count``/``off``, and
    for ``sample`` twice what a sample of ``max(sample, 1%)`` needs (all of a small run; all at first when the size
    is unknown, the share then lowered as the run grows: ``Ledger(shrink=…)``)."""
    if mode == "full":
        return 1.0
    if mode != "sample":
        return 0.0
    if not estimate or estimate <= 0:
        return 1.0
    return min(1.0, 2.0 * max(sample / estimate, 0.01))


def _cut(keep: float) -> int:
    """The largest hash a share ``keep`` of the records keeps (-1: none)."""
    return min(int(min(keep, 1.0) * (2**64 - 1)), 2**64 - 1) if keep > 0 else -1


def sample_size(sample: int, total: int) -> int:
    """``run.verify_sample`` records or 1% of them, whichever is more."""
    return min(total, max(sample, total // 100))


#: distinct ids are told apart in passes over the ledger, each over the writes whose hash falls in its share, of
#: about this many writes: 12 bytes a write, so memory stays flat however many records a run writes
PASS_WRITES = 1 << 18


@dataclass
class DigestChunk:
    """The digests of the last writes of some ids, as arrays (:meth:`Ledger.digests`)."""

    ids: list[str]
    #: each id's namespace, as an index into ``names`` ('' for none)
    codes: np.ndarray
    names: list[str]
    #: content digests and vector sums, ``uint64``
    content: np.ndarray
    vsum: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[tuple[str, str, int, int]]:
        """(id, namespace, content digest, vector sum) of each id."""
        for rid, code, c, v in zip(
            self.ids, self.codes.tolist(), self.content.tolist(), self.vsum.tolist(), strict=True
        ):
            yield rid, self.names[code], c, v


@dataclass
class _Pass:
    """The last write of each distinct id of one share of the hashes: its position among all writes, its hash,
    its namespace's code."""

    positions: np.ndarray
    hashes: np.ndarray
    codes: np.ndarray


class Ledger:
    def __init__(
        self,
        path: Path,
        *,
        run_id: int,
        keep: float,
        resume_batches: int | None,
        readonly: bool = False,
        digests: bool = False,
        shrink: int | None = None,
    ) -> None:
        """``keep``: the share of records whose copy is kept; ``digests``: keep each record's digests too (for
        ``run.verify: full``, whose check compares them: :mod:`vexrun.verify.digest`); ``shrink``: the run's size
        is unknown and its ``sample`` check reads ``shrink`` records or 1%: the share starts at ``keep`` and is
        lowered as records come (:meth:`_shrunk`), never below what that sample needs."""
        self.path = path
        self.digesting = digests
        self._shrink = shrink
        #: records added per sink (for ``shrink``)
        self._seen: dict[str, int] = {}
        self._counts: dict[str, dict[str, int]] = {}
        self._names: dict[str, list[str]] = {}
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
        if meta.get("layout", LAYOUT) != LAYOUT:  # the second layout kept its records keyed by id: made again
            self.db.executescript("DROP INDEX IF EXISTS kept_h; DROP TABLE kept;" + _KEPT)
        same = meta.get("run") == str(run_id) and meta.get("layout") == LAYOUT
        if resume_batches is not None and same:
            self.keep = float(meta["keep"])
            with self.db:
                self.db.execute("BEGIN")
                self.db.execute("DELETE FROM batches WHERE batch > ?", (resume_batches,))
                self.db.execute("DELETE FROM digests WHERE batch > ?", (resume_batches,))
                self.db.execute("DELETE FROM kept WHERE batch > ?", (resume_batches,))
        else:
            self.keep = keep
            with self.db:
                self.db.execute("BEGIN")
                self.db.execute("DELETE FROM batches")
                self.db.execute("DELETE FROM digests")
                self.db.execute("DELETE FROM kept")
                self.db.executemany(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                    [("run", str(run_id)), ("keep", repr(keep)), ("layout", LAYOUT)],
                )
        self._cut = _cut(self.keep)
        if shrink is not None:
            rows = self.db.execute("SELECT sink, SUM(length(h)) / 8 FROM batches GROUP BY sink").fetchall()
            self._seen = {sink: int(n) for sink, n in rows}

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
        shrunk = self._shrunk(sink, len(records))
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
        digests = _digests(batch, records, refused) if self.digesting else None
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("INSERT OR REPLACE INTO batches VALUES (?, ?, ?, ?, ?, ?)", row)
            if digests is not None:
                self.db.execute("INSERT OR REPLACE INTO digests VALUES (?, ?, ?)", (sink, batch_no, digests))
            if kept:
                self.db.executemany("INSERT OR REPLACE INTO kept VALUES (?, ?, ?, ?, ?, ?, ?)", kept)
            if shrunk:  # the share went down: the copies above the new cut go, with this batch
                self.db.execute("DELETE FROM kept WHERE h > ?", (self._cut - _OFFSET,))
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('keep', ?)", (repr(self.keep),))
        self._counts.pop(sink, None)

    def _shrunk(self, sink: str, added: int) -> bool:
        """Lower the share kept when the run has grown past twice what it needs (``shrink``): a run of unknown
        size started keeping everything, and a 100k-record run kept 100k copies and vectors (+25% to a LanceDB
        import). The share needed after ``n`` records, ``max(2%, 2 × shrink / n)``, only goes down as ``n``
        grows, and a sample is the records of the smallest hashes: those under the lowered cut are all still
        there, so the run keeps what a share chosen at the start, knowing the size, would have kept."""
        if self._shrink is None:
            return False
        self._seen[sink] = self._seen.get(sink, 0) + added
        seen = min(self._seen.values())
        need = min(1.0, max(0.02, 2.0 * self._shrink / seen))
        if self.keep < 2 * need:
            return False
        self.keep, self._cut = need, _cut(need)
        return True

    def _rows(self, sink: str, names: dict[str, int]) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        """(batch number, position of its first write, hashes, namespace codes in ``names``) of each batch row."""
        at = 0
        for batch_no, names_blob, ns_blob, h_blob in self.db.execute(
            "SELECT batch, names, ns, h FROM batches WHERE sink = ? ORDER BY batch", (sink,)
        ):
            local = np.fromiter((names.setdefault(n, len(names)) for n in _STRS.decode(names_blob)), np.uint32)
            h = np.frombuffer(h_blob, dtype=np.uint64)
            yield int(batch_no), at, h, local[np.frombuffer(ns_blob, dtype=np.uint32)]
            at += len(h)

    def _passes(self, sink: str) -> Iterator[_Pass]:
        """The last write of each distinct id, one share of the hashes at a time (:data:`PASS_WRITES`)."""
        row = self.db.execute("SELECT COALESCE(SUM(length(h)), 0) FROM batches WHERE sink = ?", (sink,)).fetchone()
        passes = max(1, -(-int(row[0]) // 8 // PASS_WRITES))
        names: dict[str, int] = {}
        for share in range(passes):
            positions, hashes, codes = [], [], []
            for _, at, h, ns in self._rows(sink, names):
                mine = np.flatnonzero(h % np.uint64(passes) == share) if passes > 1 else np.arange(len(h))
                positions.append(mine + at)
                hashes.append(h[mine])
                codes.append(ns[mine])
            pos = np.concatenate(positions) if positions else np.zeros(0, np.int64)
            all_h = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
            all_c = np.concatenate(codes) if codes else np.zeros(0, np.uint32)
            # the last write of each id: the first occurrence in the reversed order
            _, first_rev = np.unique(all_h[::-1], return_index=True)
            last = len(all_h) - 1 - first_rev
            yield _Pass(pos[last], all_h[last], all_c[last])
        self._names[sink] = list(names)

    def counts(self, sink: str) -> dict[str, int]:
        """Distinct ids written per namespace ('' for records without one)."""
        if sink not in self._counts:
            per: dict[int, int] = {}
            for part in self._passes(sink):
                for code, n in zip(*np.unique(part.codes, return_counts=True), strict=True):
                    per[int(code)] = per.get(int(code), 0) + int(n)
            names = self._names.get(sink, [])
            self._counts[sink] = {names[code]: n for code, n in sorted(per.items())}
        return self._counts[sink]

    def total(self, sink: str) -> int:
        """Distinct ids written to ``sink``."""
        return sum(self.counts(sink).values())

    def sample(self, sink: str, k: int) -> list[tuple[Record, np.ndarray | None]]:
        """The ``k`` kept records with the smallest hashes."""
        return [item for part in self.sample_chunks(sink, k) for item in part]

    def sample_chunks(self, sink: str, k: int, chunk: int = 1000) -> Iterator[list[tuple[Record, np.ndarray | None]]]:
        """:meth:`sample` in chunks, in the same order. Only the rowids are sorted: sorting the rows themselves
        held all ``k`` of them, vectors and all, in SQLite's sorter (1% of a 1M-record run: ~25 MB)."""
        query = "SELECT rowid FROM kept WHERE +sink = ? ORDER BY h LIMIT ?"
        rowids = [r for (r,) in self.db.execute(query, (sink, k))]
        for start in range(0, len(rowids), chunk):
            part = rowids[start : start + chunk]
            q = f"SELECT rowid, rec, vec FROM kept WHERE rowid IN ({','.join('?' * len(part))})"  # noqa: S608
            rows = {r: (rec, vec) for r, rec, vec in self.db.execute(q, part)}
            yield [_item(*rows[r]) for r in part]

    def kept(self, sink: str, chunk: int = 1000) -> Iterator[list[tuple[Record, np.ndarray | None]]]:
        """Every kept record, in chunks, in the order written (``full``: one pass over the table)."""
        cur = self.db.execute("SELECT rec, vec FROM kept WHERE +sink = ? ORDER BY rowid", (sink,))
        while rows := cur.fetchmany(chunk):
            yield [_item(rec, vec) for rec, vec in rows]

    def ids(self, sink: str, namespace: str | None = None, chunk: int = 1000) -> Iterator[list[tuple[str, str]]]:
        """Every (id, namespace) written (its last write), in chunks in the order written, optionally of one
        namespace. Holds one byte a write (which writes stand), for as long as it runs."""
        stands = self._stands(sink, namespace)
        names = self._names.get(sink, [])
        out: list[tuple[str, str]] = []
        for at, ids, codes in self._id_lists(sink, None):
            for j in np.flatnonzero(stands[at : at + len(ids)]).tolist():
                out.append((ids[j], names[codes[j]]))
            while len(out) >= chunk:
                yield out[:chunk]
                out = out[chunk:]
        if out:
            yield out

    def _stands(self, sink: str, namespace: str | None = None) -> np.ndarray:
        """One bool a write: whether it is the last write of its id (optionally, of an id of ``namespace``)."""
        stands = np.zeros(0, dtype=bool)
        for part in self._passes(sink):
            names = self._names.get(sink, [])
            if len(stands) == 0:
                total = self.db.execute("SELECT COALESCE(SUM(length(h)), 0) FROM batches WHERE sink = ?", (sink,))
                stands = np.zeros(int(total.fetchone()[0]) // 8, dtype=bool)
            picked = part.positions
            if namespace is not None:
                code = names.index(namespace) if namespace in names else -1
                picked = picked[part.codes == code]
            stands[picked] = True
        return stands

    def has_digests(self, sink: str) -> bool:
        """Whether every batch of ``sink`` has its digests (a ``full`` run's; not a ledger of an older layout)."""
        q = "SELECT (SELECT COUNT(*) FROM batches WHERE sink = ?) = (SELECT COUNT(*) FROM digests WHERE sink = ?)"
        return bool(self.db.execute(q, (sink, sink)).fetchone()[0])

    def digests(self, sink: str, chunk: int = 1000) -> Iterator[DigestChunk]:
        """The digests of every id's last write, in chunks of ``chunk`` in the order written
        (:mod:`vexrun.verify.digest`; see :meth:`has_digests`)."""
        stands = self._stands(sink)
        names = self._names.get(sink, [])
        codes_of: dict[str, int] = {name: i for i, name in enumerate(names)}
        ids: list[str] = []
        codes: list[np.ndarray] = []
        sums: list[np.ndarray] = []
        q = "SELECT b.ids, d.d FROM batches b JOIN digests d USING (sink, batch) WHERE b.sink = ? AND b.batch = ?"
        for batch_no, at, h, batch_codes in self._rows(sink, codes_of):
            ids_blob, d_blob = self.db.execute(q, (sink, batch_no)).fetchone()
            batch_ids = _STRS.decode(ids_blob)
            mine = np.flatnonzero(stands[at : at + len(h)])
            ids.extend(batch_ids if len(mine) == len(batch_ids) else [batch_ids[j] for j in mine.tolist()])
            codes.append(batch_codes[mine])
            sums.append(np.frombuffer(d_blob, dtype="<u8").reshape(-1, 2)[mine])
            if len(ids) >= chunk:
                all_codes, all_sums = np.concatenate(codes), np.concatenate(sums)
                cut = len(ids) - len(ids) % chunk
                for at_ in range(0, cut, chunk):
                    d = all_sums[at_ : at_ + chunk]
                    yield DigestChunk(
                        ids[at_ : at_ + chunk], all_codes[at_ : at_ + chunk], list(codes_of), d[:, 0], d[:, 1]
                    )
                ids, codes, sums = ids[cut:], [all_codes[cut:]], [all_sums[cut:]]
        if ids:
            d = np.concatenate(sums)
            yield DigestChunk(ids, np.concatenate(codes), list(codes_of), d[:, 0], d[:, 1])

    def kept_items(self, sink: str, ids: list[str]) -> dict[str, tuple[Record, np.ndarray | None]]:
        """The kept records of ``ids`` (by the UNIQUE index on (sink, id))."""
        found: dict[str, tuple[Record, np.ndarray | None]] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            q = f"SELECT id, rec, vec FROM kept WHERE sink = ? AND id IN ({','.join('?' * len(part))})"  # noqa: S608
            for rid, rec, vec in self.db.execute(q, (sink, *part)):
                found[rid] = _item(rec, vec)
        return found

    def smallest(self, sink: str, k: int) -> list[tuple[str, str]]:
        """The ``k`` distinct ids (with their namespaces) of ``sink`` with the smallest hashes."""
        if k <= 0:
            return []
        best_h, best_pos = np.zeros(0, np.uint64), np.zeros(0, np.int64)
        for part in self._passes(sink):
            h = np.concatenate([best_h, part.hashes])
            pos = np.concatenate([best_pos, part.positions])
            order = np.argsort(h, kind="stable")[:k]
            best_h, best_pos = h[order], pos[order]
        wanted = {int(p): i for i, p in enumerate(best_pos.tolist())}
        names = self._names.get(sink, [])
        found: list[tuple[str, str] | None] = [None] * len(wanted)
        for at, ids, codes in self._id_lists(sink, set(wanted)):
            for j, rid in enumerate(ids):
                if at + j in wanted:
                    found[wanted[at + j]] = (rid, names[codes[j]])
        return [f for f in found if f is not None]

    def _id_lists(self, sink: str, positions: set[int] | None) -> Iterator[tuple[int, list[str], np.ndarray]]:
        """(position of the first write, its ids, their namespace codes) of each batch row, or of the rows
        holding ``positions``."""
        names: dict[str, int] = {name: i for i, name in enumerate(self._names.get(sink, []))}
        wanted = sorted(positions) if positions is not None else []
        for batch_no, at, h, codes in self._rows(sink, names):
            if positions is not None:
                i = bisect.bisect_left(wanted, at)
                if i == len(wanted) or wanted[i] >= at + len(h):
                    continue
            row = self.db.execute("SELECT ids FROM batches WHERE sink = ? AND batch = ?", (sink, batch_no)).fetchone()
            yield at, _STRS.decode(row[0]), codes


def _digests(batch: Batch, records: list[Record], refused: set[str] | frozenset[str]) -> bytes:
    """The (content digest, vector sum) of each of ``records`` (``batch``'s, less the refused), 16 bytes each."""
    sums = vector_sums(batch)
    if refused:
        keep = np.fromiter((r.id not in refused for r in batch.records), dtype=bool, count=len(batch.records))
        sums = sums[keep]
    d = content_digests(records)
    return np.stack([d, sums], axis=1).astype("<u8").tobytes()


def _item(rec: bytes, vec: bytes | None) -> tuple[Record, np.ndarray | None]:
    return _DEC.decode(rec), None if vec is None else np.frombuffer(vec, dtype="<f4")
