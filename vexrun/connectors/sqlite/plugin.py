"""The embedded local store (``sqlite``, alias ``local``) as a source and a sink (gathered by
:mod:`vexrun.builtins`). Specs and capabilities only."""

from __future__ import annotations

from ...pluginspec import PluginSpec
from ..base import Capabilities

__all__ = ["CAPABILITIES", "PLUGINS"]

CAPABILITIES = Capabilities(
    ids="any",
    metrics=("cosine",),
    metadata="nested",
    namespaces=True,
    vectors="float32",
    search=True,
    edges=True,
)

PLUGINS: list[PluginSpec] = [
    PluginSpec(
        "source",
        "sqlite",
        "vexrun.connectors.sqlite:SqliteSourceConfig",
        "vexrun.connectors.sqlite:SqliteSource",
        aliases=("local",),
        summary="the embedded local memory store (one SQLite file)",
        capabilities=CAPABILITIES,
    ),
    PluginSpec(
        "sink",
        "sqlite",
        "vexrun.connectors.sqlite:SqliteSinkConfig",
        "vexrun.connectors.sqlite:SqliteSink",
        aliases=("local",),
        summary="the embedded local memory store: float32 vectors, FTS5 (BM25) over text, edges",
        capabilities=CAPABILITIES,
    ),
]
