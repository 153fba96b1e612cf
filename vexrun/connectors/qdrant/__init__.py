"""Qdrant: a server (gRPC preferred, ``url``) or qdrant-client's local mode (``path``). The SDK is imported
only when a source or sink opens."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lazy import lazy_exports

if TYPE_CHECKING:
    from .config import QdrantSinkConfig, QdrantSourceConfig
    from .sink import QdrantSink
    from .source import QdrantSource

__all__ = ["QdrantSink", "QdrantSinkConfig", "QdrantSource", "QdrantSourceConfig"]

# the sink and source modules are imported when a run uses them, not when the plugins are listed
__getattr__, __dir__ = lazy_exports(
    __name__,
    {"QdrantSinkConfig": ".config", "QdrantSourceConfig": ".config", "QdrantSink": ".sink", "QdrantSource": ".source"},
)
