"""Records ↔ rows of the vexrun table, in PostgreSQL's binary COPY format and binary results.

Every field of a record round-trips exactly:

- ``embedding`` is ``vector(dims)``: float32 in both directions, built and read for a whole batch with numpy
  (big-endian on the wire), never through text.
- ``metadata`` / ``extra`` are ``jsonb``, which keeps values but not key order, and which would turn an
  integral float written with an exponent (``1e+16``) into an integer, ``-0.0`` into ``0`` and refuses
  ``\\u0000``. Those rare values are kept verbatim in the reserved ``_vexrun`` column instead (the ``jsonb``
  column is then NULL), so they come back as they were given.
- ``created_at`` is ``timestamptz``; a text that does not come back the same from the timestamp (another
  offset, other fractional digits, no zone, not a timestamp at all) is kept verbatim in ``_vexrun``.
- PostgreSQL text cannot hold NUL characters or invalid UTF-8: such records are refused, with the reason.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson

from ...errors import FormatError
from ...vmig.batch import Batch
from ...vmig.model import Record

__all__ = [
    "COLUMNS",
    "COPY_HEADER",
    "COPY_TRAILER",
    "MAX_ID_BYTES",
    "Decoder",
    "Encoder",
    "Refused",
    "json_loads",
    "render_timestamp",
    "select_list",
]

#: The columns a record is written to and read from, in this order (``updated_at`` is set by the server).
COLUMNS: tuple[str, ...] = (
    "id",
    "namespace",
    "text",
    "embedding",
    "metadata",
    "created_at",
    "model",
    "score",
    "source_store",
    "modality",
    "vex_version",
    "extra",
    "_vexrun",
)
#: A btree key (the primary key) holds at most ~2,700 bytes; longer ids become UUIDs before they get here.
MAX_ID_BYTES = 2000

COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = struct.pack(">h", -1)
_ROW = struct.pack(">h", len(COLUMNS))
_NULL = struct.pack(">i", -1)
_I32 = struct.Struct(">i").pack
_F64 = struct.Struct(">id").pack  # length 8 + the value
_TS = struct.Struct(">iq").pack  # length 8 + microseconds since 2000-01-01 UTC
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


class Refused(Exception):
    """A record PostgreSQL cannot hold; ``str`` is the reason."""


def _text(value: str, what: str) -> bytes:
    """A text field (length + UTF-8)."""
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError:
        raise Refused(f"{what} is not valid UTF-8 (a lone surrogate)") from None
    if b"\x00" in data:
        raise Refused(f"{what} contains a NUL character, which PostgreSQL text cannot hold")
    return _I32(len(data)) + data


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # integers over 64 bits; orjson refuses them, the stdlib does not
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


#: What jsonb may not give back as written shows in orjson's output as a digit before an exponent, a
#: negative zero or an escaped NUL; only JSON that matches is examined value by value.
_SUSPECT = re.compile(rb"[0-9][eE]|-0\.0|\\u0000")


def _jsonb_exact(value: Any) -> bool:
    """True if ``jsonb`` gives ``value`` back as it is: no NUL in a string (jsonb refuses ``\\u0000``), no
    integral float in exponent form (jsonb's numeric prints it as an integer), no negative zero."""
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, float):
        return not (value == 0.0 and math.copysign(1.0, value) < 0) and not (value.is_integer() and abs(value) >= 1e16)
    if isinstance(value, dict):
        return all("\x00" not in k and _jsonb_exact(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_jsonb_exact(v) for v in value)
    return True


def _json(value: Any, what: str, reserved: dict[str, Any] | None) -> bytes:
    """A jsonb field; a value jsonb would change goes verbatim into ``reserved`` and the field is NULL
    (``reserved`` None: such a value is refused)."""
    try:
        data = _dumps(value)
        data.decode("utf-8")
    except (TypeError, ValueError) as exc:
        raise Refused(f"{what} is not JSON ({exc})") from None
    if _SUSPECT.search(data) is not None and not _jsonb_exact(value):
        if reserved is None:
            raise Refused(f"{what} contains a NUL character, which PostgreSQL cannot hold")
        reserved[what] = data.decode("utf-8")
        return _NULL
    return _I32(len(data) + 1) + b"\x01" + data


def render_timestamp(dt: datetime) -> str:
    """The one text a ``timestamptz`` comes back as: UTC, ``Z``, and 0, 3 or 6 fractional digits."""
    dt = dt.astimezone(UTC)
    us = dt.microsecond
    spec = "seconds" if us == 0 else "milliseconds" if us % 1000 == 0 else "microseconds"
    return dt.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


#: A text :func:`render_timestamp` gives back as it is, when its fraction is not "000" (3 digits) or "…000" (6).
_CANONICAL = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.([0-9]{3}|[0-9]{6}))?Z\Z")


def _timestamp(value: str) -> tuple[bytes, bool]:
    """(the timestamptz field, whether the text must also be kept verbatim)."""
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return _NULL, True
    if dt.tzinfo is None:
        return _TS(8, (dt.replace(tzinfo=UTC) - _PG_EPOCH) // _US), True
    field = _TS(8, (dt - _PG_EPOCH) // _US)
    m = _CANONICAL.match(value)
    if m is None:
        return field, render_timestamp(dt) != value
    frac = m.group(1)
    return field, frac is not None and (frac == "000" or (len(frac) == 6 and frac.endswith("000")))


class Encoder:
    """Turns batches into PostgreSQL's binary COPY format. It remembers the encoded form of values that repeat
    across batches (namespace, model, source_store, modality, vex_version; timestamps), within bounds."""

    MAX_MEMO = 65536

    def __init__(self, dims: int | None = None, default_namespace: str | None = None) -> None:
        #: the table's dims (None: any); vectors of other dims are refused
        self.dims = dims
        self.default_namespace = default_namespace
        self._small: dict[tuple[str | None, ...], tuple[bytes, ...]] = {}
        self._times: dict[str, tuple[bytes, bool]] = {}

    def _small_fields(self, key: tuple[str | None, ...]) -> tuple[bytes, ...]:
        hit = self._small.get(key)
        if hit is None:
            if len(self._small) >= self.MAX_MEMO:
                self._small.clear()
            names = ("the namespace", "the model", "source_store", "modality", "vex_version")
            hit = self._small[key] = tuple(
                _NULL if v is None else _text(v, what) for what, v in zip(names, key, strict=True)
            )
        return hit

    def _time(self, value: str) -> tuple[bytes, bool]:
        hit = self._times.get(value)
        if hit is None:
            if len(self._times) >= self.MAX_MEMO:
                self._times.clear()
            hit = self._times[value] = _timestamp(value)
        return hit

    def rows(self, batch: Batch, rejected: dict[str, str], chunk_rows: int = 256) -> Iterator[tuple[int, bytes]]:
        """The batch as binary COPY rows (no header), in pieces of about ``chunk_rows`` rows as (rows, bytes),
        produced as they are needed so the server parses one while the next is built. Records PostgreSQL cannot
        hold go to ``rejected`` (id → reason). When an id occurs twice only its last record is kept (one COPY
        must not touch a row twice)."""
        records = batch.records
        n = len(records)
        last = {rec.id: i for i, rec in enumerate(records)}
        dups = len(last) != n
        mat = batch.vectors
        vec_bytes: memoryview | None = None
        has: list[bool] = []
        width = 0
        wrong_dims = None
        if mat is not None:
            d = int(mat.shape[1])
            if self.dims is not None and d != self.dims:
                wrong_dims = f"vector has {d} dims, the table holds vector({self.dims})"
            width = 4 * d
            vec_bytes = memoryview(mat.astype(">f4", copy=False).tobytes())
            has = [True] * n if batch.has_vector is None else batch.has_vector.tolist()
        vec_head = struct.pack(">ihh", 4 + width, width // 4, 0)
        default_ns = self.default_namespace
        out: list[bytes | memoryview] = []
        count = 0
        for i, rec in enumerate(records):
            rid = rec.id
            if dups and last[rid] != i:
                continue
            try:
                if not rid:
                    raise Refused("empty id")
                id_field = _text(rid, "the id")
                if len(id_field) > MAX_ID_BYTES + 4:
                    raise Refused(f"the id is longer than {MAX_ID_BYTES} bytes")
                text = rec.text
                text_field = _NULL if text is None else _text(text, "the text")
                ns = rec.namespace
                small = self._small_fields(
                    (
                        ns if ns is not None else default_ns,
                        rec.model,
                        rec.source_store,
                        rec.modality,
                        rec.vex_version,
                    )
                )
                reserved: dict[str, Any] = {}
                if vec_bytes is not None and has[i]:
                    if wrong_dims is not None:
                        raise Refused(wrong_dims)
                    head: bytes = vec_head
                    vector: bytes | memoryview = vec_bytes[i * width : (i + 1) * width]
                else:
                    head, vector = _NULL, b""
                    if rec.dims is not None:
                        reserved["dims"] = rec.dims
                meta = rec.metadata
                meta_field = _NULL if meta is None else _json(meta, "metadata", reserved)
                extra_field = _NULL if rec.extra is None else _json(rec.extra, "extra", reserved)
                created = rec.created_at
                if created is None:
                    time_field = _NULL
                else:
                    time_field, verbatim = self._time(created)
                    if verbatim:
                        reserved["created_at"] = created
                score = _NULL if rec.score is None else _F64(8, rec.score)
                reserved_field = _json(reserved, "created_at", None) if reserved else _NULL
            except Refused as exc:
                rejected[rid] = str(exc)
                continue
            out += (
                _ROW,
                id_field,
                small[0],
                text_field,
                head,
                vector,
                meta_field,
                time_field,
                small[1],
                score,
                small[2],
                small[3],
                small[4],
                extra_field,
                reserved_field,
            )
            count += 1
            if count == chunk_rows:
                yield count, b"".join(out)
                out.clear()
                count = 0
        if count:
            yield count, b"".join(out)


def json_loads(data: bytes | bytearray | memoryview | str) -> Any:
    """JSON text to Python (orjson; the stdlib for integers over 64 bits)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(bytes(data) if not isinstance(data, str) else data)


class Decoder:
    """Turns rows of :func:`select_list` (binary results) into batches; vectors come back bit-exact. It
    remembers the text of timestamps that repeat across pages, within bounds."""

    MAX_MEMO = 65536

    def __init__(self, where: str) -> None:
        self.where = where
        self._times: dict[datetime, str] = {}

    def _time(self, dt: datetime) -> str:
        text = self._times.get(dt)
        if text is None:
            if len(self._times) >= self.MAX_MEMO:
                self._times.clear()
            text = self._times[dt] = render_timestamp(dt)
        return text

    def batch(self, rows: Sequence[Sequence[Any]]) -> Batch:
        loads = orjson.loads
        records: list[Record] = []
        blobs: list[bytes | None] = []
        for row in rows:
            (rid, ns, text, emb, meta, created, model, score, store, modality, version, extra, reserved) = row
            created_text = None if created is None else self._time(created)
            dims = None
            if meta is not None:
                meta = _loads(meta, loads)
            if extra is not None:
                extra = _loads(extra, loads)
            if reserved is not None:
                res = _loads(reserved, loads)
                if "metadata" in res:
                    meta = json_loads(res["metadata"])
                if "extra" in res:
                    extra = json_loads(res["extra"])
                created_text = res.get("created_at", created_text)
                dims = res.get("dims")
            records.append(
                Record(
                    id=rid,
                    text=text,
                    model=model,
                    dims=dims,
                    namespace=ns,
                    metadata=meta,
                    created_at=created_text,
                    source_store=store,
                    modality=modality,
                    score=score,
                    vex_version=version,
                    extra=extra,
                )
            )
            blobs.append(emb)
        present = [b for b in blobs if b is not None]
        if not present:
            return Batch(records=records)
        width = len(present[0])
        if any(len(b) != width for b in present):
            bad = next(r for r, b in zip(records, blobs, strict=True) if b is not None and len(b) != width)
            raise FormatError(
                f"{self.where}: record '{bad.id}' has a vector of another dimension than the others: "
                "read a table of one dimension"
            )
        zero = bytes(width)
        buf = b"".join(zero if b is None else b for b in blobs)
        # Each value is a 4-byte header (dims, unused) and the floats; read as float32 the header is column 0.
        mat = np.frombuffer(buf, dtype=">f4").reshape(len(records), width // 4)[:, 1:].astype(np.float32)
        has_vector = np.fromiter((b is not None for b in blobs), dtype=bool, count=len(blobs))
        d = int(mat.shape[1])
        for rec, b in zip(records, blobs, strict=True):
            if b is not None:
                rec.dims = d
        return Batch(records=records, vectors=mat, has_vector=has_vector)


def _loads(text: str, loads: Any) -> Any:
    try:
        return loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def select_list(vector_send: str) -> str:
    """The select list :class:`Decoder` reads: every column of :data:`COLUMNS`, the embedding in its binary
    form (``vector_send``, the type's send function, schema-qualified when needed) and the JSON as text."""
    parts = []
    for col in COLUMNS:
        quoted = '"' + col + '"'
        if col == "embedding":
            parts.append(f"{vector_send}({quoted})")
        elif col in ("metadata", "extra", "_vexrun"):
            parts.append(f"{quoted}::text")
        else:
            parts.append(quoted)
    return ", ".join(parts)
