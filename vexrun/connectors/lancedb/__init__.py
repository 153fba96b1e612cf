"""LanceDB, embedded: a directory (or object storage) of Lance tables, written with Arrow batches and read as
a pinned table version. The SDK is imported only when a source or sink opens (see :mod:`.codec` for the table
layout vexrun writes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lazy import lazy_exports

if TYPE_CHECKING:
    from .config import LanceDBSinkConfig, LanceDBSourceConfig
    from .sink import LanceDBSink
    from .source import LanceDBSource

__all__ = ["LanceDBSink", "LanceDBSinkConfig", "LanceDBSource", "LanceDBSourceConfig"]

# the sink and source modules are imported when a run uses them, not when the plugins are listed
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "LanceDBSinkConfig": ".config",
        "LanceDBSourceConfig": ".config",
        "LanceDBSink": ".sink",
        "LanceDBSource": ".source",
    },
)
