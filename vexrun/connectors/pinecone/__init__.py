"""Pinecone: an index reached by its host or by its name on the control plane, through the official
``pinecone`` SDK (REST). The SDK is imported only when a source or sink opens."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lazy import lazy_exports

if TYPE_CHECKING:
    from .config import PineconeSinkConfig, PineconeSourceConfig
    from .sink import PineconeSink
    from .source import PineconeSource

__all__ = ["PineconeSink", "PineconeSinkConfig", "PineconeSource", "PineconeSourceConfig"]

# the sink and source modules are imported when a run uses them, not when the plugins are listed
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "PineconeSinkConfig": ".config",
        "PineconeSourceConfig": ".config",
        "PineconeSink": ".sink",
        "PineconeSource": ".source",
    },
)
