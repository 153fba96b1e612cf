"""Config models of the Neo4j source and sink (no SDK import here: ``vexrun plan`` reads them)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from ..base import PluginConfig

__all__ = ["Neo4jSinkConfig", "Neo4jSourceConfig", "Neo4jStoreConfig"]

_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
_SCHEMES = ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc")


class Neo4jStoreConfig(PluginConfig):
    """The fields that say which nodes are meant: a server reached over Bolt, a database, a label."""

    type: Literal["neo4j"] = "neo4j"
    url: str = Field(
        min_length=1,
        description="The server's Bolt address, e.g. bolt://127.0.0.1:7687, neo4j://host:7687 (routing) or "
        "neo4j+s://xxxx.databases.neo4j.io (Aura, TLS).",
    )
    username: str = Field(default="neo4j", min_length=1, description="The user to log in as.")
    password: SecretStr | None = Field(
        default=None, description="The user's password; use ${NEO4J_PASSWORD}, never the password itself."
    )
    database: str | None = Field(default=None, description="The database (default: the server's default database).")
    label: str = Field(
        default="Memory",
        pattern=_NAME,
        description="The label of the memory nodes (letters, digits and _). Also names the uniqueness constraint "
        "on id and the vector index.",
    )
    text_key: str = Field(default="text", min_length=1, description="Node property that holds the record text.")
    namespace_key: str = Field(default="namespace", min_length=1, description="Node property that holds the namespace.")
    embedding_key: str = Field(
        default="embedding", pattern=_NAME, description="Node property that holds the vector (a list of floats)."
    )
    timeout: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Seconds a transaction may keep being retried after transient errors (connecting: at most 5).",
    )

    @field_validator("url")
    @classmethod
    def _bolt_url(cls, url: str) -> str:
        scheme, sep, rest = url.partition("://")
        if not sep or scheme.lower() not in _SCHEMES:
            raise ValueError(
                f"not a Bolt URL: give one of {', '.join(s + '://' for s in _SCHEMES)} (e.g. bolt://host:7687)"
            )
        if "@" in rest.split("/", 1)[0]:
            raise ValueError("credentials do not belong in the url: use username and password")
        return url


class Neo4jSourceConfig(Neo4jStoreConfig):
    """``type: neo4j`` — read the nodes of one label in id order (resumable), with the relationships between
    them as edges."""

    namespace: str | None = Field(default=None, description="Read only the nodes of this namespace.")


class Neo4jSinkConfig(Neo4jStoreConfig):
    """``type: neo4j`` — merge records into nodes of one label by id (idempotent), and edges into
    relationships between them."""

    namespace: str | None = Field(default=None, description="Set this namespace on records that have none.")
    metric: Literal["cosine", "l2"] | None = Field(
        default=None,
        description="Similarity of the vector index the sink creates: cosine or l2 (Neo4j's 'euclidean'); default "
        "the plan's metric, cosine. A label prepared for another metric or size is refused.",
    )
    replace: bool = Field(
        default=False,
        description="Delete every node of the label (and its relationships) when a fresh run starts (never when "
        "a run resumes).",
    )
    vector_index: bool = Field(
        default=True,
        description="Create a vector index (CREATE VECTOR INDEX) where the server has them; searches without one "
        "compare every vector.",
    )
    rows_per_statement: int = Field(
        default=500, ge=1, le=50_000, description="Records sent in one UNWIND statement (a batch is one transaction)."
    )
