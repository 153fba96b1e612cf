"""Records as Redis stores them, and back.

A HASH (``storage: hash``, the default), field names configurable::

    text       the text (absent: None)
    embedding  the vector: dims little-endian FLOAT32, 4 bytes each, as RediSearch reads it
    namespace  the namespace (absent: None)
    metadata   the metadata as JSON text (absent: None; '{}' stays {})
    _vexrun    JSON text of the Record fields Redis has no place for: model, created_at, source_store,
               modality, score, vex_version, extra

A JSON document (``storage: json``) has the same fields, with the metadata as a nested object and the vector
as an array of numbers. RedisJSON parses numbers to the nearest double only most of the time (about one value
in seven comes back one unit in the last place off), so ``_vexrun`` stays JSON text, and when the metadata
holds floats (or integers beyond 64 bits) its exact JSON text is kept there too (``m``): read back, the exact
value is used while the document's own value is still that value give or take the rounding. FLOAT32 vectors
are not affected (a float32 survives a double's last-place error). JSON text is written and read with msgspec,
which keeps integers of any size.

Fields of a key that vexrun does not own (a hash written by another tool) are read into the metadata.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import orjson

from ...errors import InvalidInput
from ...vmig.batch import Batch
from ...vmig.model import Record
from .config import RedisStoreConfig

__all__ = [
    "RESERVED",
    "Item",
    "Layout",
    "hash_fields",
    "json_document",
    "json_loads",
    "json_text",
    "record_from_hash",
    "record_from_json",
    "to_batch",
]

RESERVED = "_vexrun"
_RECORD_FIELDS = ("model", "created_at", "source_store", "modality", "score", "vex_version", "extra")
_INT64 = (-(2**63), 2**63 - 1)
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

Item = tuple[Record, "np.ndarray | None"]


class Layout:
    """The field names of one collection, as str and as the bytes redis-py returns."""

    def __init__(self, cfg: RedisStoreConfig) -> None:
        self.text = cfg.text_field
        self.vector = cfg.vector_field
        self.namespace = cfg.namespace_field
        self.metadata = cfg.metadata_field
        self.owned = (self.text, self.vector, self.namespace, self.metadata, RESERVED)
        self.b_text, self.b_vector, self.b_namespace, self.b_metadata, self.b_reserved = (
            f.encode() for f in self.owned
        )


def _own(rec: Record) -> dict[str, Any]:
    return {name: getattr(rec, name) for name in _RECORD_FIELDS if getattr(rec, name) is not None}


def _inexact(value: Any) -> bool:
    """Whether RedisJSON may not give this value back exactly (floats, integers beyond 64 bits)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return True
    if isinstance(value, int):
        return not _INT64[0] <= value <= _INT64[1]
    if isinstance(value, list):
        return any(_inexact(v) for v in value)
    if isinstance(value, dict):
        return any(_inexact(v) for v in value.values())
    return False


def _near(stored: Any, exact: Any) -> bool:
    """RedisJSON's value is the exact one give or take its rounding (not a value changed since)."""
    if isinstance(stored, dict) and isinstance(exact, dict):
        return stored.keys() == exact.keys() and all(_near(stored[k], exact[k]) for k in exact)
    if isinstance(stored, list) and isinstance(exact, list):
        return len(stored) == len(exact) and all(_near(a, b) for a, b in zip(stored, exact, strict=True))
    if isinstance(stored, bool) or isinstance(exact, bool):
        return stored is exact
    if isinstance(stored, int | float) and isinstance(exact, int | float):
        return stored == exact or abs(stored - exact) <= 1e-12 * max(1.0, abs(exact))
    return bool(stored == exact)


def hash_fields(
    rec: Record, vector: bytes, layout: Layout, default_ns: str | None
) -> tuple[list[bytes | str], list[str]]:
    """(HSET field/value arguments, the owned fields the record lacks: HDEL them so an upsert replaces)."""
    args: list[bytes | str] = [layout.vector, vector]
    absent: list[str] = []
    if rec.text is not None:
        args += [layout.text, rec.text]
    else:
        absent.append(layout.text)
    ns = rec.namespace if rec.namespace is not None else default_ns
    if ns is not None:
        args += [layout.namespace, ns]
    else:
        absent.append(layout.namespace)
    if rec.metadata is not None:
        args += [layout.metadata, _encode(rec.metadata)]
    else:
        absent.append(layout.metadata)
    own = _own(rec)
    if own:
        args += [RESERVED, _encode(own)]
    else:
        absent.append(RESERVED)
    return args, absent


def json_document(rec: Record, vector: np.ndarray, layout: Layout, default_ns: str | None) -> bytes:
    """The JSON document of a record (JSON.SET key $ <document> replaces the whole document). The vector is
    written as float32 numbers in their shortest form (orjson), which RedisJSON gives back exactly."""
    doc: dict[str, Any] = {}
    if rec.text is not None:
        doc[layout.text] = rec.text
    ns = rec.namespace if rec.namespace is not None else default_ns
    if ns is not None:
        doc[layout.namespace] = ns
    own = _own(rec)
    if rec.metadata is not None:
        doc[layout.metadata] = rec.metadata
        if _inexact(rec.metadata):
            own["m"] = _encode(rec.metadata).decode()
    if own:
        doc[RESERVED] = _encode(own).decode()
    head = _encode(doc)
    vec = orjson.dumps(np.ascontiguousarray(vector, dtype=np.float32), option=orjson.OPT_SERIALIZE_NUMPY)
    rest = b"}" if head == b"{}" else b"," + head[1:]
    return b"{" + _encode(layout.vector) + b":" + vec + rest


def json_text(value: Any) -> str:
    """JSON text of a value (integers of any size kept)."""
    return _encode(value).decode()


def json_loads(raw: Any) -> Any:
    """Parsed JSON text, or None if it is not JSON (integers of any size kept)."""
    try:
        return _decode(raw)
    except (msgspec.DecodeError, TypeError):
        return None


def _record(rid: str, text: Any, ns: Any, metadata: dict[str, Any] | None, own: dict[str, Any]) -> Record:
    score = own.get("score")
    extra = own.get("extra")
    return Record(
        id=rid,
        text=text,
        model=own.get("model") if isinstance(own.get("model"), str) else None,
        namespace=ns,
        metadata=metadata,
        created_at=own.get("created_at") if isinstance(own.get("created_at"), str) else None,
        source_store=own.get("source_store") if isinstance(own.get("source_store"), str) else None,
        modality=own.get("modality") if isinstance(own.get("modality"), str) else None,
        score=float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None,
        vex_version=own.get("vex_version") if isinstance(own.get("vex_version"), str) else None,
        extra=extra if isinstance(extra, dict) else None,
    )


def _str(value: bytes) -> str:
    return value.decode("utf-8", "surrogatepass")


def record_from_hash(rid: str, fields: dict[bytes, bytes] | list[bytes], layout: Layout) -> Item:
    """A record from HGETALL's reply: bytes to bytes, or the raw flat list [field, value, ...]."""
    foreign: dict[str, Any] = {}
    text = ns = None
    metadata: dict[str, Any] | None = None
    own: dict[str, Any] = {}
    vector = None
    if isinstance(fields, dict):
        pairs: Any = fields.items()
    else:
        flat = iter(fields)
        pairs = zip(flat, flat, strict=False)  # pairs of one iterator: strict cannot apply
    for key, value in pairs:
        if key == layout.b_vector and len(value) % 4 == 0 and value:
            vector = np.frombuffer(value, dtype="<f4")
        elif key == layout.b_text:
            text = _str(value)
        elif key == layout.b_namespace:
            ns = _str(value)
        elif key == layout.b_metadata:
            parsed = json_loads(value)
            if isinstance(parsed, dict):
                metadata = parsed
            else:
                foreign[layout.metadata] = value.decode("utf-8", "replace")
        elif key == layout.b_reserved:
            parsed = json_loads(value)
            if isinstance(parsed, dict):
                own = parsed
            else:
                foreign[RESERVED] = value.decode("utf-8", "replace")
        else:
            foreign[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    if foreign:
        metadata = {**foreign, **(metadata or {})}
    return _record(rid, text, ns, metadata, own), vector


def record_from_json(rid: str, doc: Any, layout: Layout) -> Item:
    """A record from a JSON document (parsed)."""
    if not isinstance(doc, dict):
        return _record(rid, None, None, {"value": doc}, {}), None
    foreign = {k: v for k, v in doc.items() if k not in layout.owned}
    text, ns = doc.get(layout.text), doc.get(layout.namespace)
    if text is not None and not isinstance(text, str):
        foreign[layout.text], text = text, None
    if ns is not None and not isinstance(ns, str):
        foreign[layout.namespace], ns = ns, None
    raw_own = doc.get(RESERVED)
    own = json_loads(raw_own.encode()) if isinstance(raw_own, str) else None
    if not isinstance(own, dict):
        if raw_own is not None:
            foreign[RESERVED] = raw_own
        own = {}
    meta = doc.get(layout.metadata)
    metadata: dict[str, Any] | None = meta if isinstance(meta, dict) else None
    if meta is not None and not isinstance(meta, dict):
        foreign[layout.metadata] = meta
    exact = own.pop("m", None)
    if metadata is not None and isinstance(exact, str):
        parsed = json_loads(exact.encode())
        if isinstance(parsed, dict) and _near(metadata, parsed):
            metadata = parsed
    if foreign:
        metadata = {**foreign, **(metadata or {})}
    vec = doc.get(layout.vector)
    vector = None
    if isinstance(vec, list) and vec and all(isinstance(v, int | float) and not isinstance(v, bool) for v in vec):
        vector = np.asarray(vec, dtype=np.float32)
    elif vec is not None:
        metadata = {**(metadata or {}), layout.vector: vec}
    return _record(rid, text, ns, metadata, own), vector


def to_batch(items: list[Item], where: str) -> Batch:
    """A batch of records and their vectors (all of one dimension: the first vector's)."""
    records = [rec for rec, _ in items]
    dims = next((len(vec) for _, vec in items if vec is not None), None)
    if dims is None:
        return Batch(records=records)
    mat = np.zeros((len(items), dims), dtype=np.float32)
    has = np.zeros(len(items), dtype=bool)
    for i, (rec, vec) in enumerate(items):
        if vec is None:
            continue
        if len(vec) != dims:
            raise InvalidInput(f"redis at {where}: record '{rec.id}' has a {len(vec)}-d vector, others {dims}-d")
        mat[i] = vec
        has[i] = True
        rec.dims = dims
    return Batch(records=records, vectors=mat, has_vector=has)
