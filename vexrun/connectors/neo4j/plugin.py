"""Neo4j (any Bolt server) as a source and a sink (gathered by :mod:`vexrun.builtins`). Specs and capabilities
only: no SDK is imported."""

from __future__ import annotations

from ...pluginspec import PluginSpec, store_specs
from ..base import Capabilities

__all__ = ["CAPABILITIES", "PLUGINS"]

CAPABILITIES = Capabilities(
    ids="any",
    metrics=("cosine", "l2"),
    # node properties hold scalars and lists of one scalar type; the rest (nulls, mixed or nested lists, maps)
    # is stored as JSON text under the _vexrun_json convention
    metadata="lists",
    list_types_uniform=True,
    metadata_nulls=False,
    namespaces=True,
    vectors="float32",
    needs_vectors=False,
    search=True,
    edges=True,
)

PLUGINS: list[PluginSpec] = store_specs(
    "neo4j",
    "vexrun.connectors.neo4j",
    "Neo4j",
    "Neo4j or any Bolt server: memories as nodes, edges as relationships",
    CAPABILITIES,
    "neo4j",
    ("neo4j",),
)
