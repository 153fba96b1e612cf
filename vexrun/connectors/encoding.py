"""Fitting records to what a store can hold, reversibly, from its declared capabilities.

The runner applies :func:`to_store` before a sink writes and :func:`from_store` after a source reads, so a
connector stores exactly what it is given and every store round-trips losslessly:

- an id the store cannot hold (Qdrant wants UUIDs or unsigned integers) becomes a deterministic UUID, and
  the original id is kept in ``metadata["_vexrun_id"]``;
- metadata the store cannot hold (lists in a scalars-only store, nulls where nulls are refused) is stored
  as JSON text, and the keys so encoded are listed in ``metadata["_vexrun_json"]``;
- batches are cut to the store's limits in records and bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import msgspec
import numpy as np
import orjson

from ..ids import uuid_for
from ..vmig.batch import Batch
from ..vmig.model import Record
from .base import Capabilities

__all__ = ["JSON_KEYS", "ORIGINAL_ID", "from_store", "needs_encoding", "split_for", "store_id", "to_store"]

ORIGINAL_ID = "_vexrun_id"
JSON_KEYS = "_vexrun_json"
#: set when the record had no metadata at all (None, not {}) and encoding had to add some
NO_METADATA = "_vexrun_nometa"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_UINT = re.compile(r"(0|[1-9][0-9]{0,18})\Z")


def _id_ok(rid: str, caps: Capabilities) -> bool:
    if caps.ids == "uuid-or-uint":
        return bool(_UUID.match(rid)) or (bool(_UINT.match(rid)) and int(rid) < 2**64)
    if caps.max_id_bytes is not None:
        # a character is at most 4 bytes of UTF-8: most ids need no encoding to be measured
        return 4 * len(rid) <= caps.max_id_bytes or len(rid.encode("utf-8", "surrogatepass")) <= caps.max_id_bytes
    return True


def store_id(rid: str, caps: Capabilities | None) -> str:
    """The id a record (or an edge end) has in a store with these capabilities."""
    return rid if caps is None or _id_ok(rid, caps) else uuid_for(rid)


def _value_ok(value: Any, caps: Capabilities) -> bool:
    if value is None:
        return caps.metadata_nulls
    if isinstance(value, list):
        if caps.metadata == "scalars":
            return False
        if not caps.metadata_nulls and any(v is None for v in value):
            return False
        return caps.metadata == "nested" or not caps.list_types_uniform or len({type(v) for v in value}) <= 1
    if isinstance(value, dict):
        return caps.metadata == "nested"
    return True


def needs_encoding(caps: Capabilities | None) -> bool:
    return caps is not None and (
        caps.ids != "any" or caps.max_id_bytes is not None or caps.metadata != "nested" or not caps.metadata_nulls
    )


def _holds_any_metadata(caps: Capabilities) -> bool:
    return caps.metadata == "nested" and caps.metadata_nulls


def _encode_record(rec: Record, caps: Capabilities, check_metadata: bool = True) -> Record:
    meta = rec.metadata
    new_id = rec.id
    changed_meta: dict[str, Any] | None = None
    if not _id_ok(rec.id, caps):
        new_id = uuid_for(rec.id)
        changed_meta = dict(meta or {})
        changed_meta[ORIGINAL_ID] = rec.id
        if meta is None:
            changed_meta[NO_METADATA] = True
    if meta and check_metadata:
        encoded = [k for k, v in meta.items() if not _value_ok(v, caps)]
        if encoded:
            changed_meta = dict(changed_meta if changed_meta is not None else meta)
            for key in encoded:
                changed_meta[key] = orjson.dumps(meta[key]).decode()
            changed_meta[JSON_KEYS] = orjson.dumps(encoded).decode()
    if changed_meta is None:
        return rec
    return msgspec.structs.replace(rec, id=new_id, metadata=changed_meta)


def to_store(batch: Batch, caps: Capabilities | None) -> Batch:
    """The batch as the store can hold it (records copied only where something changes)."""
    if not needs_encoding(caps):
        return batch
    assert caps is not None
    check_metadata = not _holds_any_metadata(caps)
    records = [_encode_record(r, caps, check_metadata) for r in batch.records]
    if all(a is b for a, b in zip(records, batch.records, strict=True)):
        return batch
    return Batch(
        records=records,
        vectors=batch.vectors,
        has_vector=batch.has_vector,
        lines=batch.lines,
        rejects=batch.rejects,
        warnings=batch.warnings,
        cursor=batch.cursor,
    )


def _decode_record(rec: Record) -> Record:
    meta = rec.metadata
    if not meta or (ORIGINAL_ID not in meta and JSON_KEYS not in meta and NO_METADATA not in meta):
        return rec
    meta = dict(meta)
    rid = meta.pop(ORIGINAL_ID, rec.id)
    none = bool(meta.pop(NO_METADATA, False))
    keys = meta.pop(JSON_KEYS, None)
    if isinstance(keys, str):
        for key in orjson.loads(keys):
            value = meta.get(key)
            if isinstance(value, str):
                meta[key] = orjson.loads(value)
    return msgspec.structs.replace(rec, id=str(rid), metadata=None if none else meta)


def from_store(batch: Batch) -> Batch:
    """Undo :func:`to_store`: original ids and metadata values back."""
    if not any(r.metadata and (ORIGINAL_ID in r.metadata or JSON_KEYS in r.metadata) for r in batch.records):
        return batch
    batch.records = [_decode_record(r) for r in batch.records]
    return batch


def _record_bytes(rec: Record, dims: int) -> int:
    size = 64 + 4 * dims + len((rec.text or "").encode("utf-8")) + len(rec.id)
    if rec.metadata:
        try:
            size += len(orjson.dumps(rec.metadata, default=str))
        except TypeError:  # an integer beyond 64 bits, which orjson refuses: measured as text
            size += len(json.dumps(rec.metadata, default=str, ensure_ascii=False).encode("utf-8"))
    return size


def split_for(batch: Batch, caps: Capabilities | None) -> Iterator[Batch]:
    """Cut a batch to the store's limits in records and bytes (a batch within them is yielded as is)."""
    if caps is None or (caps.max_batch_records is None and caps.max_batch_bytes is None) or not len(batch):
        yield batch
        return
    max_n = caps.max_batch_records or len(batch)
    max_b = caps.max_batch_bytes
    dims = batch.dims or 0
    start = 0
    n = len(batch)
    while start < n:
        end = start
        size = 0
        while end < n and end - start < max_n:
            rb = _record_bytes(batch.records[end], dims) if max_b else 0
            if max_b and end > start and size + rb > max_b:
                break
            size += rb
            end += 1
        if start == 0 and end == n:
            yield batch
            return
        part = Batch(records=batch.records[start:end], cursor=batch.cursor)
        if batch.vectors is not None:
            part.vectors = np.ascontiguousarray(batch.vectors[start:end])
            part.has_vector = None if batch.has_vector is None else batch.has_vector[start:end]
        yield part
        start = end
