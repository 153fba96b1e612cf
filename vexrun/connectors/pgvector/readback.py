"""Reading a vexrun table back by record id (``vexrun compare``, a run's reconciliation, the recall facade):
fetch, delete, count and list namespaces, one statement per chunk of ids.

Ids are vexrun's: each is first mapped to the key the runner wrote it under (:func:`~..encoding.store_id`
with the connector's capabilities: an id over 2,000 bytes is a UUID with the original in the metadata), and
rows are decoded the way :class:`~.source.PgvectorSource` decodes them, then by
:func:`~..encoding.from_store`, so a record reads back as it was written.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ...errors import UsageError
from ...vmig.batch import Batch
from ..encoding import from_store, store_id
from .codec import Decoder, select_list
from .conn import map_error
from .plugin import CAPABILITIES
from .table import index_name, inspect, qualified

if TYPE_CHECKING:
    import numpy as np
    import psycopg

    from ...vmig.model import Record

__all__ = ["TableReader"]

#: Ids per statement (one ``= ANY(array)`` parameter; the primary key index is probed once per id).
CHUNK = 5000


def _storable(key: str) -> bool:
    """Whether PostgreSQL text can hold the key at all (no NUL, valid UTF-8); other keys are in no table."""
    if "\x00" in key:
        return False
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _in_order(found: dict[str, tuple[Record, np.ndarray | None]], ids: Sequence[str]) -> Batch:
    """The found records (by the key the store holds them under) in the order of ``ids``, vexrun ids or store
    keys alike (:func:`store_id` maps a key to itself); missing ids left out, an id asked twice given twice."""
    keys = (store_id(rid, CAPABILITIES) for rid in ids)
    hits = [found[key] for key in keys if key in found]
    return Batch.from_records([rec for rec, _ in hits], [vec for _, vec in hits])


def _decoded(batch: Batch) -> Iterator[tuple[str, Record, np.ndarray | None]]:
    """(store key, decoded record, vector) of each record of a batch as the store gave it."""
    keys = [rec.id for rec in batch.records]
    for key, (rec, vec) in zip(keys, from_store(batch), strict=True):
        yield key, rec, vec


class TableReader:
    """Read-back statements on one table, through a connection the sink owns (autocommit)."""

    def __init__(self, schema: str, table: str, where: str) -> None:
        self.schema = schema
        self.name = table
        self.table = qualified(schema, table)
        self.edges = qualified(schema, table + "_edges")
        self.where = where
        self._select: str | None = None

    def _columns(self, conn: psycopg.Connection[Any]) -> str:
        """The select list of the table (inspected once it exists)."""
        if self._select is None:
            info = inspect(conn, self.schema, self.name)
            if not info.exists:
                raise UsageError(f"{self.where}: no such table", hint="run the recipe that writes it first")
            if info.missing or info.vector_send is None:
                what = ", ".join(info.missing) or "embedding of type vector"
                raise UsageError(f"{self.where}: not a table written by vexrun (no column {what})")
            self._select = select_list(info.vector_send)
        return self._select

    def _keys(self, ids: Sequence[str]) -> list[str]:
        keys = dict.fromkeys(store_id(rid, CAPABILITIES) for rid in ids)
        return [k for k in keys if _storable(k)]

    def fetch(self, conn: psycopg.Connection[Any], ids: Sequence[str], namespace: str | None) -> Batch:
        import psycopg

        keys = self._keys(ids)
        if not keys:
            return Batch(records=[])
        select = self._columns(conn)
        decoder = Decoder(self.where)
        sql = f"SELECT {select} FROM {self.table} WHERE id = ANY(%s)" + (
            " AND namespace = %s" if namespace is not None else ""
        )
        found: dict[str, tuple[Record, np.ndarray | None]] = {}
        try:
            for start in range(0, len(keys), CHUNK):
                part = keys[start : start + CHUNK]
                params: tuple[Any, ...] = (part,) if namespace is None else (part, namespace)
                rows = conn.execute(sql, params, binary=True).fetchall()
                if rows:
                    for key, rec, vec in _decoded(decoder.batch(rows)):
                        found[key] = (rec, vec)
        except psycopg.Error as exc:
            raise map_error(exc, self.where) from None
        return _in_order(found, ids)

    def scan(self, conn: psycopg.Connection[Any], batch_size: int) -> Iterator[Batch]:
        """Every row in the heap's order (the order written, for a table a run created and filled) through a
        server-side cursor, in batches of ``batch_size``, decoded. Synchronised scans are off: another scan of
        the table must not make this one start in the middle."""
        import psycopg

        select = self._columns(conn)
        decoder = Decoder(self.where)
        try:
            with conn.transaction():
                conn.execute("SET LOCAL synchronize_seqscans = off")
                with conn.cursor(name="vexrun_scan", binary=True) as cur:
                    cur.itersize = batch_size
                    cur.execute(f"SELECT {select} FROM {self.table}")  # noqa: S608 - quoted identifiers
                    while rows := cur.fetchmany(batch_size):
                        yield from_store(decoder.batch(rows))
        except psycopg.Error as exc:
            raise map_error(exc, self.where) from None

    def delete(self, conn: psycopg.Connection[Any], ids: Sequence[str], namespace: str | None) -> int:
        """Delete the rows (and the edges that start or end at them) in one transaction per chunk."""
        import psycopg

        keys = self._keys(ids)
        if not keys:
            return 0
        self._columns(conn)
        sql = f"DELETE FROM {self.table} WHERE id = ANY(%s)" + (" AND namespace = %s" if namespace is not None else "")
        deleted = 0
        try:
            has_edges = conn.execute("SELECT to_regclass(%s)", (self.edges,)).fetchone() not in (None, (None,))
            for start in range(0, len(keys), CHUNK):
                part = keys[start : start + CHUNK]
                with conn.transaction():
                    params: tuple[Any, ...] = (part,) if namespace is None else (part, namespace)
                    gone = [row[0] for row in conn.execute(sql + " RETURNING id", params).fetchall()]
                    deleted += len(gone)
                    if has_edges and gone:
                        conn.execute(f"DELETE FROM {self.edges} WHERE src = ANY(%s) OR dst = ANY(%s)", (gone, gone))
        except psycopg.Error as exc:
            raise map_error(exc, self.where) from None
        return deleted

    def count(self, conn: psycopg.Connection[Any], namespace: str | None) -> int:
        import psycopg

        self._columns(conn)
        sql = f"SELECT count(*) FROM {self.table}" + (" WHERE namespace = %s" if namespace is not None else "")
        try:
            row = conn.execute(sql, (namespace,) if namespace is not None else ()).fetchone()
        except psycopg.Error as exc:
            raise map_error(exc, self.where) from None
        return int(row[0]) if row else 0

    def counts(self, conn: psycopg.Connection[Any]) -> dict[str | None, int]:
        """Records per namespace (None: without one), in one scan of the table where a :meth:`count` per
        namespace scans it once each (a 100k-record table of 384-d vectors: 0.04 s a scan)."""
        import psycopg

        self._columns(conn)
        try:
            rows = conn.execute(f"SELECT namespace, count(*) FROM {self.table} GROUP BY namespace").fetchall()
        except psycopg.Error as exc:
            raise map_error(exc, self.where) from None
        return {ns: int(n) for ns, n in rows}

    def namespaces(self, conn: psycopg.Connection[Any]) -> list[str]:
        """Distinct namespaces. With the ``(namespace, id)`` index a finished run builds, a loose index scan:
        one index probe per namespace, whatever the table's size; without it (a run still loading), one
        sequential scan with a hash aggregate."""
        import psycopg

        self._columns(conn)
        wanted = index_name(self.name, "namespace")[1:-1].replace('""', '"')
        indexed = wanted in (inspect(conn, self.schema, self.name).indexes or {})
        if indexed:
            sql = (
                "WITH RECURSIVE ns(v) AS ("
                f"(SELECT namespace FROM {self.table} WHERE namespace IS NOT NULL ORDER BY namespace LIMIT 1) "
                f"UNION ALL SELECT (SELECT namespace FROM {self.table} WHERE namespace > ns.v "
                "ORDER BY namespace LIMIT 1) FROM ns WHERE ns.v IS NOT NULL"
                ") SELECT v FROM ns WHERE v IS NOT NULL"
            )
        else:
            sql = f"SELECT DISTINCT namespace FROM {self.table} WHERE namespace IS NOT NULL"
        try:
            rows = conn.execute(sql).fetchall()
        except psycopg.Error as exc:
            raise map_error(exc, self.where) from None
        return sorted(str(row[0]) for row in rows)
