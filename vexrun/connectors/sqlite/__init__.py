"""The embedded local memory store: one SQLite file (WAL) with float32 vectors, an FTS5 index (BM25) over
the text, and edges. See :mod:`.schema` for the file format, and :mod:`.search` to query it."""

from __future__ import annotations

from .schema import SCHEMA_VERSION, open_store
from .sink import SqliteSink, SqliteSinkConfig
from .source import SqliteSource, SqliteSourceConfig

__all__ = ["SCHEMA_VERSION", "SqliteSink", "SqliteSinkConfig", "SqliteSource", "SqliteSourceConfig", "open_store"]
