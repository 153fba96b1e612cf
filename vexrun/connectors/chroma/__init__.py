"""Chroma: a server (``url``, chromadb's HttpClient) or a local directory (``path``, PersistentClient), always
with vexrun's own embeddings. The SDK is imported only when a source or sink opens."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lazy import lazy_exports

if TYPE_CHECKING:
    from .config import ChromaSinkConfig, ChromaSourceConfig
    from .sink import ChromaSink
    from .source import ChromaSource

__all__ = ["ChromaSink", "ChromaSinkConfig", "ChromaSource", "ChromaSourceConfig"]

# the sink and source modules are imported when a run uses them, not when the plugins are listed
__getattr__, __dir__ = lazy_exports(
    __name__,
    {"ChromaSinkConfig": ".config", "ChromaSourceConfig": ".config", "ChromaSink": ".sink", "ChromaSource": ".source"},
)
