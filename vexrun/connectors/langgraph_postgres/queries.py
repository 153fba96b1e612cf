"""The SQL vexrun runs on LangGraph's tables: staging and upserting a batch, and reading items back (pages,
fetch by id, count, namespaces, delete, nearest neighbours). Statements name the tables unqualified, as
LangGraph does, so a search_path in the dsn moves both to another schema."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import InvalidInput
from ..base import Hit
from ..pgvector.codec import json_loads, render_timestamp
from ..pgvector.search import vector_literal
from .codec import STAGE_COLUMNS
from .layout import Namespaces, StoreInfo, record_from

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "OPS",
    "STAGE",
    "Reader",
    "stage_sql",
    "upsert_store_sql",
    "upsert_vectors_sql",
]

STAGE = "vexrun_langgraph_stage"
#: metric → (pgvector distance operator, LangGraph's distance_type)
OPS: dict[str, tuple[str, str]] = {
    "cosine": ("<=>", "cosine"),
    "l2": ("<->", "l2"),
    "dot": ("<#>", "inner_product"),
}


def stage_sql() -> str:
    """A temporary table a batch is COPied into, emptied at each commit (the vector without fixed dims, so a
    vector of other dims is caught by the store's column, never by the COPY)."""
    return (
        f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} (prefix text, key text, value jsonb, created_at timestamptz, "
        "embedding vector) ON COMMIT DELETE ROWS"
    )


def copy_sql() -> str:
    return f"COPY {STAGE} ({', '.join(STAGE_COLUMNS)}) FROM STDIN (FORMAT BINARY)"


def upsert_store_sql(ttl_minutes: float | None) -> str:
    """Insert the staged items; update an item only when its value (or TTL) changed, so an identical re-write
    touches nothing (``updated_at`` keeps the last real change). A record without a created_at gets now()."""
    if ttl_minutes is None:
        expires, ttl = "NULL::timestamptz", "NULL::int"
    else:
        expires = f"now() + interval '{float(ttl_minutes) * 60:.3f} seconds'"
        ttl = f"{float(ttl_minutes)!r}::float8::int"
    return (
        "INSERT INTO store AS t (prefix, key, value, created_at, updated_at, expires_at, ttl_minutes) "
        f"SELECT prefix, key, value, COALESCE(created_at, now()), now(), {expires}, {ttl} FROM {STAGE} "
        "ON CONFLICT (prefix, key) DO UPDATE SET value = EXCLUDED.value, created_at = EXCLUDED.created_at, "
        "updated_at = now(), expires_at = EXCLUDED.expires_at, ttl_minutes = EXCLUDED.ttl_minutes "
        "WHERE (t.value, t.ttl_minutes) IS DISTINCT FROM (EXCLUDED.value, EXCLUDED.ttl_minutes)"
    )


def upsert_vectors_sql() -> str:
    """Insert or replace the staged vectors under field_name %(field)s (unchanged ones are not touched)."""
    return (
        "INSERT INTO store_vectors AS v (prefix, key, field_name, embedding, created_at, updated_at) "
        f"SELECT prefix, key, %(field)s, embedding, now(), now() FROM {STAGE} WHERE embedding IS NOT NULL "
        "ON CONFLICT (prefix, key, field_name) DO UPDATE SET embedding = EXCLUDED.embedding, updated_at = now() "
        "WHERE v.embedding IS DISTINCT FROM EXCLUDED.embedding"
    )


def drop_stale_vectors_sql() -> str:
    """A record written again without a vector loses the vector it had under field_name %(field)s."""
    return (
        f"DELETE FROM store_vectors v USING {STAGE} s WHERE s.embedding IS NULL AND v.prefix = s.prefix "
        "AND v.key = s.key AND v.field_name = %(field)s"
    )


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Reader:
    """Reads items back from an open connection: the queries of the source and of the sink's read-back."""

    def __init__(self, spaces: Namespaces, text_field: str, info: StoreInfo, where: str) -> None:
        self.spaces = spaces
        self.text_field = text_field
        self.info = info
        self.where = where

    def _vector_expr(self, alias: str = "v") -> str:
        """The binary form of a vector column as ``vector`` (a halfvec is cast), via the type's send function."""
        schema = _ident(self.info.type_schema or "public")
        col = f"{alias}.embedding"
        if self.info.vector_type != "vector":
            col += f"::{schema}.vector"
        return f"{schema}.vector_send({col})"

    def select(self) -> str:
        """The select list of :class:`~.codec.Decoder` over ``store s``: the item and the vector of the text
        field (else LangGraph's whole-value field '$', else any, by field_name)."""
        vec = "NULL::bytea"
        if self.info.vectors:
            vec = (
                f"(SELECT {self._vector_expr()} FROM store_vectors v WHERE v.prefix = s.prefix AND v.key = s.key "
                "ORDER BY v.field_name = %(field)s DESC, v.field_name = '$' DESC, v.field_name LIMIT 1)"
            )
        return f"s.prefix, s.key, s.value::text, s.created_at, {vec}"

    def page(
        self, conn: psycopg.Connection[Any], namespace: str | None, after: tuple[str, str] | None, size: int
    ) -> list[Any]:
        """One page of items in (prefix, key) order after ``after``."""
        cond, args = self.spaces.condition(namespace, "s.prefix")
        if after is not None:
            cond += " AND (s.prefix, s.key) > (%(ap)s, %(ak)s)"
            args = {**args, "ap": after[0], "ak": after[1]}
        sql = f"SELECT {self.select()} FROM store s WHERE {cond} ORDER BY s.prefix, s.key LIMIT %(n)s"
        return conn.execute(sql, {**args, "field": self.text_field, "n": int(size)}, binary=True).fetchall()

    def fetch(self, conn: psycopg.Connection[Any], ids: Sequence[str], namespace: str | None) -> list[Any]:
        """The rows of these keys in the order asked, a key asked twice twice (one row per key: the first
        namespace by name when several hold it)."""
        cond, args = self.spaces.condition(namespace, "s.prefix")
        sql = (
            f"SELECT DISTINCT ON (s.key) {self.select()} FROM store s WHERE s.key = ANY(%(ids)s) AND {cond} "
            "ORDER BY s.key, s.prefix"
        )
        if not ids:
            return []
        rows = conn.execute(sql, {**args, "ids": list(set(ids)), "field": self.text_field}, binary=True).fetchall()
        by_key = {row[1]: row for row in rows}
        return [by_key[i] for i in ids if i in by_key]

    def count(self, conn: psycopg.Connection[Any], namespace: str | None) -> int:
        cond, args = self.spaces.condition(namespace)
        row = conn.execute(f"SELECT count(*) FROM store WHERE {cond}", args).fetchone()
        return int(row[0]) if row else 0

    def namespaces(self, conn: psycopg.Connection[Any]) -> list[str]:
        cond, args = self.spaces.condition(None)
        rows = conn.execute(f"SELECT DISTINCT prefix FROM store WHERE {cond}", args).fetchall()
        names = (self.spaces.namespace(str(r[0])) for r in rows)
        return sorted(n for n in names if n is not None)

    def delete(self, conn: psycopg.Connection[Any], ids: Sequence[str], namespace: str | None) -> int:
        """Delete the items (their vectors go with them: ON DELETE CASCADE); how many of the ids were held."""
        cond, args = self.spaces.condition(namespace)
        rows = conn.execute(
            f"DELETE FROM store WHERE key = ANY(%(ids)s) AND {cond} RETURNING key", {**args, "ids": list(ids)}
        ).fetchall()
        return len({r[0] for r in rows})

    def search(
        self, conn: psycopg.Connection[Any], vector: np.ndarray, k: int, namespace: str | None, metric: str
    ) -> list[Hit]:
        """The ``k`` nearest items, the query LangGraph's own search runs (``ORDER BY`` the distance over
        store_vectors joined to store), one hit per item."""
        query = np.asarray(vector, dtype=np.float32).ravel()
        if self.info.dims is not None and query.shape[0] != self.info.dims:
            raise InvalidInput(
                f"{self.where}: the query has {query.shape[0]} dims, the store holds vector({self.info.dims})"
            )
        op = OPS.get(metric, OPS["cosine"])[0]
        vt = f"{_ident(self.info.type_schema or 'public')}.{_ident(self.info.vector_type or 'vector')}"
        cond, args = self.spaces.condition(namespace, "s.prefix")
        sql = (
            f"SELECT s.prefix, s.key, s.value::text, s.created_at, v.embedding {op} %(q)s::{vt} AS d, "
            f"1 - (v.embedding <=> %(q)s::{vt}) AS cos FROM store_vectors v "
            f"JOIN store s ON s.prefix = v.prefix AND s.key = v.key WHERE {cond} "
            f"ORDER BY v.embedding {op} %(q)s::{vt} LIMIT %(n)s"
        )
        version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        parts = tuple(int(p) for p in str(version[0]).split(".")[:2] if p.isdigit()) if version else ()
        with conn.transaction():
            conn.execute(f"SET LOCAL hnsw.ef_search = {max(40, min(int(k) * 4, 1000))}")
            if parts >= (0, 8):
                conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            rows = conn.execute(sql, {**args, "q": vector_literal(query), "n": int(k) * 2}).fetchall()
        rows.sort(key=lambda r: float(r[4]))  # relaxed_order may return neighbours slightly out of order
        hits: list[Hit] = []
        seen: set[tuple[str, str]] = set()
        for prefix, key, value, created, dist, cos in rows:
            if (prefix, key) in seen:
                continue  # an item LangGraph indexed under several fields
            seen.add((prefix, key))
            rec = record_from(key, self.spaces.namespace(prefix), json_loads(value), created, self.text_field)
            cosine = None if cos is None else float(cos)
            score = {"cosine": cosine, "dot": -float(dist), "l2": -float(dist)}.get(metric, cosine)
            hits.append(
                Hit(
                    rank=len(hits) + 1,
                    id=key,
                    score=float(score if score is not None else 0.0),
                    text=rec.text,
                    namespace=rec.namespace,
                    metadata=rec.metadata,
                    created_at=rec.created_at
                    if rec.created_at is not None or created is None
                    else render_timestamp(created),
                    cosine=cosine,
                    vector_rank=len(hits) + 1,
                )
            )
            if len(hits) == k:
                break
        return hits
