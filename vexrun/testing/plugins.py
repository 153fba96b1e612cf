"""The test fakes as plugins (gathered by :mod:`vexrun.builtins`): usable in any recipe, the way users test
their own. Specs only."""

from __future__ import annotations

from ..pluginspec import PluginSpec
from .memory import CAPABILITIES as MEMORY_CAPABILITIES

__all__ = ["PLUGINS"]

PLUGINS: list[PluginSpec] = [
    PluginSpec(
        "embedder",
        "fake",
        "vexrun.testing.fake_embedder:FakeEmbedderConfig",
        "vexrun.testing.fake_embedder:FakeEmbedder",
        summary="deterministic hash-based vectors for tests and dry runs (not semantic)",
    ),
    PluginSpec(
        "sink",
        "memory",
        "vexrun.testing.memory:MemorySinkConfig",
        "vexrun.testing.memory:MemorySink",
        summary="an in-memory test store with seeded fault injection (open/prepare/write/write_edges/finalize)",
        capabilities=MEMORY_CAPABILITIES,
    ),
]
