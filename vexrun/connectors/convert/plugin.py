"""The ``convert`` target as a plugin (gathered by :mod:`vexrun.builtins`). Specs and capabilities only."""

from __future__ import annotations

from ...pluginspec import PluginSpec
from ..base import Capabilities

__all__ = ["CAPABILITIES", "PLUGINS"]

#: Takes records as the run has them (no store encoding: the formats read text, ids and a few metadata keys) and
#: no vectors. Not ``file_output``: what it writes is training data, not the ``.vmig.jsonl`` file that ``signing:``
#: and ``sync:`` act on (and with ``split`` it is two files).
CAPABILITIES = Capabilities(ids="any", metrics=("cosine", "dot", "l2"), metadata="nested", vectors="none")

PLUGINS: list[PluginSpec] = [
    PluginSpec(
        "sink",
        "convert",
        "vexrun.connectors.convert:ConvertSinkConfig",
        "vexrun.connectors.convert:ConvertSink",
        summary="fine-tuning / chat examples (openai, anthropic, chat, sharegpt, alpaca, text, qa), as `vexrun "
        "convert` writes them",
        capabilities=CAPABILITIES,
    ),
]
