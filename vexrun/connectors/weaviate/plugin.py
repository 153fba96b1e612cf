"""Weaviate as a source and a sink (gathered by :mod:`vexrun.builtins`). Specs and capabilities only: no SDK is
imported."""

from __future__ import annotations

from ...pluginspec import PluginSpec, store_specs
from ..base import Capabilities

__all__ = ["CAPABILITIES", "PLUGINS"]

CAPABILITIES = Capabilities(
    # any id: the sink keys an object by the id when it is a UUID, else by a uuid5 of it, and keeps the id in
    # the vexrun_id property (the connector maps ids itself, so fetch and export give the original back)
    ids="any",
    metrics=("cosine", "dot", "l2"),
    # properties hold scalars and non-empty lists of one type; the runner JSON-encodes the rest (nulls, mixed
    # lists); the sink keeps what a property cannot hold (empty lists, integers beyond 2**53, keys that are not
    # property names, values of another type than the property has) as JSON in vexrun_meta
    metadata="lists",
    list_types_uniform=True,
    metadata_nulls=False,
    namespaces=True,
    # records per write; the sink sends them as gRPC batches of `chunk` objects, `parallel` in flight
    max_batch_records=10_000,
    max_batch_bytes=64 * 1024 * 1024,
    vectors="float32",
    search=True,
)

PLUGINS: list[PluginSpec] = store_specs(
    "weaviate",
    "vexrun.connectors.weaviate",
    "Weaviate",
    "a Weaviate collection (REST + gRPC; namespaces as tenants)",
    CAPABILITIES,
    "weaviate",
    ("weaviate",),
)
