"""The ``vmig`` source and sink as plugins (gathered by :mod:`vexrun.builtins`). Specs and capabilities only."""

from __future__ import annotations

from ...pluginspec import PluginSpec
from ..base import Capabilities

__all__ = ["CAPABILITIES", "PLUGINS"]

CAPABILITIES = Capabilities(
    ids="any", metrics=("cosine", "dot", "l2"), metadata="lists", vectors="float32", file_output=True
)
#: a file holds records as they are (no store encoding to undo); its sidecar names the models of its vectors
SOURCE_CAPABILITIES = Capabilities(
    ids="any",
    metrics=("cosine", "dot", "l2"),
    metadata="lists",
    vectors="float32",
    encoded=False,
    declares_models=True,
    file_input=True,
)

PLUGINS: list[PluginSpec] = [
    PluginSpec(
        "source",
        "vmig",
        "vexrun.connectors.vmig:VmigSourceConfig",
        "vexrun.connectors.vmig:VmigSource",
        summary="a .vmig.jsonl(.gz) file",
        capabilities=SOURCE_CAPABILITIES,
    ),
    PluginSpec(
        "sink",
        "vmig",
        "vexrun.connectors.vmig:VmigSinkConfig",
        "vexrun.connectors.vmig:VmigSink",
        summary="a .vmig.jsonl(.gz) file with its sidecar",
        capabilities=CAPABILITIES,
    ),
]
