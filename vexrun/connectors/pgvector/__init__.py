"""PostgreSQL + pgvector (``type: pgvector``, aliases ``postgres``, ``postgresql``, ``supabase``): a source and
a sink over one table per collection. See :mod:`.table` for the layout, :mod:`.codec` for how every record
field round-trips, :mod:`.server` for ``dsn: embedded``. psycopg is imported only when a connector runs."""

from __future__ import annotations

from .config import PgvectorSinkConfig, PgvectorSourceConfig
from .sink import PgvectorSink
from .source import PgvectorSource

__all__ = ["PgvectorSink", "PgvectorSinkConfig", "PgvectorSource", "PgvectorSourceConfig"]
