"""The LLM providers as plugins (gathered by :mod:`vexrun.builtins`). Specs only: no httpx is imported."""

from __future__ import annotations

from ...pluginspec import PluginSpec

__all__ = ["PLUGINS"]

PLUGINS: list[PluginSpec] = [
    PluginSpec(
        "llm",
        name,
        f"vexrun.providers.llm.{module}:{cls}Config",
        f"vexrun.providers.llm.{module}:{cls}Provider",
        aliases=aliases,
        summary=summary,
        extra="llm",
        requires=("httpx",),
    )
    for name, module, cls, aliases, summary in (
        ("groq", "openai_compat", "Groq", (), "Groq chat completions (default llama-3.1-8b-instant)"),
        ("openai", "openai_compat", "OpenAIChat", ("openai-compatible",), "OpenAI or any compatible server"),
        ("mistral", "openai_compat", "Mistral", (), "Mistral chat completions (mistral-small-latest)"),
        ("together", "openai_compat", "Together", (), "Together AI chat completions"),
        ("ollama", "ollama", "OllamaChat", (), "a local Ollama, native /api/chat with format"),
        ("anthropic", "anthropic", "Anthropic", ("claude",), "Anthropic /v1/messages (claude-haiku-4-5)"),
    )
]
