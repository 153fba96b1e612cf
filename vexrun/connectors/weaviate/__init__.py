"""Weaviate through weaviate-client v4 (gRPC for data, REST for the schema and tenants). The SDK is imported
only when a source or sink opens."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lazy import lazy_exports

if TYPE_CHECKING:
    from .config import WeaviateSinkConfig, WeaviateSourceConfig
    from .sink import WeaviateSink
    from .source import WeaviateSource

__all__ = ["WeaviateSink", "WeaviateSinkConfig", "WeaviateSource", "WeaviateSourceConfig"]

# the sink and source modules are imported when a run uses them, not when the plugins are listed
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "WeaviateSinkConfig": ".config",
        "WeaviateSourceConfig": ".config",
        "WeaviateSink": ".sink",
        "WeaviateSource": ".source",
    },
)
