"""Pinecone as a source and a sink (gathered by :mod:`vexrun.builtins`). Specs and capabilities only: no SDK is
imported."""

from __future__ import annotations

from ...pluginspec import PluginSpec, store_specs
from ..base import Capabilities

__all__ = ["CAPABILITIES", "PLUGINS"]

CAPABILITIES = Capabilities(
    # ids of 1-512 ASCII characters; longer ones become uuids (runner), non-ASCII ones too (the sink)
    max_id_bytes=512,
    max_dims=20_000,
    metrics=("cosine", "dot", "l2"),
    # strings, numbers, booleans and lists of strings; the sink JSON-encodes lists of other types itself
    metadata="lists",
    list_types_uniform=True,
    metadata_nulls=False,
    # text included (it is kept in the metadata)
    max_metadata_bytes=40_960,
    namespaces=True,
    # per upsert request; the sink cuts a write further by its real JSON size (a 384-d record is ~4.5 KB)
    max_batch_records=1000,
    max_batch_bytes=2_000_000,
    vectors="float32",
    needs_vectors=True,
    search=True,
)

PLUGINS: list[PluginSpec] = store_specs(
    "pinecone",
    "vexrun.connectors.pinecone",
    "Pinecone",
    "a Pinecone index (serverless or pod), by host or by name",
    CAPABILITIES,
    "pinecone",
    ("pinecone",),
)
