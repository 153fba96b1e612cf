"""The embedded local memory store (``type: sqlite``, alias ``local``), registered under this module's
name in :mod:`vexrun.builtins`; the implementation lives in :mod:`vexrun.connectors.sqlite`."""

from __future__ import annotations

from .sqlite import SCHEMA_VERSION, SqliteSink, SqliteSinkConfig, SqliteSource, SqliteSourceConfig

__all__ = ["SCHEMA_VERSION", "SqliteSink", "SqliteSinkConfig", "SqliteSource", "SqliteSourceConfig"]
