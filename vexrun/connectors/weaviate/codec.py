"""Records as Weaviate objects, and back.

An object vexrun writes::

    uuid        the record id when it is a UUID, else uuid5 of it (:func:`object_key`)
    vector      {vector_name: the record's vector}
    properties  text             the text (``text_key``)
                vexrun_id        the record id (field tokenization: filters match it whole)
                created_at       the timestamp, as given
                namespace        the namespace, only without tenants (``namespace_key``)
                <metadata key>   each metadata value a property can hold, under its own key
                vexrun_meta      JSON of the metadata entries no property holds ({} for an empty metadata)
                vexrun           JSON of the other Record fields (model, source_store, modality, score, ...)
                                 and ``keys``, the metadata's key order, unless it is the order reading gives
                                 (the properties' keys sorted, then ``vexrun_meta``'s): a protobuf map, as
                                 properties arrive, has no order, and differs from process to process

A metadata value gets its own property when its key is a property name Weaviate keeps as given (first letter
not upper-case, no reserved name or suffix, no other property differing only in case) and the value has the
property's type: text, int (within 2**53: Weaviate keeps numbers as float64), number, boolean, or a non-empty
list of one of them. The first value seen of a key decides its type; a later value of another type goes to
``vexrun_meta``. Reading gives back exactly what was written. Objects other tools wrote read back with their
properties as metadata and their UUID as the id.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import uuid as uuid_lib
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import orjson

from ...ids import NAMESPACE
from ...vmig.model import Record

__all__ = ["OWN", "Codec", "object_key", "to_record"]

ID, META, RECORD, CREATED = "vexrun_id", "vexrun_meta", "vexrun", "created_at"
#: in the ``vexrun`` property: the metadata's keys in their order, when reading would not restore it by itself
KEYS = "keys"
_FIELDS = ("model", "source_store", "modality", "score", "vex_version", "extra")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_NAME = re.compile(r"[_a-z][_0-9A-Za-z]{0,230}\Z")
_RESERVED = {"_additional", "_id", "id"}
_SUFFIXES = ("_searchable", "_rangeable", "_temp", "__meta_count", "_propertyLength", "_nullState")
_PREFIX = NAMESPACE.bytes + b"id\x1f"
_SAFE_INT = 2**53
_SIMPLE = (str, int, float, bool)
#: own properties: name -> (data type, tokenization, filterable, searchable)
OWN = {
    ID: ("text", "field", True, False),
    CREATED: ("text", "field", True, False),
    META: ("text", "field", False, False),
    RECORD: ("text", "field", False, False),
}


def object_key(rid: str) -> str:
    """The UUID of a record's object: the id itself when it is a lower-case UUID, else a uuid5 of it
    (:func:`vexrun.ids.uuid_for`, computed without building ``uuid.UUID`` objects: a write keys every record)."""
    if _UUID.match(rid):
        return rid
    digest = bytearray(hashlib.sha1(_PREFIX + rid.encode("utf-8")).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # integers beyond 64 bits
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def dtype_of(value: Any) -> str | None:
    """The property type that holds ``value`` exactly, or None."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "int" if -_SAFE_INT <= value <= _SAFE_INT else None
    if isinstance(value, float):
        return "number" if math.isfinite(value) else None
    if isinstance(value, str):
        return "text"
    if isinstance(value, list) and value:
        kinds = {dtype_of(v) for v in value}
        if len(kinds) == 1 and (kind := kinds.pop()) is not None and all(type(v) is type(value[0]) for v in value):
            return f"{kind}[]"
    return None


@dataclass
class Codec:
    """Encodes records for one collection, knowing its properties (and the ones it is about to declare)."""

    text_key: str
    namespace_key: str | None
    #: property name -> data type, as the collection has them
    props: dict[str, str]
    #: properties a write needs that the collection does not have yet (declared before the write is sent)
    pending: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.own = {self.text_key, ID, META, RECORD, CREATED}
        if self.namespace_key:
            self.own.add(self.namespace_key)
        self._lower = {name.lower(): name for name in self.props}

    def declared(self) -> None:
        """The pending properties now exist."""
        self.props.update(self.pending)
        self._lower.update({name.lower(): name for name in self.pending})
        self.pending = {}

    def _slot(self, key: str, dtype: str) -> bool:
        """Whether the collection keeps ``key`` as a property of ``dtype`` (declaring it if new)."""
        if key in self.own:
            return False
        have = self.props.get(key) or self.pending.get(key)
        if have is not None:
            return have == dtype
        if not _NAME.match(key) or key in _RESERVED or key.endswith(_SUFFIXES):
            return False
        if key.lower() in self._lower or any(k.lower() == key.lower() for k in self.pending):
            return False
        self.pending[key] = dtype
        return True

    def encode(self, rec: Record, namespace: str | None) -> dict[str, Any]:
        """The properties of a record's object (``namespace`` only without tenants)."""
        props: dict[str, Any] = {ID: rec.id}
        if rec.text is not None:
            props[self.text_key] = rec.text
        if self.namespace_key and namespace is not None:
            props[self.namespace_key] = namespace
        own = {name: getattr(rec, name) for name in _FIELDS if getattr(rec, name) is not None}
        if rec.created_at is not None:
            if self.props.get(CREATED, "text") == "text":
                props[CREATED] = rec.created_at
            else:
                own[CREATED] = rec.created_at
        meta = rec.metadata
        if meta is not None:
            rest: dict[str, Any] = {}
            slotted: list[str] = []
            for key, value in meta.items():
                dtype = dtype_of(value)
                if dtype is not None and self._slot(key, dtype):
                    props[key] = value
                    slotted.append(key)
                else:
                    rest[key] = value
            if rest or not meta:
                props[META] = _dumps(rest)
            order = list(meta)
            if len(order) > 1 and order != sorted(slotted) + list(rest):
                own[KEYS] = order  # properties come back in no set order: reading sorts them unless told
        if own:
            props[RECORD] = _dumps(own)
        return props


def _plain(value: Any) -> Any:
    """A property value other tools may have written, as JSON-able metadata."""
    if isinstance(value, uuid_lib.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "latitude") and hasattr(value, "longitude"):
        return {"latitude": value.latitude, "longitude": value.longitude}
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


@functools.cache
def _skip(text_key: str, namespace_key: str | None) -> frozenset[str]:
    """The properties that are not metadata."""
    return frozenset({ID, RECORD, META, text_key, CREATED, *([namespace_key] if namespace_key else [])})


def to_record(
    uuid: Any, props: dict[str, Any], text_key: str, namespace_key: str | None, namespace: str | None
) -> Record:
    """The record of an object (``namespace`` from its tenant; without tenants it is read from ``namespace_key``)."""
    rid = props.get(ID)
    text = props.get(text_key)
    own: dict[str, Any] = {}
    raw = props.get(RECORD)
    if isinstance(raw, str):
        try:
            parsed = _loads(raw)
            own = parsed if isinstance(parsed, dict) else {}
        except ValueError:
            own = {}
    meta: dict[str, Any] = {}
    skip = _skip(text_key, namespace_key)
    if namespace_key:
        ns = props.get(namespace_key)
        namespace = ns if isinstance(ns, str) else None
    for name, value in props.items():
        if name not in skip and value is not None:
            meta[name] = value if type(value) in _SIMPLE else _plain(value)
    created = props.get(CREATED)
    if created is not None and not isinstance(created, str):
        meta[CREATED] = _plain(created)
        created = None
    if isinstance(text, str) is False and text is not None:
        meta[text_key] = _plain(text)
        text = None
    rest = props.get(META)
    meta = {key: meta[key] for key in sorted(meta)}  # a protobuf map's order differs from process to process
    metadata: dict[str, Any] | None = meta or None
    if isinstance(rest, str):
        try:
            parsed = _loads(rest)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            metadata = {**meta, **parsed}
    order = own.get(KEYS)
    if metadata and isinstance(order, list) and len(order) == len(metadata) and set(order) == metadata.keys():
        metadata = {key: metadata[key] for key in order}
    score = own.get("score")
    return Record(
        id=rid if isinstance(rid, str) else str(uuid),
        text=text,
        model=own.get("model"),
        namespace=namespace,
        metadata=metadata,
        created_at=created if isinstance(created, str) else own.get(CREATED),
        source_store=own.get("source_store"),
        modality=own.get("modality"),
        score=float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None,
        vex_version=own.get("vex_version"),
        extra=own.get("extra") if isinstance(own.get("extra"), dict) else None,
    )
