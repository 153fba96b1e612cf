"""LangGraph's ``PostgresStore`` (``type: langgraph-postgres``): a sink that writes LangGraph's own tables
(``store``, ``store_vectors``, made by its ``setup()``) with vexrun's vectors, so stock
``PostgresStore.search`` recalls the records, and a source that reads a store's items back as records. The
connection (a DSN, or ``dsn: embedded``) is the pgvector connector's. See :mod:`.layout` for how a record
becomes an item. psycopg and langgraph are imported only when a connector runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lazy import lazy_exports

if TYPE_CHECKING:
    from .config import LanggraphPostgresSinkConfig, LanggraphPostgresSourceConfig
    from .sink import LanggraphPostgresSink
    from .source import LanggraphPostgresSource

__all__ = [
    "LanggraphPostgresSink",
    "LanggraphPostgresSinkConfig",
    "LanggraphPostgresSource",
    "LanggraphPostgresSourceConfig",
]

# the sink and source modules are imported when a run uses them, not when the plugins are listed
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "LanggraphPostgresSinkConfig": ".config",
        "LanggraphPostgresSourceConfig": ".config",
        "LanggraphPostgresSink": ".sink",
        "LanggraphPostgresSource": ".source",
    },
)
