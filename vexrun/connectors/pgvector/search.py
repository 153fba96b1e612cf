"""Nearest neighbours in a vexrun table, by the metric the table was made for (the HNSW index when there is
one; iterative index scans keep a namespace filter from starving the result)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import InvalidInput, UsageError
from ..base import Hit
from .codec import json_loads, render_timestamp
from .table import OPS, inspect, qualified

if TYPE_CHECKING:
    import psycopg

__all__ = ["search_table", "vector_literal"]


def vector_literal(vector: np.ndarray) -> str:
    """pgvector's text form of a float32 vector; each value's shortest repr parses back to the same float32."""
    return "[" + ",".join(repr(float(x)) for x in np.asarray(vector, dtype=np.float32)) + "]"


def search_table(
    conn: psycopg.Connection[Any],
    schema: str,
    table: str,
    where: str,
    vector: np.ndarray | None,
    k: int,
    namespace: str | None,
) -> list[Hit]:
    """The ``k`` nearest records to ``vector`` (``Hit.rank`` from 1; ``cosine`` always set; ``score`` is the
    cosine for cosine tables, the inner product for dot, the negated distance for l2)."""
    import psycopg

    if vector is None:
        raise UsageError(f"{where}: searching pgvector needs a query vector", hint="add an embed: section")
    info = inspect(conn, schema, table)
    if not info.exists:
        raise UsageError(f"{where}: no such table", hint="run the recipe first")
    query = np.asarray(vector, dtype=np.float32).ravel()
    if info.dims is not None and query.shape[0] != info.dims:
        raise InvalidInput(f"{where}: the query has {query.shape[0]} dims, the table holds vector({info.dims})")
    metric = str((info.meta or {}).get("metric") or "cosine")
    op = OPS.get(metric, OPS["cosine"])[0]
    qv = vector_literal(query)
    filt = "embedding IS NOT NULL" + (" AND namespace = %(ns)s" if namespace is not None else "")
    sql = (
        f"SELECT id, text, namespace, metadata, created_at, _vexrun, embedding {op} %(q)s::vector AS d, "
        f"1 - (embedding <=> %(q)s::vector) AS cos FROM {qualified(schema, table)} "
        f"WHERE {filt} ORDER BY embedding {op} %(q)s::vector LIMIT %(k)s"
    )
    try:
        row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        version = tuple(int(p) for p in str(row[0]).split(".")[:2] if p.isdigit()) if row else ()
        with conn.transaction():
            conn.execute(f"SET LOCAL hnsw.ef_search = {max(40, min(int(k) * 2, 1000))}")
            if version >= (0, 8):
                conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            rows = conn.execute(sql, {"q": qv, "ns": namespace, "k": int(k)}).fetchall()
    except psycopg.Error as exc:
        from .conn import map_error

        raise map_error(exc, where) from None
    rows.sort(key=lambda r: float(r[6]))  # relaxed_order may return neighbours slightly out of order
    hits: list[Hit] = []
    for rank, (rid, text, ns, meta, created, reserved, dist, cos) in enumerate(rows, start=1):
        created_text = None if created is None else render_timestamp(created)
        if reserved:
            if "metadata" in reserved:
                meta = json_loads(reserved["metadata"])
            created_text = reserved.get("created_at", created_text)
        cosine = None if cos is None else float(cos)
        score = {"cosine": cosine, "dot": -float(dist), "l2": -float(dist)}.get(metric, cosine)
        hits.append(
            Hit(
                rank=rank,
                id=rid,
                score=float(score if score is not None else 0.0),
                text=text,
                namespace=ns,
                metadata=meta,
                created_at=created_text,
                cosine=cosine,
                vector_rank=rank,
            )
        )
    return hits
