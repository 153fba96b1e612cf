"""Chroma as a source and a sink (gathered by :mod:`vexrun.builtins`). Specs and capabilities only: no SDK is
imported."""

from __future__ import annotations

from ...pluginspec import PluginSpec, store_specs
from ..base import Capabilities

__all__ = ["CAPABILITIES", "PLUGINS"]

CAPABILITIES = Capabilities(
    ids="any",
    metrics=("cosine", "l2", "dot"),
    # Chroma 1.5 keeps non-empty lists of one scalar type natively; the sink JSON-encodes the rest itself
    # (empty lists, integers beyond 64 bits) under the same _vexrun_json convention
    metadata="lists",
    list_types_uniform=True,
    metadata_nulls=False,
    namespaces=True,
    max_batch_records=5000,
    # cosine collections return each value within 1 ulp of what was written (l2 / ip ones bit-exact)
    vectors="normalized",
    needs_vectors=True,
    search=True,
)

PLUGINS: list[PluginSpec] = store_specs(
    "chroma",
    "vexrun.connectors.chroma",
    "Chroma",
    "Chroma server (HttpClient) or a local directory",
    CAPABILITIES,
    "chroma",
    ("chromadb",),
    ("chromadb",),
)
