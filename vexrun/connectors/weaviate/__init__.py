"""Weaviate through weaviate-client v4 (gRPC for data, REST for the schema and tenants). The SDK is imported
only when a source or sink opens."""

from __future__ import annotations

from .config import WeaviateSinkConfig, WeaviateSourceConfig
from .sink import WeaviateSink
from .source import WeaviateSource

__all__ = ["WeaviateSink", "WeaviateSinkConfig", "WeaviateSource", "WeaviateSourceConfig"]
