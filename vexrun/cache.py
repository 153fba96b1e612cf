"""Content-addressed cache of expensive results (embeddings), kept in the state directory.

The key is BLAKE3 over the model id and the text, so a resumed run, a repeated run and ``--fresh`` never
compute (or pay for) the same embedding twice. Each entry counts how often it was stored: a test can prove
that nothing was computed twice.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import blake3
import numpy as np

from .errors import VexrunError

__all__ = ["EmbedCache", "cache_key", "open_shared"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    key BLOB PRIMARY KEY,
    model TEXT NOT NULL,
    dims INTEGER NOT NULL,
    vector BLOB NOT NULL,
    puts INTEGER NOT NULL DEFAULT 1
) WITHOUT ROWID;
"""
_CHUNK = 500


def cache_key(model_id: str, text: str) -> bytes:
    h = blake3.blake3(model_id.encode("utf-8"))
    h.update(b"\x00")
    h.update(text.encode("utf-8", "surrogatepass"))
    return h.digest(16)


#: seconds a process waits for another one's write to the cache (several workers share it) before failing
BUSY_TIMEOUT = 60.0


@contextmanager
def named(path: Path, what: str) -> Iterator[None]:
    """SQLite's errors on a cache file as one line naming the file (a worker's error reaches the run as text)."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise VexrunError(
            f"{path}: {what}: {exc}", hint="another process may be holding it: a run killed with its workers alive?"
        ) from None


def open_shared(path: Path, what: str, schema: str, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """Open a cache file several processes share, in WAL mode, with ``schema`` created.

    Switching a new file to WAL takes an exclusive lock for which SQLite does not wait (its busy timeout is not
    consulted): workers that open a fresh cache at the same moment got "database is locked" at once. The set-up
    is idempotent, so it is tried again until ``BUSY_TIMEOUT``.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT
    pause = 0.005
    while True:
        db = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT, check_same_thread=check_same_thread)
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(schema)
            return db
        except sqlite3.OperationalError as exc:
            db.close()
            busy = "locked" in str(exc) or "busy" in str(exc)
            if not busy or time.monotonic() + pause > deadline:
                with named(path, what):
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.25)


class EmbedCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        # shared by every process of a run (Ray workers): wait for another writer rather than fail
        self.db = open_shared(path, "opening the embedding cache", _SCHEMA)
        self.hits = 0
        self.misses = 0

    def close(self) -> None:
        self.db.close()

    def get_many(self, model_id: str, texts: list[str]) -> tuple[list[bytes], dict[bytes, np.ndarray]]:
        """The keys of ``texts`` and the vectors already cached for them."""
        keys = [cache_key(model_id, t) for t in texts]
        found: dict[bytes, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        with named(self.path, "reading the embedding cache"):
            for start in range(0, len(unique), _CHUNK):
                part = unique[start : start + _CHUNK]
                marks = ",".join("?" * len(part))
                for key, blob in self.db.execute(f"SELECT key, vector FROM embeddings WHERE key IN ({marks})", part):
                    found[bytes(key)] = np.frombuffer(blob, dtype="<f4")
        self.hits += sum(1 for k in keys if k in found)
        self.misses += sum(1 for k in keys if k not in found)
        return keys, found

    def put_many(self, model_id: str, keys: list[bytes], vectors: np.ndarray) -> None:
        """Store computed vectors (one transaction, durable on return)."""
        vecs = np.ascontiguousarray(vectors, dtype="<f4")
        rows = [(k, model_id, int(vecs.shape[1]), vecs[i].tobytes()) for i, k in enumerate(keys)]
        with named(self.path, "writing the embedding cache"):
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.executemany(
                    "INSERT INTO embeddings (key, model, dims, vector) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET puts = puts + 1, vector = excluded.vector",
                    rows,
                )
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def stats(self) -> dict[str, int]:
        row = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(puts), 0), COALESCE(MAX(puts), 0) FROM embeddings"
        ).fetchone()
        return {"entries": int(row[0]), "puts": int(row[1]), "max_puts": int(row[2])}
