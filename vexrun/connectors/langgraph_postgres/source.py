"""LangGraph's ``PostgresStore`` as a source: the items under ``namespace_prefix`` in (prefix, key) order, page
by page, resumable from the last (prefix, key). Items vexrun wrote come back as the records they were; items an
app put become records too (see :func:`.layout.record_from`), with the vector of the text field (else of
LangGraph's whole-value field '$')."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ...errors import UsageError
from ...vmig.batch import Batch
from ..base import Cursor, RunContext, Source
from ..pgvector.codec import Refused
from ..pgvector.conn import Endpoint, map_error
from .codec import Decoder
from .config import LanggraphPostgresSourceConfig
from .layout import Namespaces, inspect
from .queries import Reader

if TYPE_CHECKING:
    import psycopg

__all__ = ["LanggraphPostgresSource"]


class LanggraphPostgresSource(Source):
    name = "langgraph-postgres"
    #: psycopg connections may be used from another thread: the runner may read ahead
    prefetch = True

    def __init__(self, config: LanggraphPostgresSourceConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.cfg = config
        self.endpoint = Endpoint(config.dsn.get_secret_value(), ctx, config.data_dir)
        self.spaces = Namespaces(config.namespace_prefix)
        self.conn: psycopg.Connection[Any] | None = None
        self.reader: Reader | None = None
        self.decoder = Decoder(self.spaces, config.text_field, self.where)
        self.read = 0

    @property
    def where(self) -> str:
        return f"{self.endpoint.where}, LangGraph store"

    def identity(self) -> str:
        ns = f"#{self.cfg.namespace}" if self.cfg.namespace is not None else ""
        return f"langgraph-postgres:{self.spaces.base or '(all namespaces)'}{ns}"

    def _db(self) -> tuple[psycopg.Connection[Any], Reader]:
        if self.conn is None or self.reader is None:
            raise RuntimeError("LanggraphPostgresSource used before open()")
        return self.conn, self.reader

    def open(self) -> None:
        import psycopg

        if self.cfg.namespace is not None:
            try:
                self.spaces.prefix(self.cfg.namespace)
            except Refused as exc:
                raise UsageError(f"namespace {self.cfg.namespace!r}: {exc}") from None
        if not self.endpoint.exists():
            raise UsageError(f"{self.endpoint.where}: nothing there yet", hint="run the recipe that writes it first")
        self.conn = self.endpoint.connect(autocommit=True)
        try:
            info = inspect(self.conn)
        except psycopg.Error as exc:
            raise map_error(exc, self.where) from None
        if not info.store:
            raise UsageError(f"{self.where}: no LangGraph store here (no table 'store')")
        if info.foreign:
            raise UsageError(f"{self.where}: the table 'store' is not LangGraph's (no prefix, key, value)")
        self.reader = Reader(self.spaces, self.cfg.text_field, info, self.where)

    def estimate(self) -> int | None:
        import psycopg

        conn, reader = self._db()
        try:
            return reader.count(conn, self.cfg.namespace)
        except psycopg.Error as exc:
            raise map_error(exc, self.where) from None

    def batches(self, cursor: Cursor | None, batch_size: int) -> Iterator[tuple[Batch, Cursor]]:
        """Pages in (prefix, key) order; the cursor of each page is its last (prefix, key)."""
        import psycopg

        conn, reader = self._db()
        after = (str(cursor["prefix"]), str(cursor["key"])) if cursor else None
        while True:
            try:
                rows = reader.page(conn, self.cfg.namespace, after, batch_size)
            except psycopg.Error as exc:
                raise map_error(exc, self.where) from None
            if not rows:
                return
            after = (str(rows[-1][0]), str(rows[-1][1]))
            self.read += len(rows)
            yield self.decoder.batch(rows), {"prefix": after[0], "key": after[1]}
            if len(rows) < batch_size:
                return

    def report(self) -> dict[str, Any]:
        return {"read": self.read}

    def check(self) -> str:
        self.open()
        n = self.estimate()
        scope = tuple(self.cfg.namespace_prefix) + ((self.cfg.namespace,) if self.cfg.namespace else ())
        return f"{self.where}: readable, {n:,} items under namespace {scope}"

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001 - closing after a failure must not hide it
                pass
            self.conn = None
        self.endpoint.close()
