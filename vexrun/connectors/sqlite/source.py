"""The local store as a source: records in ``seq`` order, resumable from ``{"after": seq}``."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ...errors import FormatError
from ...vmig.batch import Batch
from ...vmig.model import Record
from ..base import Cursor, PluginConfig, RunContext, Source, page_ranges
from .schema import RECORD_COLUMNS, loads, open_store, read_meta

__all__ = ["SqliteSource", "SqliteSourceConfig", "rows_to_batch"]

_SELECT = f"SELECT seq, {', '.join(RECORD_COLUMNS)} FROM records"


class SqliteSourceConfig(PluginConfig):
    """``type: sqlite`` (alias ``local``) — read the embedded local memory store (one SQLite file)."""

    type: Literal["sqlite", "local"] = "sqlite"
    path: str = Field(description="The store file, relative to the recipe.")
    namespace: str | None = Field(default=None, description="Read only the records of this namespace.")


def rows_to_batch(rows: Sequence[Sequence[Any]], path: Path, dims: int | None = None) -> Batch:
    """Turn ``SELECT seq, <RECORD_COLUMNS>`` rows into a batch; vectors come back bit-exact."""
    records: list[Record] = []
    blobs: list[bytes | None] = []
    for row in rows:
        (_, rid, ns, rdims, model, created, store, modality, score, version, _, meta, extra, text, vec) = row
        records.append(
            Record(
                id=rid,
                text=text,
                model=model,
                dims=rdims,
                namespace=ns,
                metadata=loads(meta),
                created_at=created,
                source_store=store,
                modality=modality,
                score=score,
                vex_version=version,
                extra=loads(extra),
            )
        )
        blobs.append(vec)
    present = [b for b in blobs if b is not None]
    if not present:
        return Batch(records=records)
    width = dims * 4 if dims else len(present[0])
    for rec, blob in zip(records, blobs, strict=True):
        if blob is not None and len(blob) != width:
            raise FormatError(
                f"{path}: record '{rec.id}' has a vector of {len(blob) // 4} values, expected {width // 4}"
            )
    zero = bytes(width)
    buf = b"".join(zero if b is None else b for b in blobs)
    vectors = np.frombuffer(buf, dtype="<f4").astype(np.float32, copy=False).reshape(len(records), width // 4)
    has_vector = np.fromiter((b is not None for b in blobs), dtype=bool, count=len(blobs))
    return Batch(records=records, vectors=vectors, has_vector=has_vector)


class SqliteSource(Source):
    name = "sqlite"

    def __init__(self, config: SqliteSourceConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.cfg = config
        self.path = Path(ctx.resolve_path(config.path))
        self.conn: sqlite3.Connection | None = None
        self.dims: int | None = None
        self.read = 0

    def open(self) -> None:
        self.conn, _ = open_store(self.path, write=False)
        self.dims = read_meta(self.conn).get("dims")

    def identity(self) -> str:
        return f"sqlite:{self.path.name}" + (f"#{self.cfg.namespace}" if self.cfg.namespace is not None else "")

    def _db(self) -> sqlite3.Connection:
        if self.conn is None:
            raise RuntimeError("SqliteSource used before open()")
        return self.conn

    def estimate(self) -> int | None:
        if self.cfg.namespace is None:
            row = self._db().execute("SELECT count(*) FROM records").fetchone()
        else:
            row = (
                self._db().execute("SELECT count(*) FROM records WHERE namespace = ?", (self.cfg.namespace,)).fetchone()
            )
        return int(row[0])

    def partitions(self, n: int, batch_size: int) -> list[tuple[str, Cursor | None]]:
        """Ranges of ``seq`` holding about equal numbers of whole batches, named ``seq A-B`` (after A, up to B)."""
        ns = self.cfg.namespace
        where, args = ("", ()) if ns is None else (" WHERE namespace = ?", (ns,))
        db = self._db()
        total = int(db.execute(f"SELECT count(*) FROM records{where}", args).fetchone()[0])
        ranges = page_ranges(total, batch_size, n)
        if len(ranges) < 2:
            return [("all", None)]
        sql = f"SELECT seq FROM records{where} ORDER BY seq LIMIT 1 OFFSET ?"
        cuts = [int(db.execute(sql, (*args, start)).fetchone()[0]) for start, _ in ranges[1:]]
        top = int(db.execute(f"SELECT max(seq) FROM records{where}", args).fetchone()[0])
        bounds = [0, *(c - 1 for c in cuts), top]
        return [(f"seq {lo}-{hi}", {"after": lo, "until": hi}) for lo, hi in zip(bounds, bounds[1:], strict=False)]

    def batches(self, cursor: Cursor | None, batch_size: int) -> Iterator[tuple[Batch, Cursor]]:
        after = int(cursor["after"]) if cursor else 0
        until = cursor.get("until") if cursor else None
        ns = self.cfg.namespace
        extra: tuple[str, ...] = () if ns is None else (ns,)
        where = "seq > ?" if ns is None else "namespace = ? AND seq > ?"
        if until is not None:
            where += f" AND seq <= {int(until)}"
        sql = f"{_SELECT} WHERE {where} ORDER BY seq LIMIT ?"
        while True:
            # One short read per batch: no read transaction stays open while the pipeline works.
            rows = self._db().execute(sql, (*extra, after, batch_size)).fetchall()
            if not rows:
                return
            batch = rows_to_batch(rows, self.path, self.dims)
            after = int(rows[-1][0])
            self.read += len(rows)
            yield batch, ({"after": after} if until is None else {"after": after, "until": until})
            if len(rows) < batch_size:
                return

    def report(self) -> dict[str, Any]:
        return {"read": self.read}

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
