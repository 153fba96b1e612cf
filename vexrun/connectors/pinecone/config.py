"""Config models of the Pinecone source and sink (no SDK import here: ``vexrun plan`` reads them)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from ..base import PluginConfig

__all__ = ["PineconeCreate", "PineconeSinkConfig", "PineconeSourceConfig", "PineconeStoreConfig"]


class PineconeStoreConfig(PluginConfig):
    """The fields that say which Pinecone index is meant: its ``host``, or its ``index`` name (looked up on the
    control plane), or both."""

    type: Literal["pinecone"] = "pinecone"
    api_key: SecretStr = Field(
        description="The project's API key; use ${PINECONE_API_KEY}, never the key itself.",
    )
    index: str | None = Field(
        default=None,
        min_length=1,
        max_length=45,
        description="The index name: its host is looked up on the control plane (one request), and a sink with "
        "`create` creates a missing index. Give index, host, or both.",
    )
    host: str | None = Field(
        default=None,
        min_length=1,
        description="The index host, e.g. https://memories-abc123.svc.aped-4627-b74a.pinecone.io (the console "
        "shows it); with a host no control-plane request is made. Give index, host, or both.",
    )
    controller_host: str | None = Field(
        default=None,
        description="The control plane (default https://api.pinecone.io; PINECONE_CONTROLLER_HOST in the "
        "environment also sets it).",
    )
    timeout: float = Field(default=30.0, gt=0, le=3600, description="Seconds one request may take.")
    text_key: str = Field(
        default="text",
        min_length=1,
        description="Metadata field that holds the record text (LangChain's PineconeVectorStore uses `text`). "
        "Text counts against Pinecone's 40 KB of metadata per record.",
    )
    retries: int = Field(
        default=8,
        ge=0,
        le=50,
        description="Retries of a request refused for its rate (429) or failing on the server's side (5xx, no "
        "answer), with exponential backoff; on top of the SDK's own three.",
    )

    @model_validator(mode="after")
    def _located(self) -> Self:
        if self.index is None and self.host is None:
            raise ValueError("give index (a name looked up on the control plane) or host (the index's own URL)")
        return self


class PineconeSourceConfig(PineconeStoreConfig):
    """``type: pinecone`` — read a Pinecone index namespace by namespace (ids listed in pages, records fetched
    1,000 at a time), resumable at the page and namespace it stopped in."""

    namespace: str | None = Field(
        default=None,
        description="Read only this Pinecone namespace ('' is the default namespace); unset: every namespace.",
    )
    fetches_per_second: float = Field(
        default=100.0, gt=0, description="Pace of fetch requests (Pinecone allows 100 per second per index)."
    )
    lists_per_second: float = Field(
        default=200.0, gt=0, description="Pace of list requests (Pinecone allows 200 per second per index)."
    )


class PineconeCreate(BaseModel):
    """How ``prepare`` creates a missing index (a serverless index)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cloud: str = Field(default="aws", description="aws, gcp or azure.")
    region: str = Field(default="us-east-1", description="A region of that cloud Pinecone serves.")
    dimension: int | None = Field(
        default=None, ge=1, le=20_000, description="Vector size (default: the run's, from its first batch)."
    )
    metric: Literal["cosine", "l2", "dot"] | None = Field(
        default=None, description="Distance (default: the plan's metric, cosine); l2 is Pinecone's euclidean."
    )


class PineconeSinkConfig(PineconeStoreConfig):
    """``type: pinecone`` — upsert into a Pinecone index, each record in the Pinecone namespace of its vexrun
    namespace; cut to Pinecone's limits (1,000 records and 2 MB a request, 40 KB of metadata a record) and
    paced under its rate limit, with 429s retried."""

    namespace: str | None = Field(
        default=None, description="The namespace of records that have none (unset: Pinecone's default namespace)."
    )
    create: PineconeCreate | None = Field(
        default=None,
        description="Create the index (by `index` name, on the control plane) when it does not exist; without "
        "it a missing index is an error.",
    )
    upserts_per_second: float = Field(
        default=100.0,
        gt=0,
        description="Upsert requests per second per namespace (Pinecone's limit is 100): the sink paces itself "
        "below it instead of being refused.",
    )
    parallel: int = Field(default=4, ge=1, le=32, description="Upsert requests in flight at once.")
    max_request_bytes: int = Field(
        default=2_000_000,
        ge=10_000,
        le=2 * 1024 * 1024,
        description="Largest upsert request body (Pinecone refuses more than 2 MB).",
    )
