"""PostgreSQL + pgvector as a source and a sink (gathered by :mod:`vexrun.builtins`). Specs and capabilities
only: no SDK is imported."""

from __future__ import annotations

from ...pluginspec import PluginSpec, store_specs
from ..base import Capabilities

__all__ = ["CAPABILITIES", "PLUGINS"]

CAPABILITIES = Capabilities(
    ids="any",
    max_id_bytes=2000,
    max_dims=16000,
    metrics=("cosine", "l2", "dot"),
    metadata="nested",
    namespaces=True,
    vectors="float32",
    needs_vectors=True,
    search=True,
    edges=True,
)

PLUGINS: list[PluginSpec] = store_specs(
    "pgvector",
    "vexrun.connectors.pgvector",
    "Pgvector",
    "PostgreSQL + pgvector (binary COPY, upserts; `dsn: embedded` starts a local server)",
    CAPABILITIES,
    "pgvector",
    ("psycopg", "pgvector"),
    ("postgres", "postgresql", "supabase"),
)
