"""The facts dedup has kept, on disk: one SQLite file in the stage's state directory.

``facts`` holds each kept fact (its full record, as msgspec JSON, so a later duplicate can update it and send it
again) by namespace and row (the row is its position in the namespace's vector index); ``hashes`` maps the hash
of each normalised text seen to the row that holds it (an exact duplicate is one lookup). Nothing of it is kept
in memory.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import blake3
import msgspec

from ...vmig.model import Record

__all__ = ["FactStore", "text_hash"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS facts (
    ns TEXT NOT NULL,
    row INTEGER NOT NULL,
    id TEXT NOT NULL,
    info REAL NOT NULL,
    record BLOB NOT NULL,
    PRIMARY KEY (ns, row)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hashes (
    ns TEXT NOT NULL,
    h INTEGER NOT NULL,
    row INTEGER NOT NULL,
    PRIMARY KEY (ns, h)
) WITHOUT ROWID;
"""
_PUNCT = re.compile(r"[^\w\s]+")
_CHUNK = 500
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Record)


def text_hash(text: str) -> int:
    """A signed 64-bit hash of the normalised text: lowercase, punctuation dropped, whitespace collapsed."""
    norm = " ".join(_PUNCT.sub(" ", text.lower()).split())
    return int.from_bytes(blake3.blake3(norm.encode("utf-8", "surrogatepass")).digest(8), "little", signed=True)


class FactStore:
    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def find_hashes(self, ns: str, hashes: Iterable[int]) -> dict[int, int]:
        """hash → row, for the hashes already seen in ``ns``."""
        unique = list(dict.fromkeys(hashes))
        found: dict[int, int] = {}
        for a in range(0, len(unique), _CHUNK):
            part = unique[a : a + _CHUNK]
            marks = ",".join("?" * len(part))
            for h, row in self.db.execute(f"SELECT h, row FROM hashes WHERE ns = ? AND h IN ({marks})", [ns, *part]):
                found[int(h)] = int(row)
        return found

    def records(self, ns: str, rows: Iterable[int]) -> dict[int, tuple[Record, float]]:
        unique = list(dict.fromkeys(rows))
        out: dict[int, tuple[Record, float]] = {}
        for a in range(0, len(unique), _CHUNK):
            part = unique[a : a + _CHUNK]
            marks = ",".join("?" * len(part))
            sql = f"SELECT row, record, info FROM facts WHERE ns = ? AND row IN ({marks})"
            for row, blob, info in self.db.execute(sql, [ns, *part]):
                out[int(row)] = (_decoder.decode(blob), float(info))
        return out

    def write(
        self,
        ns: str,
        new: list[tuple[int, Record, float]],
        updated: list[tuple[int, Record, float]],
        hashes: list[tuple[int, int]],
    ) -> None:
        """Add new facts, rewrite updated ones and record text hashes, in one transaction."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany(
                "INSERT OR REPLACE INTO facts (ns, row, id, info, record) VALUES (?, ?, ?, ?, ?)",
                [(ns, row, rec.id, info, _encoder.encode(rec)) for row, rec, info in (*new, *updated)],
            )
            self.db.executemany(
                "INSERT OR IGNORE INTO hashes (ns, h, row) VALUES (?, ?, ?)", [(ns, h, row) for h, row in hashes]
            )
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def truncate(self, ns: str, rows: int) -> None:
        """Forget the facts from row ``rows`` on (written by a batch that was never committed)."""
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute("DELETE FROM facts WHERE ns = ? AND row >= ?", (ns, rows))
        self.db.execute("DELETE FROM hashes WHERE ns = ? AND row >= ?", (ns, rows))
        self.db.execute("COMMIT")

    def namespaces(self) -> dict[str, int]:
        return {str(ns): int(n) for ns, n in self.db.execute("SELECT ns, MAX(row) + 1 FROM facts GROUP BY ns")}
