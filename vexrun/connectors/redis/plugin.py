"""Redis as a source and a sink (gathered by :mod:`vexrun.builtins`). Specs and capabilities only: no SDK is
imported."""

from __future__ import annotations

from ...pluginspec import PluginSpec, store_specs
from ..base import Capabilities

__all__ = ["CAPABILITIES", "PLUGINS"]

CAPABILITIES = Capabilities(
    # a key is prefix + id: any id fits as it is
    ids="any",
    max_dims=32768,
    metrics=("cosine", "l2", "dot"),
    # metadata is kept as JSON text (hash) or a JSON object with its exact text beside it (json): lossless
    metadata="nested",
    metadata_nulls=True,
    namespaces=True,
    # FLOAT32 blobs (or float32 numbers in JSON) come back bit-exact
    vectors="float32",
    needs_vectors=True,
    search=True,
)

PLUGINS: list[PluginSpec] = store_specs(
    "redis",
    "vexrun.connectors.redis",
    "Redis",
    "Redis with vector search (Redis Stack / 8 / Cloud): HASH or JSON under a key prefix, HNSW or FLAT index",
    CAPABILITIES,
    "redis",
    ("redis",),
)
