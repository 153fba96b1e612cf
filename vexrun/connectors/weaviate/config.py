"""Config models of the Weaviate source and sink (no SDK import here: ``vexrun plan`` reads them)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator

from ..base import PluginConfig

__all__ = ["WeaviateSinkConfig", "WeaviateSourceConfig", "WeaviateStoreConfig"]

_TENANT = r"^[A-Za-z0-9_-]{1,64}$"


class WeaviateStoreConfig(PluginConfig):
    """The fields that say which Weaviate collection is meant and how to reach it (REST + gRPC, as
    weaviate-client v4's ``connect_to_custom``)."""

    type: Literal["weaviate"] = "weaviate"
    url: str = Field(
        description="The REST address, e.g. http://127.0.0.1:8080 or https://xyz.weaviate.cloud (https: TLS for "
        "REST and gRPC).",
    )
    grpc_port: int | None = Field(
        default=None, ge=1, le=65535, description="The gRPC port (default 50051 with http://, 443 with https://)."
    )
    grpc_host: str | None = Field(
        default=None,
        description="The gRPC host when it is not the REST host (Weaviate Cloud: grpc-<cluster host>).",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="API key, sent as 'Authorization: Bearer' on REST and gRPC; use ${WEAVIATE_API_KEY}, never the "
        "key itself.",
    )
    collection: str = Field(
        min_length=1,
        pattern=r"^[A-Za-z][_0-9A-Za-z]{0,254}$",
        description="The collection (class) name; Weaviate upper-cases its first letter.",
    )
    tenants: bool | None = Field(
        default=None,
        description="Namespaces as tenants (multi-tenancy): each vexrun namespace is a tenant of the collection. "
        "false: one shard, the namespace in a property (namespace_key). Unset: an existing collection is used as "
        "it is; a new one is created multi-tenant.",
    )
    default_tenant: str = Field(
        default="vexrun_default",
        pattern=_TENANT,
        description="With tenants: the tenant that holds records without a namespace (read back without one).",
    )
    vector_name: str = Field(
        default="default",
        pattern=r"^[_A-Za-z][_0-9A-Za-z]{0,229}$",
        description="The named vector written and read ('default' also reaches a collection's class-level vector).",
    )
    text_key: str = Field(default="text", min_length=1, description="The text property holding the record's text.")
    namespace_key: str = Field(
        default="namespace", min_length=1, description="Without tenants: the property holding the namespace."
    )
    timeout: float = Field(
        default=60.0, gt=0, le=3600, description="Seconds one request may take (connecting: at most 10)."
    )

    @model_validator(mode="after")
    def _http_url(self) -> Self:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https:// (the REST address, e.g. http://127.0.0.1:8080)")
        return self


class WeaviateSourceConfig(WeaviateStoreConfig):
    """``type: weaviate`` — read a Weaviate collection through gRPC (the cursor API, tenant by tenant),
    resumable by tenant and object UUID."""

    namespace: str | None = Field(default=None, description="Read only this namespace (one tenant).")
    page: int = Field(
        default=1000, ge=1, le=10_000, description="Objects per gRPC request while reading (the iterator's page)."
    )


class WeaviateSinkConfig(WeaviateStoreConfig):
    """``type: weaviate`` — upsert objects with vexrun's own vectors (vectorizer none) through gRPC batches. An
    object's UUID is the record id when it is a UUID, else a uuid5 of it; the id is kept in ``vexrun_id``."""

    namespace: str | None = Field(default=None, description="Set this namespace on records that have none.")
    metric: Literal["cosine", "l2", "dot"] | None = Field(
        default=None,
        description="Distance of a collection the sink creates (cosine, dot, or l2 = Weaviate's l2-squared); "
        "default the plan's metric. An existing collection with another distance is refused.",
    )
    index: Literal["hnsw", "flat"] = Field(default="hnsw", description="Vector index of a collection the sink creates.")
    replace: bool = Field(
        default=False,
        description="Delete and re-create the collection when a fresh run starts (never when a run resumes).",
    )
    chunk: int = Field(default=500, ge=1, le=10_000, description="Objects per gRPC batch request.")
    parallel: int = Field(default=2, ge=1, le=16, description="Batch requests in flight at once.")
