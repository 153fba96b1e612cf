"""Making LangGraph's tables the way LangGraph makes them: stock ``PostgresStore.setup()`` with the index config
a run implies, so the ``store_migrations`` / ``vector_migrations`` rows are the ones LangGraph expects and a
later ``setup()`` by the app finds nothing left to do."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ...errors import InvalidInput, UsageError
from .queries import OPS

if TYPE_CHECKING:
    import psycopg

__all__ = ["index_config", "run_setup"]

_INSTALL = "pip install 'vexrun[langgraph]'"


def _no_embedding(texts: list[str]) -> list[list[float]]:
    """The ``embed`` of the index config vexrun runs ``setup()`` with: vexrun brings its own vectors."""
    raise UsageError("vexrun's LangGraph store was asked to embed text; it only writes precomputed vectors")


def index_config(
    dims: int,
    text_field: str,
    metric: str,
    kind: str,
    vector_type: str,
    *,
    m: int = 16,
    ef_construction: int = 64,
    lists: int | None = None,
) -> dict[str, Any]:
    """LangGraph's ``PostgresIndexConfig`` for vectors of ``dims``: the text field indexed, the distance, the ANN
    index kind and its parameters. ``kind`` 'flat' makes no index (setup() skips that migration)."""
    ann: dict[str, Any] = {"kind": kind, "vector_type": vector_type}
    if kind == "hnsw":
        ann.update(m=m, ef_construction=ef_construction)
    elif kind == "ivfflat" and lists:
        ann["nlist"] = lists
    return {
        "dims": int(dims),
        "embed": _no_embedding,
        "fields": [text_field],
        "distance_type": OPS[metric][1],
        "ann_index_config": ann,
    }


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """LangGraph logs a failed migration (with its SQL) at error level; vexrun reports the failure itself."""
    log = logging.getLogger("langgraph.store.postgres.base")
    before = log.disabled
    log.disabled = True
    try:
        yield
    finally:
        log.disabled = before


def run_setup(conn: psycopg.Connection[Any], index: dict[str, Any] | None) -> None:
    """``PostgresStore(conn, index=index).setup()`` on an autocommit connection (its CREATE INDEX CONCURRENTLY
    needs one). psycopg errors propagate; a config LangGraph refuses is InvalidInput."""
    try:
        from langgraph.store.postgres import PostgresStore
    except ImportError:
        raise UsageError(
            "the langgraph-postgres target needs LangGraph's PostgresStore (langgraph-checkpoint-postgres)",
            hint=_INSTALL,
        ) from None
    try:
        store = PostgresStore(conn, index=index)  # type: ignore[arg-type]
    except ValueError as exc:
        raise InvalidInput(f"LangGraph refused the index config: {exc}") from None
    with _quiet():
        try:
            store.setup()
        except ValueError as exc:
            raise InvalidInput(f"LangGraph refused the index config: {exc}") from None
