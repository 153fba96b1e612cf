"""Qdrant: a server (gRPC preferred, ``url``) or qdrant-client's local mode (``path``). The SDK is imported
only when a source or sink opens."""

from __future__ import annotations

from .config import QdrantSinkConfig, QdrantSourceConfig
from .sink import QdrantSink
from .source import QdrantSource

__all__ = ["QdrantSink", "QdrantSinkConfig", "QdrantSource", "QdrantSourceConfig"]
