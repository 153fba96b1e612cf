"""LanceDB, embedded: a directory (or object storage) of Lance tables, written with Arrow batches and read as
a pinned table version. The SDK is imported only when a source or sink opens (see :mod:`.codec` for the table
layout vexrun writes)."""

from __future__ import annotations

from .config import LanceDBSinkConfig, LanceDBSourceConfig
from .sink import LanceDBSink
from .source import LanceDBSource

__all__ = ["LanceDBSink", "LanceDBSinkConfig", "LanceDBSource", "LanceDBSourceConfig"]
