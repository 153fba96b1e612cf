"""LangGraph's ``PostgresStore`` tables as a target (and a source), gathered by :mod:`vexrun.builtins`. Specs and
capabilities only: no SDK is imported."""

from __future__ import annotations

from ...pluginspec import PluginSpec, store_specs
from ..base import Capabilities

__all__ = ["CAPABILITIES", "PLUGINS"]

CAPABILITIES = Capabilities(
    ids="any",
    # the key is half of a btree primary key (prefix, key); longer ids are stored as UUIDs (id kept in metadata)
    max_id_bytes=2000,
    max_dims=16000,
    metrics=("cosine", "l2", "dot"),
    metadata="nested",
    namespaces=True,
    vectors="float32",
    needs_vectors=True,
    search=True,
)

PLUGINS: list[PluginSpec] = store_specs(
    "langgraph-postgres",
    "vexrun.connectors.langgraph_postgres",
    "LanggraphPostgres",
    "LangGraph PostgresStore tables (store, store_vectors): stock PostgresStore.search recalls the records",
    CAPABILITIES,
    "langgraph",
    ("langgraph", "psycopg", "psycopg_pool"),
)
