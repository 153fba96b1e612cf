"""The conversation-export sources as plugins (gathered by :mod:`vexrun.builtins`). Specs and capabilities only."""

from __future__ import annotations

from ...pluginspec import PluginSpec
from ..base import Capabilities

__all__ = ["CAPABILITIES", "PLUGINS"]

#: conversations carry text only: a run embeds them before any store that needs vectors
CAPABILITIES = Capabilities(metadata="nested", vectors="none", encoded=False, file_input=True)

PLUGINS: list[PluginSpec] = [
    PluginSpec(
        "source",
        "claude-export",
        "vexrun.connectors.exports.claude:ClaudeExportConfig",
        "vexrun.connectors.exports.claude:ClaudeExportSource",
        aliases=("claude",),
        summary="claude.ai data export (conversations.json) or Anthropic API message lists",
        capabilities=CAPABILITIES,
    ),
    PluginSpec(
        "source",
        "chatgpt-export",
        "vexrun.connectors.exports.chatgpt:ChatGPTExportConfig",
        "vexrun.connectors.exports.chatgpt:ChatGPTExportSource",
        aliases=("chatgpt", "openai-export"),
        summary="ChatGPT data export (conversations.json with its mapping tree)",
        capabilities=CAPABILITIES,
    ),
]
