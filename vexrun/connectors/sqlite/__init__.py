"""The embedded local memory store: one SQLite file (WAL) with float32 vectors, an FTS5 index (BM25) over
the text, and edges. See :mod:`.schema` for the file format, and :mod:`.search` to query it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lazy import lazy_exports

if TYPE_CHECKING:
    from .schema import SCHEMA_VERSION, open_store
    from .sink import SqliteSink, SqliteSinkConfig
    from .source import SqliteSource, SqliteSourceConfig

__all__ = ["SCHEMA_VERSION", "SqliteSink", "SqliteSinkConfig", "SqliteSource", "SqliteSourceConfig", "open_store"]

# the sink and source modules are imported when a run uses them, not when the plugins are listed
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "SCHEMA_VERSION": ".schema",
        "open_store": ".schema",
        "SqliteSink": ".sink",
        "SqliteSinkConfig": ".sink",
        "SqliteSource": ".source",
        "SqliteSourceConfig": ".source",
    },
)
