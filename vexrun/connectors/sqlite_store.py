"""The embedded local memory store under its former import path: it lives in :mod:`vexrun.connectors.sqlite`
(registered by its ``plugin`` module)."""

from __future__ import annotations

from .sqlite import SCHEMA_VERSION, SqliteSink, SqliteSinkConfig, SqliteSource, SqliteSourceConfig

__all__ = ["SCHEMA_VERSION", "SqliteSink", "SqliteSinkConfig", "SqliteSource", "SqliteSourceConfig"]
