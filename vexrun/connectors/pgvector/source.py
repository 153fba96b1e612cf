"""PostgreSQL + pgvector as a source: a vexrun table in id order, page by page, resumable from the last id.

Each page is one short query (``WHERE id > last ORDER BY id LIMIT n``, an index range scan), so no
transaction stays open while the pipeline works, rows written meanwhile behind the cursor are read too, and
a resumed read continues exactly after the last page it yielded. The runner reads one page ahead in a
thread. Results come in PostgreSQL's binary form: vectors are decoded per page with numpy, bit-exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ...errors import UsageError
from ...vmig.batch import Batch
from ..base import Cursor, RunContext, Source, page_ranges
from .codec import Decoder, select_list
from .config import PgvectorSourceConfig
from .conn import Endpoint, map_error
from .table import inspect, qualified

if TYPE_CHECKING:
    import psycopg

__all__ = ["PgvectorSource"]


class PgvectorSource(Source):
    name = "pgvector"
    #: psycopg connections may be used from another thread: the runner may read ahead
    prefetch = True

    def __init__(self, config: PgvectorSourceConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.cfg = config
        self.endpoint = Endpoint(config.dsn.get_secret_value(), ctx, config.data_dir)
        self.table = qualified(config.db_schema, config.table)
        self.conn: psycopg.Connection[Any] | None = None
        self.read = 0
        self.select = ""
        self.decoder = Decoder(self.where)

    @property
    def where(self) -> str:
        return f"{self.endpoint.where}, table {self.cfg.db_schema}.{self.cfg.table}"

    def identity(self) -> str:
        ns = f"#{self.cfg.namespace}" if self.cfg.namespace is not None else ""
        return f"pgvector:{self.cfg.db_schema}.{self.cfg.table}{ns}"

    def _db(self) -> psycopg.Connection[Any]:
        if self.conn is None:
            raise RuntimeError("PgvectorSource used before open()")
        return self.conn

    def open(self) -> None:
        import psycopg

        if not self.endpoint.exists():
            raise UsageError(f"{self.endpoint.where}: nothing there yet", hint="run the recipe that writes it first")
        self.conn = self.endpoint.connect(autocommit=True)
        try:
            info = inspect(self.conn, self.cfg.db_schema, self.cfg.table)
            if not info.exists:
                raise UsageError(f"{self.where}: no such table")
            if info.missing or info.vector_send is None:
                what = ", ".join(info.missing) or "embedding of type vector"
                raise UsageError(f"{self.where}: not a table written by vexrun (no column {what})")
            self.select = select_list(info.vector_send)
        except psycopg.Error as exc:
            raise map_error(exc, self.where) from None

    def estimate(self) -> int | None:
        import psycopg

        ns = self.cfg.namespace
        sql = f"SELECT count(*) FROM {self.table}" + (" WHERE namespace = %s" if ns is not None else "")
        try:
            row = self._db().execute(sql, (ns,) if ns is not None else ()).fetchone()
        except psycopg.Error as exc:
            raise map_error(exc, self.where) from None
        return int(row[0]) if row else None

    def partitions(self, n: int, batch_size: int) -> list[tuple[str, Cursor | None]]:
        """Ranges of rows in id order holding about equal numbers of whole pages, named ``rows A-B`` (by their
        position when the run started); each start cursor holds the range's bounds as ids."""
        import psycopg

        ns = self.cfg.namespace
        where, params = ("", ()) if ns is None else (" WHERE namespace = %s", (ns,))
        try:
            db = self._db()
            total = int(db.execute(f"SELECT count(*) FROM {self.table}{where}", params).fetchone()[0])  # type: ignore[index]
            ranges = page_ranges(total, batch_size, n)
            if len(ranges) < 2:
                return [("all", None)]
            sql = f"SELECT id FROM {self.table}{where} ORDER BY id OFFSET %s LIMIT 1"
            # the last id before each cut: a range runs after one of them, up to the next
            bounds = [str(db.execute(sql, (*params, a - 1)).fetchone()[0]) for a, _ in ranges[1:]]  # type: ignore[index]
        except psycopg.Error as exc:
            raise map_error(exc, self.where) from None
        afters: list[str | None] = ["", *bounds]
        untils: list[str | None] = [*bounds, None]
        return [
            (f"rows {a}-{b}", {"after": after, "until": until})
            for (a, b), after, until in zip(ranges, afters, untils, strict=True)
        ]

    def batches(self, cursor: Cursor | None, batch_size: int) -> Iterator[tuple[Batch, Cursor]]:
        """Pages in id order; the cursor of each page is its last id. The runner reads one page ahead in a
        thread (``prefetch``): psycopg releases the GIL while the server works."""
        after = str(cursor["after"]) if cursor else ""
        until = cursor.get("until") if cursor else None
        while True:
            batch, last, count = self._page(after, batch_size, until)
            if last is None:
                return
            after = last
            self.read += count
            yield batch, ({"after": last} if until is None else {"after": last, "until": until})
            if count < batch_size:
                return

    def _page(self, after: str, size: int, until: str | None = None) -> tuple[Batch, str | None, int]:
        """One page after ``after`` (up to ``until``): (batch, its last id or None when empty, rows)."""
        import psycopg

        ns = self.cfg.namespace
        where = "id > %s" if ns is None else "namespace = %s AND id > %s"
        bound: tuple[str, ...] = ()
        if until is not None:
            where, bound = where + " AND id <= %s", (until,)
        sql = f"SELECT {self.select} FROM {self.table} WHERE {where} ORDER BY id LIMIT %s"
        params = (after, *bound, size) if ns is None else (ns, after, *bound, size)
        try:
            rows = self._db().execute(sql, params, binary=True).fetchall()
        except psycopg.Error as exc:
            raise map_error(exc, self.where) from None
        if not rows:
            return Batch(records=[]), None, 0
        return self.decoder.batch(rows), str(rows[-1][0]), len(rows)

    def report(self) -> dict[str, Any]:
        return {"read": self.read}

    def check(self) -> str:
        self.open()
        n = self.estimate()
        return f"{self.where}: readable, {n:,} records" if n is not None else f"{self.where}: readable"

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001 - closing after a failure must not hide it
                pass
            self.conn = None
        self.endpoint.close()
