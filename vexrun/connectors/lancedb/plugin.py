"""LanceDB as a source and a sink (gathered by :mod:`vexrun.builtins`). Specs and capabilities only: no SDK is
imported."""

from __future__ import annotations

from ...pluginspec import PluginSpec, store_specs
from ..base import Capabilities

__all__ = ["CAPABILITIES", "PLUGINS"]

CAPABILITIES = Capabilities(
    # a string column: any id, as it is
    ids="any",
    metrics=("cosine", "l2", "dot"),
    # metadata is a JSON text column: anything a record holds round-trips (see .codec)
    metadata="nested",
    metadata_nulls=True,
    namespaces=True,
    # vectors are stored as they are (a fixed-size list of float32), never normalised
    vectors="float32",
    needs_vectors=True,
    search=True,
)

PLUGINS: list[PluginSpec] = store_specs(
    "lancedb",
    "vexrun.connectors.lancedb",
    "LanceDB",
    "LanceDB, embedded: a directory (or object storage) of Lance tables",
    CAPABILITIES,
    "lancedb",
    ("lancedb", "pyarrow"),
    ("lance",),
)
