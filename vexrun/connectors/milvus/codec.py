"""Records to Milvus rows and back, for the layout described in :mod:`.common`: lossless, or refused per
record with the reason (never truncated)."""

from __future__ import annotations

from typing import Any

import orjson

from ...vmig.model import Record
from .common import ID, MAX_ID_BYTES, MAX_JSON_BYTES, MAX_VARCHAR_BYTES, METADATA, NAMESPACE, TEXT, VECTOR, VEXRUN
from .common import dumps as _dumps

__all__ = ["decode_row", "encode_row", "row_bytes"]

#: Record fields kept in the ``_vexrun`` JSON field (only when not None).
_EXTRA_FIELDS = ("model", "created_at", "source_store", "modality", "score", "vex_version", "extra")
#: Fields that have a column of their own but may be None in a Record: stored as ""/{} and listed in "null".
_NULLABLE = (TEXT, NAMESPACE, METADATA)


def _loads(value: Any) -> Any:
    if value is None or isinstance(value, dict | list):
        return value
    return orjson.loads(value)


def encode_row(rec: Record, vector: Any, namespace: str | None) -> tuple[dict[str, Any] | None, str | None, int]:
    """(row, None, bytes) for a record the collection can hold, or (None, reason, 0)."""
    rid = rec.id
    id_bytes = len(rid.encode("utf-8"))
    if not rid:
        return None, "empty id", 0
    if id_bytes > MAX_ID_BYTES:
        return None, f"id is {id_bytes:,} bytes; the collection's primary key holds at most {MAX_ID_BYTES}", 0
    text = rec.text
    text_bytes = len(text.encode("utf-8")) if text else 0
    if text_bytes > MAX_VARCHAR_BYTES:
        return (
            None,
            f"text is {text_bytes:,} bytes; Milvus holds at most {MAX_VARCHAR_BYTES:,} in a VARCHAR field "
            "(split long texts with the chunk stage)",
            0,
        )
    ns = rec.namespace if rec.namespace is not None else namespace
    if ns is not None and len(ns.encode("utf-8")) > MAX_VARCHAR_BYTES:
        return None, f"namespace is over {MAX_VARCHAR_BYTES:,} bytes", 0
    nulls = [name for name, value in ((TEXT, text), (NAMESPACE, ns), (METADATA, rec.metadata)) if value is None]
    try:
        meta = _dumps(rec.metadata if rec.metadata is not None else {})
        extra: dict[str, Any] = {}
        for name in _EXTRA_FIELDS:
            value = getattr(rec, name)
            if value is not None:
                extra[name] = value
        if nulls:
            extra["null"] = nulls
        vex = _dumps(extra)
    except (TypeError, ValueError) as exc:
        return None, f"metadata or extra fields are not JSON ({exc})", 0
    meta_bytes, vex_bytes = len(meta.encode("utf-8")), len(vex.encode("utf-8"))
    if meta_bytes > MAX_JSON_BYTES:
        return None, f"metadata is {meta_bytes:,} bytes of JSON; Milvus holds at most {MAX_JSON_BYTES:,}", 0
    if vex_bytes > MAX_JSON_BYTES:
        return None, f"extra fields are {vex_bytes:,} bytes of JSON; Milvus holds at most {MAX_JSON_BYTES:,}", 0
    row = {ID: rid, VECTOR: vector, TEXT: text or "", NAMESPACE: ns or "", METADATA: meta, VEXRUN: vex}
    return row, None, 64 + id_bytes + text_bytes + meta_bytes + vex_bytes


def row_bytes(dims: int) -> int:
    """The bytes of a row's vector (added to what :func:`encode_row` counts)."""
    return 4 * dims


def decode_row(row: dict[str, Any]) -> Record:
    """The Record a row of a vexrun collection holds (its vector is read separately)."""
    extra = _loads(row.get(VEXRUN)) or {}
    nulls = set(extra.pop("null", ()))
    meta = _loads(row.get(METADATA))
    score = extra.get("score")
    return Record(
        id=str(row[ID]),
        text=None if TEXT in nulls else row.get(TEXT),
        namespace=None if NAMESPACE in nulls else row.get(NAMESPACE),
        metadata=None if METADATA in nulls else meta,
        model=extra.get("model"),
        created_at=extra.get("created_at"),
        source_store=extra.get("source_store"),
        modality=extra.get("modality"),
        score=float(score) if score is not None else None,
        vex_version=extra.get("vex_version"),
        extra=extra.get("extra"),
    )
