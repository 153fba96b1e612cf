"""Chroma: a server (``url``, chromadb's HttpClient) or a local directory (``path``, PersistentClient), always
with vexrun's own embeddings. The SDK is imported only when a source or sink opens."""

from __future__ import annotations

from .config import ChromaSinkConfig, ChromaSourceConfig
from .sink import ChromaSink
from .source import ChromaSource

__all__ = ["ChromaSink", "ChromaSinkConfig", "ChromaSource", "ChromaSourceConfig"]
