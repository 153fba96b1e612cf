"""Config models of the Redis source and sink (no SDK import here: ``vexrun plan`` reads them)."""

from __future__ import annotations

from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator

from ..base import PluginConfig

__all__ = ["RedisSinkConfig", "RedisSourceConfig", "RedisStoreConfig"]

_FIELD = r"^[A-Za-z_][A-Za-z0-9_]*$"
#: Where vexrun keeps what it knows about an index (dims, metric, model, embedder): a hash outside the prefix.
META_PREFIX = "vexrun-meta:"


class RedisStoreConfig(PluginConfig):
    """The fields that say which records are meant: the keys under ``prefix`` on one Redis database, and the
    search index ``collection`` over them."""

    type: Literal["redis"] = "redis"
    url: str = Field(
        description="The server and database: redis://host:6379/0 (rediss:// for TLS, unix:///path/to.sock?db=0). "
        "Give the password in `password`, not in the URL.",
    )
    username: str | None = Field(default=None, min_length=1, description="ACL user (default: the default user).")
    password: SecretStr | None = Field(
        default=None, description="Password of the user (requirepass or ACL); use ${REDIS_PASSWORD}, never the value."
    )
    collection: str = Field(
        min_length=1,
        max_length=200,
        pattern=r"^[^\s*?\[\]\\]+$",
        description="The search index (FT.CREATE name) over the records' keys; it also names the default prefix.",
    )
    prefix: str | None = Field(
        default=None,
        min_length=1,
        description="Key prefix of the records: a record's key is prefix + its id (default '<collection>:').",
    )
    storage: Literal["hash", "json"] = Field(
        default="hash",
        description="'hash': one HASH per record, the vector as a FLOAT32 blob, metadata as JSON text. 'json': one "
        "JSON document per record (RedisJSON), metadata as a nested object, the vector as an array.",
    )
    text_field: str = Field(default="text", pattern=_FIELD, description="Field that holds the record text.")
    vector_field: str = Field(default="embedding", pattern=_FIELD, description="Field that holds the vector.")
    namespace_field: str = Field(
        default="namespace", pattern=_FIELD, description="Field that holds the namespace (a TAG in the index)."
    )
    metadata_field: str = Field(
        default="metadata",
        pattern=_FIELD,
        description="Field that holds the metadata. When reading, other fields that vexrun does not own are "
        "added to the metadata too.",
    )
    timeout: float = Field(
        default=60.0, gt=0, le=3600, description="Seconds one command may take (connecting: at most 5)."
    )

    @property
    def key_prefix(self) -> str:
        return self.prefix if self.prefix is not None else f"{self.collection}:"

    @property
    def meta_key(self) -> str:
        return f"{META_PREFIX}{self.collection}"

    @model_validator(mode="after")
    def _check(self) -> Self:
        parts = urlsplit(self.url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError("url must start with redis://, rediss:// or unix:// (e.g. redis://127.0.0.1:6379/0)")
        if parts.password:
            raise ValueError("put the password in `password: ${REDIS_PASSWORD}`, not in the url")
        if self.meta_key.startswith(self.key_prefix):
            raise ValueError(f"prefix '{self.key_prefix}' would hold vexrun's own key '{self.meta_key}'")
        owned = [self.text_field, self.vector_field, self.namespace_field, self.metadata_field]
        if len(set(owned)) != len(owned) or "_vexrun" in owned:
            raise ValueError("text_field, vector_field, namespace_field and metadata_field must differ (not _vexrun)")
        return self


class RedisSourceConfig(RedisStoreConfig):
    """``type: redis`` — read the records under a key prefix (SCAN, resumable by its cursor); no index needed."""

    namespace: str | None = Field(default=None, description="Read only the records of this namespace.")


class RedisSinkConfig(RedisStoreConfig):
    """``type: redis`` — upsert records as HASH (or JSON) documents under a key prefix, with pipelined writes,
    and a vector index (RediSearch: Redis Stack, Redis 8, Redis Cloud) over them."""

    namespace: str | None = Field(default=None, description="Set this namespace on records that have none.")
    metric: Literal["cosine", "l2", "dot"] | None = Field(
        default=None,
        description="Distance of an index the sink creates (default: the plan's metric, cosine); 'dot' is Redis's "
        "IP. An existing index of another distance or size is refused.",
    )
    index: Literal["hnsw", "flat"] = Field(
        default="hnsw",
        description="The vector index: 'hnsw' (approximate; building it is the limit of a load, about 1,000 "
        "384-d records/s) or 'flat' (exact scans, about 10x faster to load, slower to search).",
    )
    hnsw_m: int = Field(default=16, ge=2, le=512, description="HNSW: links per node (M).")
    hnsw_ef_construction: int = Field(
        default=200, ge=4, le=4096, description="HNSW: candidate list size while building (EF_CONSTRUCTION)."
    )
    index_text: bool = Field(default=True, description="Also index the text field for full-text queries (TEXT).")
    index_after_load: bool = Field(
        default=False,
        description="Create the index when the run completes, over everything written: the writes are not slowed "
        "by indexing; Redis then indexes the keys in the background (scanning the whole keyspace) and the run "
        "waits for it. Not reliably faster in total (see bench/bench_redis.py).",
    )
    replace: bool = Field(
        default=False,
        description="Drop the index and delete its keys when a fresh run starts (never when a run resumes).",
    )
