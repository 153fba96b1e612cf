"""PostgreSQL + pgvector (``type: pgvector``, aliases ``postgres``, ``postgresql``, ``supabase``): a source and
a sink over one table per collection. See :mod:`.table` for the layout, :mod:`.codec` for how every record
field round-trips, :mod:`.server` for ``dsn: embedded``. psycopg is imported only when a connector runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lazy import lazy_exports

if TYPE_CHECKING:
    from .config import PgvectorSinkConfig, PgvectorSourceConfig
    from .sink import PgvectorSink
    from .source import PgvectorSource

__all__ = ["PgvectorSink", "PgvectorSinkConfig", "PgvectorSource", "PgvectorSourceConfig"]

# the sink and source modules are imported when a run uses them, not when the plugins are listed
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "PgvectorSinkConfig": ".config",
        "PgvectorSourceConfig": ".config",
        "PgvectorSink": ".sink",
        "PgvectorSource": ".source",
    },
)
