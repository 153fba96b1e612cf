"""Converting between vexrun records and Pinecone records (``id``, ``values``, ``metadata``), and cutting
upserts to Pinecone's request limits. No SDK import here.

A Pinecone record as vexrun writes it: the record's metadata at the top level (so Pinecone filters and other
tools see it as usual), its text under ``text_key``, and one reserved string::

    {...user metadata..., "text": "...", "_vexrun": "{\"model\": ..., \"created_at\": ..., \"i\": [...]}"}

``_vexrun`` is JSON text with the Record fields Pinecone has no place for (model, created_at, source_store,
modality, score, vex_version, extra; ``"e": 1`` when the metadata was ``{}`` rather than absent; ``"i"``, the
keys whose numbers were integers: Pinecone keeps every number as a double and answers ``3.0`` for ``3``).

Pinecone holds strings, numbers, booleans and lists of strings. The runner already JSON-encodes what its
declared capabilities exclude (nulls, lists of mixed types); the rest that Pinecone refuses (lists of numbers
or booleans, integers a double cannot hold exactly) is stored as JSON text here and listed in
``_vexrun_json``, the runner's own convention, so it decodes on the way back. Ids Pinecone refuses (non-ASCII,
a NUL) become a deterministic UUID with the original kept in ``_vexrun_id``, as the runner does for ids that
are too long.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from ...ids import uuid_for
from ...vmig.batch import Batch
from ...vmig.model import Record
from ..encoding import JSON_KEYS, NO_METADATA, ORIGINAL_ID

__all__ = [
    "MAX_METADATA_BYTES",
    "RESERVED",
    "JSONRow",
    "WireRecord",
    "chunks",
    "decode",
    "item_size",
    "record_metadata",
    "store_key",
    "to_batch",
    "wire_values",
]

RESERVED = "_vexrun"
MAX_METADATA_BYTES = 40960
MAX_ID_CHARS = 512
_RECORD_FIELDS = ("model", "created_at", "source_store", "modality", "score", "vex_version", "extra")
_EXACT_INT = 2**53
#: JSON framing of one record in an upsert body: {"id":,"values":,"metadata":} and the comma between records
_FRAME = len(b'{"id":,"values":,"metadata":},')


def store_key(rid: str) -> str:
    """The id a record has in Pinecone: itself, or a uuid5 when Pinecone cannot hold it (1-512 ASCII characters
    without NUL; longer ids were already turned into uuids by the runner)."""
    if rid and len(rid) <= MAX_ID_CHARS and rid.isascii() and "\x00" not in rid:
        return rid
    return uuid_for(rid)


def _json(value: Any) -> str:
    """JSON text of a value (the stdlib for what orjson refuses: integers beyond 64 bits, NaN)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def record_metadata(rec: Record, key: str, text_key: str) -> tuple[dict[str, Any] | None, int] | str:
    """(the Pinecone metadata of a record, its size in bytes) or the reason it cannot be stored."""
    meta: dict[str, Any] = {}
    user = rec.metadata
    ints: list[str] = []
    if user:
        if text_key in user or RESERVED in user:
            name = text_key if text_key in user else RESERVED
            return f"metadata key '{name}' is reserved in this index (set text_key to another name)"
        encoded: list[str] = []
        items: dict[str, Any] = user
        for name, value in items.items():
            kind = type(value)
            # what Pinecone holds and gives back equal: strings, booleans, finite numbers (integers that a double
            # holds exactly, listed apart), lists of strings
            if kind is str or kind is bool or (kind is float and math.isfinite(value)):
                meta[name] = value
            elif kind is int and -_EXACT_INT <= value <= _EXACT_INT:
                meta[name] = value
                ints.append(name)
            elif kind is list and all(type(v) is str for v in value):
                meta[name] = value
            else:
                meta[name] = _json(value)
                encoded.append(name)
        if encoded:
            before = meta.get(JSON_KEYS)
            keys = orjson.loads(before) if isinstance(before, str) else []
            meta[JSON_KEYS] = orjson.dumps([*keys, *[k for k in encoded if k not in keys]]).decode()
    if key != rec.id:
        meta[ORIGINAL_ID] = rec.id
        if user is None:
            meta[NO_METADATA] = True
    if rec.text is not None:
        meta[text_key] = rec.text
    own: dict[str, Any] = {name: getattr(rec, name) for name in _RECORD_FIELDS if getattr(rec, name) is not None}
    if user is not None and not user:
        own["e"] = 1
    if ints:
        own["i"] = ints
    if own:
        meta[RESERVED] = _json(own)
    if not meta:
        return None, 0
    size = len(orjson.dumps(meta))
    if size > MAX_METADATA_BYTES:
        return (
            f"metadata and text take {size:,} bytes; Pinecone holds at most {MAX_METADATA_BYTES:,} per record "
            "(chunk the text smaller, or keep less metadata)"
        )
    return meta, size


def decode(metadata: dict[str, Any] | None, text_key: str) -> tuple[str | None, dict[str, Any] | None, dict[str, Any]]:
    """(text, metadata, own fields) of a Pinecone record's metadata, integers restored. Metadata that vexrun did
    not write is kept as it is (a foreign ``text_key`` value that is not a string stays in the metadata)."""
    meta = dict(metadata) if metadata else {}
    text = meta.pop(text_key, None)
    if text is not None and not isinstance(text, str):
        meta[text_key], text = text, None
    own: dict[str, Any] = {}
    raw = meta.pop(RESERVED, None)
    if isinstance(raw, str):
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            own = parsed
        else:
            meta[RESERVED] = raw
    elif raw is not None:
        meta[RESERVED] = raw
    ints = own.get("i")
    if isinstance(ints, list):
        for name in ints:
            value = meta.get(name)
            if isinstance(value, float) and value.is_integer():
                meta[name] = int(value)
    return text, (meta if meta or own.get("e") else None), own


def _record(
    key: str, values: Sequence[float] | None, metadata: dict[str, Any] | None, namespace: str, text_key: str
) -> Record:
    text, meta, own = decode(metadata, text_key)
    score = own.get("score")
    extra = own.get("extra")
    return Record(
        id=key,
        text=text,
        model=own.get("model"),
        dims=len(values) if values is not None and len(values) else None,
        namespace=namespace or None,
        metadata=meta,
        created_at=own.get("created_at"),
        source_store=own.get("source_store"),
        modality=own.get("modality"),
        score=float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None,
        vex_version=own.get("vex_version"),
        extra=extra if isinstance(extra, dict) else None,
    )


def to_batch(rows: Sequence[tuple[str, Sequence[float] | None, dict[str, Any] | None, str]], text_key: str) -> Batch:
    """A batch of (Pinecone id, values, metadata, namespace) rows, records as stored (ids and metadata still in
    the store's encoding: :func:`~..encoding.from_store` decodes them). Values are float lists or arrays; empty
    or None is a record without a vector."""
    records = [_record(key, values, meta, ns, text_key) for key, values, meta, ns in rows]
    sizes = [0 if values is None else len(values) for _, values, _, _ in rows]
    dims = {size for size in sizes if size}
    if not dims:
        return Batch(records=records)
    if len(dims) > 1:
        raise ValueError(f"records of several dimensions: {sorted(dims)}")
    (d,) = dims
    if all(sizes):  # one conversion for the whole matrix
        mat = np.asarray([values for _, values, _, _ in rows], dtype=np.float32)
        return Batch(records=records, vectors=mat, has_vector=np.ones(len(rows), dtype=bool))
    mat = np.zeros((len(rows), d), dtype=np.float32)
    mask = np.zeros(len(rows), dtype=bool)
    for i, (_, values, _, _) in enumerate(rows):
        if sizes[i]:
            mat[i] = values
            mask[i] = True
    return Batch(records=records, vectors=mat, has_vector=mask)


class JSONRow(list):  # type: ignore[type-arg]
    """A row of values already in JSON: one ``orjson.Fragment`` holding ``0.1,-2.5,...``. The SDK checks that a
    record's values are a non-empty list and hands them to ``orjson.dumps``, which writes ``[`` + the fragment
    + ``]``: the request carries float32's shortest decimals without a Python float being made."""

    __slots__ = ()


#: Where a float32's shortest decimal could come back one bit off through a double (a decimal exponent of -13 or
#: below, or past 2**53): only there is ``float32(float64(decimal)) == value`` checked. Elsewhere the decimal
#: is provably further from a rounding boundary than half a double's ulp.
_SMALL, _LARGE = 1.001e-4, 2.0**52
_CLOSE = ord("]")


def wire_values(mat: np.ndarray, *, fragments: bool) -> tuple[list[Any], list[int]]:
    """The rows of a float32 matrix as the values of upsert records, written as float32's shortest decimal
    (``0.1``, not ``0.10000000149011612``): about half the JSON of ``tolist()``, so twice the records under
    Pinecone's 2 MB per request, and the same float32 values on arrival however the server parses them (as a
    float32, or as a double then a float32: the rows where the second could differ are checked, and sent as
    exact doubles). With ``fragments`` the rows are :class:`JSONRow` (no Python floats: less work than
    ``tolist()``); without, lists of the floats those decimals parse to. Returns (rows, JSON bytes of each)."""
    mat = np.ascontiguousarray(mat, dtype=np.float32)
    if not len(mat):
        return [], []
    raw = orjson.dumps(mat, option=orjson.OPT_SERIALIZE_NUMPY)
    # each row ends at a "]" (numbers have none): slicing at them costs 40% of splitting at "],["
    n = len(mat)
    ends = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == _CLOSE)[:n]
    starts = np.empty(n, dtype=np.int64)
    starts[0] = 2
    starts[1:] = ends[:-1] + 3
    parts = [raw[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]
    rows: list[Any] = [JSONRow([orjson.Fragment(part)]) for part in parts] if fragments else orjson.loads(raw)
    sizes = (ends - starts + 2).tolist()
    magnitude = np.abs(mat)
    where = np.nonzero((magnitude < _SMALL) | (magnitude >= _LARGE))
    if where[0].size:
        values = mat[where]
        parsed = np.asarray(orjson.loads(orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY)), dtype=np.float64)
        off = parsed.astype(np.float32).view(np.uint32) != values.view(np.uint32)
        for i in np.unique(where[0][off]).tolist():
            rows[i] = mat[i].astype(np.float64).tolist()
            sizes[i] = len(orjson.dumps(rows[i]))
    return rows, sizes


class WireRecord:
    """One record ready for an upsert request: the dict the SDK sends and its JSON size."""

    __slots__ = ("item", "row", "size")

    def __init__(self, item: dict[str, Any], size: int, row: int) -> None:
        self.item = item
        self.size = size
        #: its row in the batch the sink was given
        self.row = row


def chunks(records: Sequence[WireRecord], max_records: int, max_bytes: int, namespace: str) -> list[list[WireRecord]]:
    """Consecutive runs of records within ``max_records`` and ``max_bytes`` of request body each."""
    out: list[list[WireRecord]] = []
    cur: list[WireRecord] = []
    frame = 32 + len(orjson.dumps(namespace))  # {"vectors":[...],"namespace":"..."}
    size = frame
    for rec in records:
        if cur and (len(cur) >= max_records or size + rec.size > max_bytes):
            out.append(cur)
            cur, size = [], frame
        cur.append(rec)
        size += rec.size
    if cur:
        out.append(cur)
    return out


def item_size(key: str, row_bytes: int, meta_bytes: int) -> int:
    """JSON bytes of one record in an upsert body."""
    return _FRAME + len(key) + 2 + key.count('"') + key.count("\\") + row_bytes + meta_bytes
