"""Config models of the Chroma source and sink (no SDK import here: ``vexrun plan`` reads them)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator

from ..base import PluginConfig

__all__ = ["ChromaSinkConfig", "ChromaSourceConfig", "ChromaStoreConfig"]


class ChromaStoreConfig(PluginConfig):
    """The fields that say which Chroma collection is meant: a server (``url``) or a local directory (``path``)."""

    type: Literal["chroma", "chromadb"] = "chroma"
    url: str | None = Field(
        default=None,
        description="A Chroma server, e.g. http://127.0.0.1:8000 (https:// for TLS). Give url or path.",
    )
    path: str | None = Field(
        default=None,
        description="A local Chroma directory (PersistentClient), relative to the recipe. Give url or path.",
    )
    collection: str = Field(min_length=1, description="The collection name (3-512 characters of [a-zA-Z0-9._-]).")
    tenant: str | None = Field(default=None, description="The tenant (default: Chroma's default_tenant).")
    database: str | None = Field(default=None, description="The database (default: Chroma's default_database).")
    api_key: SecretStr | None = Field(
        default=None,
        description="Sent as the x-chroma-token header (Chroma Cloud, or a server behind a token proxy); use "
        "${CHROMA_API_KEY}, never the key itself.",
    )
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="Extra HTTP headers for every request (e.g. Authorization for a proxy)."
    )
    timeout: float = Field(
        default=60.0, gt=0, le=3600, description="Seconds one request may take (connecting: at most 5)."
    )
    namespace_key: str = Field(
        default="namespace", min_length=1, description="Metadata field that holds the record's namespace."
    )

    @model_validator(mode="after")
    def _one_location(self) -> Self:
        if (self.url is None) == (self.path is None):
            raise ValueError("give either url (a Chroma server) or path (a local directory), not both or neither")
        return self


class ChromaSourceConfig(ChromaStoreConfig):
    """``type: chroma`` — read a Chroma collection (server or local directory), page by page."""

    namespace: str | None = Field(default=None, description="Read only the records of this namespace.")


class ChromaSinkConfig(ChromaStoreConfig):
    """``type: chroma`` — upsert into a Chroma collection with vexrun's own embeddings (Chroma's embedding
    function is never used): documents hold the text, metadata the metadata."""

    namespace: str | None = Field(default=None, description="Set this namespace on records that have none.")
    metric: Literal["cosine", "l2", "dot"] | None = Field(
        default=None,
        description="Distance (hnsw space) of a collection the sink creates: cosine, l2 or dot (Chroma's 'ip'); "
        "default the plan's metric, cosine. An existing collection with another distance is refused.",
    )
    replace: bool = Field(
        default=False,
        description="Delete and re-create the collection when a fresh run starts (never when a run resumes).",
    )
    parallel: int = Field(
        default=1,
        ge=1,
        le=8,
        description="Upsert requests in flight at once against a server (a local directory is written one "
        "request at a time).",
    )
