"""Config models of the LanceDB source and sink (no SDK import here: ``vexrun plan`` reads them)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator

from ..base import PluginConfig

__all__ = ["LanceDBSinkConfig", "LanceDBSourceConfig", "LanceDBStoreConfig"]


class LanceDBStoreConfig(PluginConfig):
    """The fields that say which LanceDB table is meant: a database directory (``path``) or URI (``uri``), and
    the table in it."""

    type: Literal["lancedb", "lance"] = "lancedb"
    path: str | None = Field(
        default=None,
        description="The database: a local directory, relative to the recipe (created by a sink when missing). "
        "Give path or uri.",
    )
    uri: str | None = Field(
        default=None,
        description="The database as a URI that lancedb.connect takes: a local directory or object storage "
        "(s3://bucket/prefix, gs://…, az://…). LanceDB Cloud (db://) is not supported. Give path or uri.",
    )
    storage_options: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Object storage options passed to LanceDB (e.g. aws_access_key_id, region); use ${VAR} for "
        "credentials, never the values themselves.",
    )
    table: str = Field(
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z0-9_.\-]+$",
        description="The table name (letters, digits, _ . -).",
    )

    @model_validator(mode="after")
    def _one_location(self) -> Self:
        if (self.path is None) == (self.uri is None):
            raise ValueError("give either path (a local directory) or uri, not both or neither")
        if self.uri is not None and self.uri.startswith("db://"):
            raise ValueError("LanceDB Cloud (db://) is not supported; give a directory or an object storage uri")
        return self


class LanceDBSourceConfig(LanceDBStoreConfig):
    """``type: lancedb`` (alias ``lance``) — read a LanceDB table, whether vexrun wrote it or not, as one
    consistent snapshot (the table version current when the export started), resumable."""

    namespace: str | None = Field(default=None, description="Read only the records of this namespace.")
    id_column: str = Field(default="id", min_length=1, description="The id column of a table vexrun did not write.")
    vector_column: str | None = Field(
        default=None,
        description="The vector column (default: 'vector', or the table's only fixed-size float list column).",
    )
    text_column: str = Field(default="text", min_length=1, description="The text column of a foreign table.")
    namespace_column: str = Field(
        default="namespace", min_length=1, description="The namespace column of a foreign table."
    )


class LanceDBSinkConfig(LanceDBStoreConfig):
    """``type: lancedb`` (alias ``lance``) — write a LanceDB table: a fresh table is loaded with appends of whole
    batches, anything else is upserted by id (``merge_insert``). At the end the table is compacted, and a
    BTREE index on id (and, if asked, a vector index) is built."""

    namespace: str | None = Field(default=None, description="Set this namespace on records that have none.")
    metric: Literal["cosine", "l2", "dot"] | None = Field(
        default=None,
        description="Distance of a table the sink creates (default: the plan's metric, cosine), kept in the "
        "table's schema metadata for searches and the vector index. An existing table with another metric or "
        "vector size is refused.",
    )
    replace: bool = Field(
        default=False,
        description="Drop and re-create the table when a fresh run starts (never when a run resumes).",
    )
    index: Literal["none", "ivf_pq", "ivf_hnsw_sq", "ivf_flat"] = Field(
        default="none",
        description="A vector index to build at the end of a run when the table holds at least index_min_rows "
        "vectors ('none': searches scan the table, exact). An existing index is updated instead.",
    )
    index_min_rows: int = Field(
        default=100_000,
        ge=256,
        description="Build the vector index only from this many rows on (below, an exact scan is fast enough).",
    )
    storage_version: Literal["legacy", "stable", "2.0", "2.1"] = Field(
        default="legacy",
        description="Lance file format of a table the sink creates. 'legacy' (Lance's v1 format, readable by every "
        "LanceDB) keeps vexrun's memory flat: with the v2 formats ('stable' = 2.0) Lance buffers whole pages, and "
        "compacting or reading a table of 1M × 384-d vectors took 250-400 MB more than at 100k.",
    )
    optimize: bool = Field(
        default=True,
        description="Compact the table at the end of a run (each batch was one small fragment and one version) "
        "and bring its indexes up to date. A table this run created also drops the intermediate versions.",
    )
