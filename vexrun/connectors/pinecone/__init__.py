"""Pinecone: an index reached by its host or by its name on the control plane, through the official
``pinecone`` SDK (REST). The SDK is imported only when a source or sink opens."""

from __future__ import annotations

from .config import PineconeSinkConfig, PineconeSourceConfig
from .sink import PineconeSink
from .source import PineconeSource

__all__ = ["PineconeSink", "PineconeSinkConfig", "PineconeSource", "PineconeSourceConfig"]
