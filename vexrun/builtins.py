"""vexrun's own plugins, registered through the same ``vexrun.plugins`` entry point a third-party
package would use (see ``pyproject.toml``)."""

from __future__ import annotations

from .connectors.base import Capabilities
from .registry import PluginSpec

__all__ = ["PLUGINS"]

_LOCAL_STORE = Capabilities(
    ids="any",
    metrics=("cosine",),
    metadata="nested",
    namespaces=True,
    vectors="float32",
    search=True,
    edges=True,
)
_FILE = Capabilities(ids="any", metrics=("cosine", "dot", "l2"), metadata="lists", vectors="float32")

_PGVECTOR = Capabilities(
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
_QDRANT = Capabilities(
    ids="uuid-or-uint",
    max_dims=65536,
    metrics=("cosine", "dot", "l2"),
    metadata="nested",
    namespaces=True,
    # one write of up to 1,024 points is sent as requests of 256 (Qdrant's advice: 64-256 per upsert), up to
    # `parallel` of them in flight against a server, one after the other in local mode
    max_batch_records=1024,
    max_batch_bytes=32 * 1024 * 1024,
    vectors="normalized",
    needs_vectors=True,
    search=True,
)
_CHROMA = Capabilities(
    ids="any",
    metrics=("cosine", "l2", "dot"),
    # Chroma 1.5 keeps non-empty lists of one scalar type natively; the sink JSON-encodes the rest itself
    # (empty lists, integers beyond 64 bits) under the same _vexrun_json convention
    metadata="lists",
    list_types_uniform=True,
    metadata_nulls=False,
    namespaces=True,
    max_batch_records=5000,
    # cosine collections return each value within 1 ulp of what was written (l2 / ip ones bit-exact)
    vectors="normalized",
    needs_vectors=True,
    search=True,
)
_MILVUS = Capabilities(
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


def _store(
    name: str,
    module: str,
    cls: str,
    summary: str,
    caps: Capabilities,
    extra: str,
    requires: tuple[str, ...],
    aliases: tuple[str, ...] = (),
) -> list[PluginSpec]:
    """A store is both a source and a sink, with one config module and one extra."""
    return [
        PluginSpec(
            "source",
            name,
            f"{module}:{cls}SourceConfig",
            f"{module}:{cls}Source",
            aliases=aliases,
            summary=summary,
            extra=extra,
            requires=requires,
            capabilities=caps,
        ),
        PluginSpec(
            "sink",
            name,
            f"{module}:{cls}SinkConfig",
            f"{module}:{cls}Sink",
            aliases=aliases,
            summary=summary,
            extra=extra,
            requires=requires,
            capabilities=caps,
        ),
    ]


PLUGINS: list[PluginSpec] = [
    # sources
    PluginSpec(
        "source",
        "vmig",
        "vexrun.connectors.vmig_file:VmigSourceConfig",
        "vexrun.connectors.vmig_file:VmigSource",
        summary="a .vmig.jsonl(.gz) file",
    ),
    PluginSpec(
        "source",
        "claude-export",
        "vexrun.connectors.exports.claude:ClaudeExportConfig",
        "vexrun.connectors.exports.claude:ClaudeExportSource",
        aliases=("claude",),
        summary="claude.ai data export (conversations.json) or Anthropic API message lists",
    ),
    PluginSpec(
        "source",
        "chatgpt-export",
        "vexrun.connectors.exports.chatgpt:ChatGPTExportConfig",
        "vexrun.connectors.exports.chatgpt:ChatGPTExportSource",
        aliases=("chatgpt", "openai-export"),
        summary="ChatGPT data export (conversations.json with its mapping tree)",
    ),
    PluginSpec(
        "source",
        "sqlite",
        "vexrun.connectors.sqlite_store:SqliteSourceConfig",
        "vexrun.connectors.sqlite_store:SqliteSource",
        aliases=("local",),
        summary="the embedded local memory store (one SQLite file)",
        capabilities=_LOCAL_STORE,
    ),
    # sinks
    PluginSpec(
        "sink",
        "vmig",
        "vexrun.connectors.vmig_file:VmigSinkConfig",
        "vexrun.connectors.vmig_file:VmigSink",
        summary="a .vmig.jsonl(.gz) file with its sidecar",
        capabilities=_FILE,
    ),
    PluginSpec(
        "sink",
        "sqlite",
        "vexrun.connectors.sqlite_store:SqliteSinkConfig",
        "vexrun.connectors.sqlite_store:SqliteSink",
        aliases=("local",),
        summary="the embedded local memory store: float32 vectors, FTS5 (BM25) over text, edges",
        capabilities=_LOCAL_STORE,
    ),
    # vector stores, each a source and a sink
    *_store(
        "pgvector",
        "vexrun.connectors.pgvector",
        "Pgvector",
        "PostgreSQL + pgvector (binary COPY, upserts; `dsn: embedded` starts a local server)",
        _PGVECTOR,
        "pgvector",
        ("psycopg", "pgvector"),
        ("postgres", "postgresql", "supabase"),
    ),
    *_store(
        "qdrant",
        "vexrun.connectors.qdrant",
        "Qdrant",
        "Qdrant server (gRPC) or local mode (path)",
        _QDRANT,
        "qdrant",
        ("qdrant_client",),
    ),
    *_store(
        "chroma",
        "vexrun.connectors.chroma",
        "Chroma",
        "Chroma server (HttpClient) or a local directory",
        _CHROMA,
        "chroma",
        ("chromadb",),
        ("chromadb",),
    ),
    *_store(
        "milvus",
        "vexrun.connectors.milvus",
        "Milvus",
        "Milvus / Zilliz Cloud (MilvusClient), or Milvus Lite",
        _MILVUS,
        "milvus",
        ("pymilvus",),
        ("zilliz",),
    ),
    # LLM providers (extract / smart mode)
    *[
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
    ],
    # embedders
    PluginSpec(
        "embedder",
        "local",
        "vexrun.providers.embed.local:LocalEmbedderConfig",
        "vexrun.providers.embed.local:LocalEmbedder",
        aliases=("sentence-transformers",),
        summary="a sentence-transformers model on CPU, offline (default all-MiniLM-L6-v2, 384-d)",
        extra="local",
        requires=("sentence_transformers", "torch"),
        install="pip install 'vexrun[local]' torch==2.13.0  (pin torch to a CPU build in the same command)",
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
    PluginSpec(
        "embedder",
        "fake",
        "vexrun.testing.fake_embedder:FakeEmbedderConfig",
        "vexrun.testing.fake_embedder:FakeEmbedder",
        summary="deterministic hash-based vectors for tests and dry runs (not semantic)",
    ),
]
