"""The table vexrun writes, as SQL: its DDL, what a table already holds, and the binary-result loaders.

::

    id           text COLLATE "C" PRIMARY KEY   the record id; upserts are keyed on it, readers page by it
    namespace    text                           btree (namespace, id) built after a load
    text         text
    embedding    vector(dims)                   HNSW (metric's opclass) built after a load
    metadata     jsonb
    created_at   timestamptz
    model, source_store, modality, vex_version  text
    score        double precision
    extra        jsonb                          unknown top-level fields of the record
    _vexrun      jsonb                          what a column cannot give back exactly (see codec)
    updated_at   timestamptz                    the last time the row changed

The table's comment holds ``{"vexrun": {"metric": ..., "model": ..., "embedder_spec": ...}}``. Edges between
records, when a run makes any, go to ``<table>_edges`` (src, dst, type primary key; weight, metadata jsonb,
updated_at).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from .codec import COLUMNS

if TYPE_CHECKING:
    import psycopg

__all__ = ["OPS", "TableInfo", "create_sql", "ident", "index_name", "inspect", "upsert_sql"]

#: metric → (distance operator, HNSW opclass)
OPS: dict[str, tuple[str, str]] = {
    "cosine": ("<=>", "vector_cosine_ops"),
    "l2": ("<->", "vector_l2_ops"),
    "dot": ("<#>", "vector_ip_ops"),
}
#: pgvector's HNSW indexes ``vector`` columns of at most this many dims.
HNSW_MAX_DIMS = 2000


def ident(name: str) -> str:
    """A quoted SQL identifier (any text without NUL)."""
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    return f"{ident(schema)}.{ident(table)}"


def index_name(table: str, kind: str) -> str:
    """A quoted index name unique to the table (PostgreSQL truncates names to 63 bytes)."""
    digest = hashlib.blake2s(table.encode(), digest_size=4).hexdigest()
    short = table.encode()[:40].decode("utf-8", "ignore")
    return ident(f"{short}_{digest}_{kind}")


def create_sql(schema: str, table: str, dims: int | None) -> str:
    vec = f"vector({int(dims)})" if dims else "vector"
    return f"""CREATE TABLE {qualified(schema, table)} (
        id           text COLLATE "C" PRIMARY KEY,
        namespace    text,
        text         text,
        embedding    {vec},
        metadata     jsonb,
        created_at   timestamptz,
        model        text,
        score        double precision,
        source_store text,
        modality     text,
        vex_version  text,
        extra        jsonb,
        _vexrun      jsonb,
        updated_at   timestamptz NOT NULL DEFAULT now()
    )"""


def upsert_sql(schema: str, table: str, stage: str) -> str:
    """Insert the staged rows; update a row only when something changed (an identical re-write touches
    nothing: no new row version, no index churn, ``updated_at`` keeps the last real change)."""
    cols = ", ".join(ident(c) for c in COLUMNS)
    rest = [c for c in COLUMNS if c != "id"]
    sets = ", ".join(f"{ident(c)} = EXCLUDED.{ident(c)}" for c in rest)
    old = ", ".join(f"t.{ident(c)}" for c in rest)
    new = ", ".join(f"EXCLUDED.{ident(c)}" for c in rest)
    return (
        f"INSERT INTO {qualified(schema, table)} AS t ({cols}) SELECT {cols} FROM {ident(stage)} "
        f"ON CONFLICT (id) DO UPDATE SET {sets}, updated_at = now() WHERE ({old}) IS DISTINCT FROM ({new})"
    )


@dataclass
class TableInfo:
    """What an existing table holds, read without writing anything."""

    exists: bool
    columns: tuple[str, ...] = ()
    #: the embedding's declared dims (None: no fixed dims, or no table)
    dims: int | None = None
    meta: dict[str, Any] | None = None
    #: names of the indexes on the table → their definitions
    indexes: dict[str, str] | None = None
    #: the send function of the embedding's type (binary form), schema-qualified when not on the search path
    vector_send: str | None = None

    @property
    def missing(self) -> list[str]:
        return [c for c in COLUMNS if c not in self.columns]


def inspect(conn: psycopg.Connection[Any], schema: str, table: str) -> TableInfo:
    cur = conn.execute(
        "SELECT c.oid, obj_description(c.oid, 'pg_class') FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')",
        (schema, table),
    )
    row = cur.fetchone()
    if row is None:
        return TableInfo(exists=False)
    oid, comment = row
    cols = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.atttypmod, t.typname, t.typsend::regproc::text "
        "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped",
        (oid,),
    ).fetchall()
    dims = None
    send = None
    for name, _, typmod, typname, typsend in cols:
        if name == "embedding" and typname == "vector":
            send = str(typsend)
            if typmod and typmod > 0:
                dims = int(typmod)
    meta = None
    if comment:
        try:
            parsed = orjson.loads(comment)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("vexrun"), dict):
            meta = parsed["vexrun"]
    indexes = dict(
        conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s", (schema, table)
        ).fetchall()
    )
    return TableInfo(
        exists=True, columns=tuple(c[0] for c in cols), dims=dims, meta=meta, indexes=indexes, vector_send=send
    )
