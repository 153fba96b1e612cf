"""What a run wrote to each target, kept beside its checkpoint so the run can prove it afterwards.

``ledger.sqlite`` in the state directory holds, per target, every id the run wrote with its namespace, the
batch it was written in and a seeded 64-bit hash; for the ids whose hash falls under the run's *keep*
fraction it also holds the record and its vector as written (all of them with ``run.verify: full``). The
verification sample is the ``k`` smallest hashes among those (a bottom-k sample: uniform, seeded, and the same
whatever order the records came in).

A batch's rows are committed before the checkpoint commits the batch; rows of batches the checkpoint does not
have yet (a crash between the two) are dropped when the run resumes, and the resumed run writes them again.
The last write of an id wins, as in the targets. The ledger belongs to one run: a new run starts it empty.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from ..ids import id_hashes
from ..vmig.batch import Batch
from ..vmig.model import Record

__all__ = ["Ledger", "keep_fraction"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS written (
    sink TEXT NOT NULL,
    id TEXT NOT NULL,
    ns TEXT NOT NULL,
    batch INTEGER NOT NULL,
    h INTEGER NOT NULL,
    rec BLOB,
    vec BLOB,
    PRIMARY KEY (sink, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS written_h ON written (sink, h) WHERE rec IS NOT NULL;
"""
_SEED = b"vexrun-verify\x1f"
_OFFSET = 2**63
_ENC = msgspec.msgpack.Encoder()
_DEC = msgspec.msgpack.Decoder(Record)


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


class Ledger:
    def __init__(self, path: Path, *, run_id: int, keep: float, resume_batches: int | None) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        meta = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        if resume_batches is not None and meta.get("run") == str(run_id):
            self.keep = float(meta["keep"])
            self.db.execute("DELETE FROM written WHERE batch > ?", (resume_batches,))
        else:
            self.keep = keep
            self.db.execute("DELETE FROM written")
            self.db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)", [("run", str(run_id)), ("keep", repr(keep))]
            )
        self._cut = int(min(keep, 1.0) * (2**64 - 1)) if keep > 0 else -1

    def close(self) -> None:
        self.db.close()

    def add(self, sink: str, batch_no: int, batch: Batch, refused: set[str] | frozenset[str] = frozenset()) -> None:
        """The records of ``batch`` the target accepted (ids in ``refused`` are left out), in one transaction."""
        if not len(batch):
            return
        hashes = id_hashes(_SEED + r.id.encode("utf-8", "surrogatepass") for r in batch.records)
        rows: list[tuple[Any, ...]] = []
        for i, rec in enumerate(batch.records):
            if rec.id in refused:
                continue
            h = int(hashes[i])
            rec_blob = vec_blob = None
            if h <= self._cut:
                rec_blob = _ENC.encode(rec)
                vec = batch.vector(i)
                vec_blob = None if vec is None else np.asarray(vec, dtype="<f4").tobytes()
            rows.append((sink, rec.id, rec.namespace or "", batch_no, h - _OFFSET, rec_blob, vec_blob))
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR REPLACE INTO written VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def counts(self, sink: str) -> dict[str, int]:
        """Distinct ids written per namespace ('' for records without one)."""
        rows = self.db.execute("SELECT ns, COUNT(*) FROM written WHERE sink = ? GROUP BY ns", (sink,))
        return {ns: int(n) for ns, n in rows}

    def sample(self, sink: str, k: int) -> list[tuple[Record, np.ndarray | None]]:
        """The ``k`` kept records with the smallest hashes."""
        rows = self.db.execute(
            "SELECT rec, vec FROM written WHERE sink = ? AND rec IS NOT NULL ORDER BY h LIMIT ?", (sink, k)
        )
        return [_item(rec, vec) for rec, vec in rows]

    def kept(self, sink: str, chunk: int = 1000) -> Iterator[list[tuple[Record, np.ndarray | None]]]:
        """Every kept record, in chunks (``full``)."""
        cur = self.db.execute("SELECT rec, vec FROM written WHERE sink = ? AND rec IS NOT NULL ORDER BY id", (sink,))
        while rows := cur.fetchmany(chunk):
            yield [_item(rec, vec) for rec, vec in rows]

    def ids(self, sink: str, namespace: str | None = None, chunk: int = 1000) -> Iterator[list[tuple[str, str]]]:
        """Every (id, namespace) written, in chunks, optionally of one namespace."""
        if namespace is None:
            cur = self.db.execute("SELECT id, ns FROM written WHERE sink = ? ORDER BY id", (sink,))
        else:
            cur = self.db.execute("SELECT id, ns FROM written WHERE sink = ? AND ns = ? ORDER BY id", (sink, namespace))
        while rows := cur.fetchmany(chunk):
            yield rows


def _item(rec: bytes, vec: bytes | None) -> tuple[Record, np.ndarray | None]:
    return _DEC.decode(rec), None if vec is None else np.frombuffer(vec, dtype="<f4")
