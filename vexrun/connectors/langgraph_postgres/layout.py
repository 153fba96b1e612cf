"""How a record becomes a LangGraph ``PostgresStore`` item, and back; and what a database already holds.

The tables are LangGraph's own (made by ``PostgresStore.setup()``, see langgraph/store/postgres/base.py)::

    store          (prefix text, key text, value jsonb, created_at, updated_at, expires_at, ttl_minutes)
                   primary key (prefix, key)
    store_vectors  (prefix, key, field_name text, embedding vector(dims), created_at, updated_at)
                   primary key (prefix, key, field_name), foreign key (prefix, key) → store ON DELETE CASCADE
    store_migrations, vector_migrations   (v integer): the migrations LangGraph applied

A namespace tuple is stored as its labels joined with '.' (``("memories", "alice")`` → ``memories.alice``). A
record goes to ``namespace_prefix + (its namespace,)``, its id is the key, and the value is::

    {"text": "...",                     the record's text (the key is the recipe's text_field)
     "metadata": {...},                 the record's metadata, as it is
     "created_at": "2026-03-01T10:00:00Z",
     "vexrun": {"model": ..., "score": ..., "source_store": ..., "modality": ..., "vex_version": ...,
                "extra": {...}, "dims": ..., "json": {...}}}

Keys whose value is None are left out. ``vexrun.json`` keeps, as JSON text, a metadata / extra / score value that
``jsonb`` would not give back as it was written (an integral float in exponent form, ``-0.0``: the value stays in
its place too, as jsonb rounds it; a NUL character: the value is only there).
The record's vector is the ``store_vectors`` row of field_name text_field: what LangGraph writes itself for an
item put with ``index={"fields": [text_field]}``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from ...vmig.model import Record
from ..pgvector.codec import Refused, json_loads, render_timestamp

if TYPE_CHECKING:
    import psycopg

__all__ = ["Namespaces", "StoreInfo", "build_value", "inspect", "record_from"]

#: The text fields of a record kept under ``value["vexrun"]`` (with score, extra and dims).
_TEXTS = ("model", "source_store", "modality", "vex_version")


class Namespaces:
    """Record namespaces ↔ LangGraph prefixes under ``namespace_prefix``."""

    def __init__(self, prefix: list[str], default: str | None = None) -> None:
        self.base = ".".join(prefix)
        self.default = default
        self._memo: dict[str | None, str] = {}

    def prefix(self, namespace: str | None) -> str:
        """The prefix text of a record's namespace (Refused when LangGraph could not address it)."""
        hit = self._memo.get(namespace)
        if hit is not None:
            return hit
        ns = namespace if namespace is not None else self.default
        if ns is None:
            if not self.base:
                raise Refused("the record has no namespace and namespace_prefix is empty: LangGraph needs one")
            text = self.base
        else:
            labels = ns.split(".")
            if any(not label for label in labels):
                raise Refused(f"the namespace {ns!r} has an empty label, which LangGraph cannot address")
            if "\x00" in ns:
                raise Refused("the namespace contains a NUL character")
            if not self.base and labels[0] == "langgraph":
                raise Refused("LangGraph reserves the root namespace label 'langgraph'")
            text = f"{self.base}.{ns}" if self.base else ns
        if len(self._memo) < 65536:
            self._memo[namespace] = text
        return text

    def namespace(self, prefix: str) -> str | None:
        """The record namespace of a stored prefix (None: the records right at ``namespace_prefix``)."""
        if prefix == self.base:
            return None
        return prefix[len(self.base) + 1 :] if self.base else prefix

    def condition(self, namespace: str | None = None, column: str = "prefix") -> tuple[str, dict[str, str]]:
        """SQL selecting the rows of one namespace, or (None) every row under ``namespace_prefix``, with its named
        parameters (``%(ns)s``, ``%(ns_like)s``)."""
        if namespace is not None:
            return f"{column} = %(ns)s", {"ns": self.prefix(namespace)}
        if not self.base:
            return "TRUE", {}
        escaped = self.base.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return f"({column} = %(ns)s OR {column} LIKE %(ns_like)s ESCAPE '\\')", {
            "ns": self.base,
            "ns_like": escaped + ".%",
        }


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # integers over 64 bits (orjson refuses them) or a lone surrogate
        try:
            return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
        except (TypeError, ValueError, UnicodeEncodeError) as exc:
            raise Refused(f"the value is not JSON PostgreSQL can hold ({type(exc).__name__})") from None


def _jsonb_exact(value: Any) -> bool:
    """True if ``jsonb`` gives ``value`` back as it is (no NUL, no integral float ≥ 1e16, no negative zero)."""
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, float):
        return not (value == 0.0 and math.copysign(1.0, value) < 0) and not (value.is_integer() and abs(value) >= 1e16)
    if isinstance(value, dict):
        return all("\x00" not in k and _jsonb_exact(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_jsonb_exact(v) for v in value)
    return True


def _nul_free(value: Any) -> bool:
    """True if no string (or key) in ``value`` holds a NUL character, which jsonb refuses."""
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, dict):
        return all("\x00" not in k and _nul_free(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_nul_free(v) for v in value)
    return True


#: What jsonb may not give back as written shows in orjson's output as a digit before an exponent, a negative
#: zero or an escaped NUL; only JSON that matches is examined value by value.
_SUSPECT = re.compile(rb"[0-9][eE]|-0\.0|\\u0000")


def _fragment(value: Any, name: str, kept: dict[str, str]) -> Any:
    """``value`` serialised once (an ``orjson.Fragment``); a value jsonb would change is also kept verbatim in
    ``kept``, and is left out (None) when jsonb cannot hold it at all (a NUL character)."""
    data = _dumps(value)
    if _SUSPECT.search(data) is not None and not _jsonb_exact(value):
        kept[name] = data.decode("utf-8")
        if not _nul_free(value):
            return None
    return orjson.Fragment(data)


def build_value(rec: Record, text_field: str, with_vector: bool) -> bytes:
    """The item's value as JSON (UTF-8). Refused for a record whose text cannot be a jsonb string."""
    kept: dict[str, str] = {}
    doc: dict[str, Any] = {}
    if rec.text is not None:
        if "\x00" in rec.text:
            raise Refused("the text contains a NUL character, which PostgreSQL jsonb cannot hold")
        doc[text_field] = rec.text
    if rec.metadata is not None and (meta := _fragment(rec.metadata, "metadata", kept)) is not None:
        doc["metadata"] = meta
    if rec.created_at is not None:
        doc["created_at"] = rec.created_at
    vx: dict[str, Any] = {}
    for name in _TEXTS:
        v = getattr(rec, name)
        if v is not None:
            vx[name] = v
    if rec.score is not None:
        if _jsonb_exact(rec.score):
            vx["score"] = rec.score
        else:
            kept["score"] = _dumps(rec.score).decode("utf-8")
    if rec.extra is not None and (extra := _fragment(rec.extra, "extra", kept)) is not None:
        vx["extra"] = extra
    if not with_vector and rec.dims is not None:
        vx["dims"] = rec.dims
    if kept:
        vx["json"] = kept
    if "\x00" in (rec.created_at or "") or any("\x00" in v for v in vx.values() if isinstance(v, str)):
        raise Refused("a field of the record contains a NUL character, which PostgreSQL jsonb cannot hold")
    doc["vexrun"] = vx
    return _dumps(doc)


def record_from(key: str, namespace: str | None, value: Any, created: datetime | None, text_field: str) -> Record:
    """A record from a stored item. An item vexrun wrote comes back as it was written; any other item (put by a
    LangGraph app) becomes: text = the value's text field (or, without one, the value as JSON, the text
    LangGraph embeds for fields ["$"]), metadata = the rest of the value, created_at = the row's."""
    if not isinstance(value, dict):
        value = {"value": value}
    vx = value.get("vexrun")
    if not isinstance(vx, dict):
        text = value.get(text_field)
        if not isinstance(text, str):
            text = json.dumps(value, sort_keys=True, ensure_ascii=False)
            meta = {k: v for k, v in value.items()}
        else:
            meta = {k: v for k, v in value.items() if k != text_field}
        return Record(
            id=key,
            text=text,
            namespace=namespace,
            metadata=meta or None,
            created_at=None if created is None else render_timestamp(created),
        )
    kept = vx.get("json") or {}
    meta = json_loads(kept["metadata"]) if "metadata" in kept else value.get("metadata")
    extra = json_loads(kept["extra"]) if "extra" in kept else vx.get("extra")
    score = json_loads(kept["score"]) if "score" in kept else vx.get("score")
    return Record(
        id=key,
        text=value.get(text_field),
        model=vx.get("model"),
        dims=vx.get("dims"),
        namespace=namespace,
        metadata=meta,
        created_at=value.get("created_at"),
        source_store=vx.get("source_store"),
        modality=vx.get("modality"),
        score=None if score is None else float(score),
        vex_version=vx.get("vex_version"),
        extra=extra,
    )


@dataclass
class StoreInfo:
    """What a database holds of a LangGraph store, read without writing anything."""

    #: the columns of ``store`` (empty: no such table)
    store_columns: tuple[str, ...] = ()
    vectors: bool = False
    #: ``store_vectors.embedding``'s declared dims, and its type (vector / halfvec) with its schema
    dims: int | None = None
    vector_type: str | None = None
    type_schema: str | None = None
    #: what vexrun recorded on ``store_vectors`` (metric, model, embedder_spec, text_field)
    meta: dict[str, Any] = field(default_factory=dict)
    #: index name → definition, of ``store_vectors``
    indexes: dict[str, str] = field(default_factory=dict)

    @property
    def store(self) -> bool:
        return bool(self.store_columns)

    @property
    def foreign(self) -> bool:
        """A table called ``store`` that is not LangGraph's."""
        return self.store and not {"prefix", "key", "value"} <= set(self.store_columns)


def _relation(conn: psycopg.Connection[Any], name: str) -> int | None:
    """The oid of table ``name`` as the search path finds it (as LangGraph's unqualified SQL does)."""
    row = conn.execute("SELECT to_regclass(%s)::oid", (name,)).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def inspect(conn: psycopg.Connection[Any]) -> StoreInfo:
    info = StoreInfo()
    oid = _relation(conn, "store")
    if oid is None:
        return info
    cols = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped", (oid,)
    ).fetchall()
    info.store_columns = tuple(str(c[0]) for c in cols)
    voi = _relation(conn, "store_vectors")
    if voi is None:
        return info
    info.vectors = True
    row = conn.execute(
        "SELECT a.atttypmod, t.typname, n.nspname, obj_description(%s, 'pg_class') FROM pg_attribute a "
        "JOIN pg_type t ON t.oid = a.atttypid JOIN pg_namespace n ON n.oid = t.typnamespace "
        "WHERE a.attrelid = %s AND a.attname = 'embedding' AND NOT a.attisdropped",
        (voi, voi),
    ).fetchone()
    if row is not None:
        typmod, typname, schema, comment = row
        info.dims = int(typmod) if typmod and typmod > 0 else None
        info.vector_type, info.type_schema = str(typname), str(schema)
        if comment:
            try:
                parsed = orjson.loads(comment)
            except orjson.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict) and isinstance(parsed.get("vexrun"), dict):
                info.meta = parsed["vexrun"]
    info.indexes = dict(
        conn.execute(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = %s",
            (voi,),
        ).fetchall()
    )
    return info
