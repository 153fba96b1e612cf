"""Config models of the Qdrant source and sink (no SDK import here: ``vexrun plan`` reads them)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator

from ..base import PluginConfig

__all__ = ["QdrantSinkConfig", "QdrantSourceConfig", "QdrantStoreConfig"]


class QdrantStoreConfig(PluginConfig):
    """The fields that say which Qdrant collection is meant: a server (``url``) or a local directory (``path``)."""

    type: Literal["qdrant"] = "qdrant"
    url: str | None = Field(
        default=None,
        description="A Qdrant server, e.g. http://127.0.0.1:6333 or https://xyz.cloud.qdrant.io:6333 (the REST "
        "address; with prefer_grpc the client talks gRPC on grpc_port of the same host). Give url or path.",
    )
    path: str | None = Field(
        default=None,
        description="Local mode: a directory (relative to the recipe) holding qdrant-client's own embedded engine. "
        "The whole collection lives in vexrun's memory while it runs, and only one process may open the "
        "directory at a time. Give url or path.",
    )
    collection: str = Field(min_length=1, description="The collection name.")
    api_key: SecretStr | None = Field(
        default=None, description="API key of the server (Qdrant Cloud); use ${QDRANT_API_KEY}, never the key itself."
    )
    prefer_grpc: bool = Field(default=True, description="Talk gRPC to a server (faster for bulk upserts and scrolls).")
    grpc_port: int = Field(default=6334, ge=1, le=65535, description="The server's gRPC port.")
    timeout: float = Field(
        default=30.0, gt=0, le=3600, description="Seconds one request may take (the first connection: at most 5)."
    )
    vector_name: str | None = Field(
        default=None,
        description="The named vector to write and read; unset: the collection's single unnamed vector (or its "
        "only named vector, when reading).",
    )
    text_key: str = Field(default="text", min_length=1, description="Payload field that holds the record text.")
    metadata_key: str = Field(
        default="metadata",
        min_length=1,
        description="Payload field that holds the record metadata (an object). When reading, other payload fields "
        "that vexrun does not own are added to the metadata too.",
    )
    namespace_key: str = Field(default="namespace", min_length=1, description="Payload field that holds the namespace.")

    @model_validator(mode="after")
    def _one_location(self) -> Self:
        if (self.url is None) == (self.path is None):
            raise ValueError("give either url (a Qdrant server) or path (local mode), not both or neither")
        return self


class QdrantSourceConfig(QdrantStoreConfig):
    """``type: qdrant`` — read a Qdrant collection (server or local mode), resumable by point id."""

    namespace: str | None = Field(default=None, description="Read only the points of this namespace.")


class QdrantSinkConfig(QdrantStoreConfig):
    """``type: qdrant`` — upsert into a Qdrant collection (server or local mode). Ids that Qdrant cannot hold
    (it wants unsigned integers or UUIDs) become deterministic UUIDs, the original kept in the metadata."""

    namespace: str | None = Field(default=None, description="Set this namespace on records that have none.")
    metric: Literal["cosine", "l2", "dot"] | None = Field(
        default=None,
        description="Distance of a collection the sink creates (default: the plan's metric, cosine). An existing "
        "collection with another distance or size is refused.",
    )
    replace: bool = Field(
        default=False,
        description="Drop and re-create the collection when a fresh run starts (never when a run resumes).",
    )
    parallel: int = Field(
        default=2,
        ge=1,
        le=16,
        description="Upsert requests in flight at once against a server (local mode always writes one at a time: "
        "its engine is not safe for concurrent writers).",
    )
    on_disk: bool = Field(default=False, description="Server: keep the vectors of a new collection on disk (mmap).")
    local_durability: Literal["batch", "point"] = Field(
        default="batch",
        description="Local mode: 'batch' switches the collection's SQLite file to WAL and makes each batch durable "
        "with one sync (about 10x faster); 'point' keeps qdrant-client's default of one synced commit per point.",
    )
