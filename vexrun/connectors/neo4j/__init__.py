"""Neo4j (or any server that speaks Bolt and Cypher): memories as nodes of one label, edges as relationships
between them. The SDK (the official ``neo4j`` driver) is imported only when a source or sink opens."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lazy import lazy_exports

if TYPE_CHECKING:
    from .config import Neo4jSinkConfig, Neo4jSourceConfig
    from .sink import Neo4jSink
    from .source import Neo4jSource

__all__ = ["Neo4jSink", "Neo4jSinkConfig", "Neo4jSource", "Neo4jSourceConfig"]

# the sink and source modules are imported when a run uses them, not when the plugins are listed
__getattr__, __dir__ = lazy_exports(
    __name__,
    {"Neo4jSinkConfig": ".config", "Neo4jSourceConfig": ".config", "Neo4jSink": ".sink", "Neo4jSource": ".source"},
)
