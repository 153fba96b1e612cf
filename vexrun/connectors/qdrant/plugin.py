"""Qdrant as a source and a sink (gathered by :mod:`vexrun.builtins`). Specs and capabilities only: no SDK is
imported."""

from __future__ import annotations

from ...pluginspec import PluginSpec, store_specs
from ..base import Capabilities

__all__ = ["CAPABILITIES", "PLUGINS"]

CAPABILITIES = Capabilities(
    ids="uuid-or-uint",
    max_dims=65536,
    metrics=("cosine", "dot", "l2"),
    metadata="nested",
    namespaces=True,
    # one write of up to 1,024 points is sent as requests of 256 (Qdrant's advice: 64-256 per upsert), up to
    # `parallel` of them in flight against a server, one after the other in local mode
    max_batch_records=1024,
    max_batch_bytes=32 * 1024 * 1024,
    vectors="normalized",
    needs_vectors=True,
    search=True,
)

PLUGINS: list[PluginSpec] = store_specs(
    "qdrant",
    "vexrun.connectors.qdrant",
    "Qdrant",
    "Qdrant server (gRPC) or local mode (path)",
    CAPABILITIES,
    "qdrant",
    ("qdrant_client",),
)
