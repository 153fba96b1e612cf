"""Converting between vexrun records / edges and Neo4j node / relationship properties (no SDK import).

A record is a node of the configured label::

    (:Memory {id, text, namespace, embedding: [floats], created_at, _vexrun: "{...}", <metadata keys>...})

Metadata is flattened into properties where Neo4j can hold the value (scalars, lists of one scalar type); the
runner has already turned the rest into JSON text listed in ``_vexrun_json`` (see :mod:`..encoding`), and this
module does the same for what Neo4j refuses although the capabilities let it through (integers beyond 64 bits,
lists of lists or maps). ``_vexrun`` is JSON text with the Record fields that have no property of their own
(model, source_store, modality, score, vex_version, extra), ``"e": 1`` when the metadata was ``{}`` rather than
absent, and ``"m"``: metadata whose key is one of the record's own property names (or empty).

An edge is one relationship ``(src)-[:type {weight, <metadata keys>...}]->(dst)``. Its type is the edge type
with every character outside ``[A-Za-z0-9_]`` replaced by ``_``; when that changed it, the original is kept in
``_vexrun_type``. Metadata is flattened as for nodes, with its own ``_vexrun`` / ``_vexrun_json``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import orjson

from ...errors import InvalidInput
from ...vmig.batch import Batch
from ...vmig.model import Record
from ..base import Edge
from ..encoding import JSON_KEYS
from .config import Neo4jStoreConfig

__all__ = [
    "RESERVED",
    "decode_edge",
    "edge_props",
    "edge_type",
    "node_props",
    "nodes_to_batch",
    "quote",
]

RESERVED = "_vexrun"
TYPE_KEY = "_vexrun_type"
_RECORD_FIELDS = ("model", "source_store", "modality", "score", "vex_version", "extra")
_INT64 = (-(2**63), 2**63 - 1)
_SCALARS = (bool, int, float, str)
_TYPE_CHARS = re.compile(r"[^A-Za-z0-9_]")


def quote(name: str) -> str:
    """A label, relationship type or property name as a Cypher identifier."""
    return "`" + name.replace("`", "``") + "`"


def edge_type(kind: str) -> str:
    """The relationship type of an edge type: ``[A-Za-z0-9_]`` only, never empty, not starting with a digit."""
    clean = _TYPE_CHARS.sub("_", kind)
    return clean if clean and not clean[0].isdigit() else f"_{clean}"


def _json(value: Any) -> str:
    """JSON text of a value (the stdlib for integers beyond 64 bits, which orjson refuses)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _storable(value: Any) -> bool:
    """Neo4j holds this value as a property: a scalar (64-bit integers) or a list of one scalar type."""
    if isinstance(value, bool | str | float):
        return True
    if isinstance(value, int):
        return _INT64[0] <= value <= _INT64[1]
    if isinstance(value, list):
        kinds = {type(v) for v in value}
        return len(kinds) <= 1 and all(isinstance(v, _SCALARS) and _storable(v) for v in value)
    return False


def _flatten(meta: dict[str, Any] | None, reserved: Iterable[str], props: dict[str, Any], own: dict[str, Any]) -> None:
    """Put metadata into ``props`` (and what cannot be a property of its own into ``own``)."""
    if meta is None:
        return
    if not meta:
        own["e"] = 1
        return
    taken = set(reserved)
    encoded: list[str] = []
    before = meta.get(JSON_KEYS)
    keys: list[str] = orjson.loads(before) if isinstance(before, str) else []
    for key, value in meta.items():
        if not key or key in taken:
            own.setdefault("m", {})[key] = value
        elif key == JSON_KEYS or _storable(value):
            props[key] = value
        else:
            props[key] = _json(value)
            encoded.append(key)
    if encoded:
        props[JSON_KEYS] = orjson.dumps([*keys, *[k for k in encoded if k not in keys]]).decode()


def node_props(rec: Record, vector: np.ndarray | None, cfg: Neo4jStoreConfig, default_ns: str | None) -> dict[str, Any]:
    """Every property of the node of a record (``SET m = props`` replaces the node's properties)."""
    props: dict[str, Any] = {"id": rec.id}
    own: dict[str, Any] = {name: getattr(rec, name) for name in _RECORD_FIELDS if getattr(rec, name) is not None}
    if rec.text is not None:
        props[cfg.text_key] = rec.text
    ns = rec.namespace if rec.namespace is not None else default_ns
    if ns is not None:
        props[cfg.namespace_key] = ns
    if vector is not None:
        props[cfg.embedding_key] = vector.tolist()
    if rec.created_at is not None:
        props["created_at"] = rec.created_at
    _flatten(rec.metadata, node_keys(cfg), props, own)
    if own:
        props[RESERVED] = _json(own)
    return props


def node_keys(cfg: Neo4jStoreConfig) -> tuple[str, ...]:
    """The node properties that are not metadata."""
    return ("id", cfg.text_key, cfg.namespace_key, cfg.embedding_key, "created_at", RESERVED)


def plain(value: Any) -> Any:
    """A property value as JSON data: temporal values as ISO text, points as [x, y(, z)], bytes as base64."""
    if value is None or isinstance(value, _SCALARS):
        return value
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    iso = getattr(value, "iso_format", None)
    if callable(iso):
        return str(iso())
    if hasattr(value, "srid") and isinstance(value, tuple):
        return list(value)
    return str(value)


def _blob(value: Any) -> dict[str, Any]:
    if not isinstance(value, str):
        return {}
    try:
        got = orjson.loads(value)
    except orjson.JSONDecodeError:
        return {}
    return got if isinstance(got, dict) else {}


def _vector_of(value: Any) -> np.ndarray | None:
    """A property as a vector: a non-empty list of numbers (not booleans)."""
    if not isinstance(value, list) or not value:
        return None
    try:
        arr = np.asarray(value)
    except ValueError:  # ragged nested lists
        return None
    return arr if arr.ndim == 1 and arr.dtype.kind in "fiu" else None


def nodes_to_batch(rows: Sequence[dict[str, Any]], cfg: Neo4jStoreConfig) -> Batch:
    """Turn node property maps into a batch (still store-encoded: the runner's ``from_store`` decodes)."""
    records: list[Record] = []
    vectors: list[np.ndarray | None] = []
    for props in rows:
        props = dict(props)
        rid = props.pop("id", None)
        text = props.pop(cfg.text_key, None)
        ns = props.pop(cfg.namespace_key, None)
        raw_vec = props.pop(cfg.embedding_key, None)
        created = props.pop("created_at", None)
        raw_own = props.pop(RESERVED, None)
        own = _blob(raw_own)
        foreign: dict[str, Any] = {}
        if raw_own is not None and not own:
            foreign[RESERVED] = raw_own
        vec = _vector_of(raw_vec)
        if raw_vec is not None and vec is None:
            foreign[cfg.embedding_key] = raw_vec
        if text is not None and not isinstance(text, str):
            foreign[cfg.text_key], text = text, None
        if ns is not None and not isinstance(ns, str):
            foreign[cfg.namespace_key], ns = ns, None
        if created is not None and not isinstance(created, str):
            created = plain(created)
            created = created if isinstance(created, str) else None
        meta = {k: plain(v) for k, v in {**props, **foreign}.items()}
        kept = own.get("m")
        if isinstance(kept, dict):
            meta.update(kept)
        metadata: dict[str, Any] | None = meta if meta or own.get("e") else None
        score = own.get("score")
        records.append(
            Record(
                id=str(rid),
                text=text,
                model=own.get("model"),
                dims=len(vec) if vec is not None else None,
                namespace=ns,
                metadata=metadata,
                created_at=created,
                source_store=own.get("source_store"),
                modality=own.get("modality"),
                score=float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None,
                vex_version=own.get("vex_version"),
                extra=own.get("extra") if isinstance(own.get("extra"), dict) else None,
            )
        )
        vectors.append(vec)
    return _with_vectors(records, vectors)


def _with_vectors(records: list[Record], vectors: list[np.ndarray | None]) -> Batch:
    if not any(v is not None for v in vectors):
        return Batch(records=records)
    dims = {len(v) for v in vectors if v is not None}
    if len(dims) != 1:
        raise InvalidInput(f"neo4j nodes of one label have vectors of several sizes: {sorted(dims)}")
    (d,) = dims
    mat = np.zeros((len(records), d), dtype=np.float32)
    mask = np.zeros(len(records), dtype=bool)
    for i, v in enumerate(vectors):
        if v is not None:
            mat[i] = v
            mask[i] = True
    return Batch(records=records, vectors=mat, has_vector=mask)


# -- edges --------------------------------------------------------------------------------------------------
def edge_props(edge: Edge) -> dict[str, Any]:
    """Every property of the relationship of an edge."""
    props: dict[str, Any] = {"weight": float(edge.weight)}
    own: dict[str, Any] = {}
    if edge_type(edge.type) != edge.type:
        props[TYPE_KEY] = edge.type
    _flatten(edge.metadata, ("weight", TYPE_KEY, RESERVED), props, own)
    if own:
        props[RESERVED] = _json(own)
    return props


def decode_edge(src: str, dst: str, rel_type: str, props: dict[str, Any]) -> Edge:
    """The edge of a relationship read back (its JSON-encoded metadata values decoded)."""
    props = dict(props)
    weight = props.pop("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        props["weight"], weight = weight, 1.0
    kind = props.pop(TYPE_KEY, None)
    kind = kind if isinstance(kind, str) else rel_type
    own = _blob(props.pop(RESERVED, None))
    keys = props.pop(JSON_KEYS, None)
    meta = {k: plain(v) for k, v in props.items()}
    if isinstance(keys, str):
        for key in json.loads(keys):
            value = meta.get(key)
            if isinstance(value, str):
                meta[key] = json.loads(value)  # the stdlib keeps integers beyond 64 bits exact
    kept = own.get("m")
    if isinstance(kept, dict):
        meta.update(kept)
    return Edge(str(src), str(dst), kind, float(weight), meta if meta or own.get("e") else None)
