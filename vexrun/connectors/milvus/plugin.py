"""Milvus / Zilliz Cloud / Milvus Lite as a source and a sink (gathered by :mod:`vexrun.builtins`). Specs and
capabilities only: no SDK is imported."""

from __future__ import annotations

from ...pluginspec import PluginSpec, store_specs
from ..base import Capabilities

__all__ = ["CAPABILITIES", "PLUGINS"]

CAPABILITIES = Capabilities(
    ids="any",
    max_id_bytes=512,
    max_dims=32768,
    metrics=("cosine", "l2", "dot"),
    metadata="nested",
    # a JSON field holds at most 64 KiB (texts over 65,535 bytes are refused per record by the sink)
    max_metadata_bytes=65_536,
    namespaces=True,
    # one write is sent as upserts of at most 16 MB, `concurrency` in flight (Milvus refuses messages over 64 MB)
    max_batch_bytes=32 * 1024 * 1024,
    vectors="float32",
    needs_vectors=True,
    search=True,
)

PLUGINS: list[PluginSpec] = store_specs(
    "milvus",
    "vexrun.connectors.milvus",
    "Milvus",
    "Milvus / Zilliz Cloud (MilvusClient), or Milvus Lite",
    CAPABILITIES,
    "milvus",
    ("pymilvus",),
    ("zilliz",),
)
