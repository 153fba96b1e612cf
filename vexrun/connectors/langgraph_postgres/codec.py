"""Records ↔ rows, in PostgreSQL's binary formats: the COPY rows of the staging table a batch is loaded into,
and the binary results the read-back queries return. Vectors go both ways as whole-batch numpy conversions
(big-endian float32 on the wire), bit-exact."""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from ...errors import FormatError
from ...vmig.batch import Batch
from ...vmig.model import Record
from ..pgvector.codec import Refused, json_loads
from .layout import Namespaces, build_value, record_from

__all__ = ["STAGE_COLUMNS", "Decoder", "Encoder"]

#: The columns of the staging table, in COPY order.
STAGE_COLUMNS = ("prefix", "key", "value", "created_at", "embedding")
#: A btree key holds at most ~2,700 bytes: prefix + key of the primary key stay well below.
MAX_KEY_BYTES = 2000

_ROW = struct.pack(">h", len(STAGE_COLUMNS))
_NULL = struct.pack(">i", -1)
_I32 = struct.Struct(">i").pack
_TS = struct.Struct(">iq").pack  # length 8 + microseconds since 2000-01-01 UTC
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _text(value: str, what: str) -> bytes:
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError:
        raise Refused(f"{what} is not valid UTF-8 (a lone surrogate)") from None
    if b"\x00" in data:
        raise Refused(f"{what} contains a NUL character, which PostgreSQL text cannot hold")
    return _I32(len(data)) + data


def _timestamp(value: str) -> bytes:
    """The ``timestamptz`` of a record's created_at (a time without zone is UTC); NULL when it is no time."""
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return _NULL
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return _TS(8, (dt - _PG_EPOCH) // _US)
    except (OverflowError, struct.error):
        return _NULL


class Encoder:
    """Turns batches into binary COPY rows of the staging table (no header)."""

    MAX_MEMO = 65536

    def __init__(self, spaces: Namespaces, text_field: str, dims: int | None = None) -> None:
        self.spaces = spaces
        self.text_field = text_field
        #: the store's dims (None: not known yet); vectors of other dims are refused
        self.dims = dims
        self._prefixes: dict[str | None, bytes] = {}
        self._times: dict[str, bytes] = {}

    def _prefix(self, namespace: str | None) -> bytes:
        hit = self._prefixes.get(namespace)
        if hit is None:
            if len(self._prefixes) >= self.MAX_MEMO:
                self._prefixes.clear()
            hit = self._prefixes[namespace] = _text(self.spaces.prefix(namespace), "the namespace")
        return hit

    def _time(self, value: str) -> bytes:
        hit = self._times.get(value)
        if hit is None:
            if len(self._times) >= self.MAX_MEMO:
                self._times.clear()
            hit = self._times[value] = _timestamp(value)
        return hit

    def rows(self, batch: Batch, rejected: dict[str, str], chunk_rows: int = 256) -> Iterator[tuple[int, int, bytes]]:
        """The batch as binary COPY rows in pieces of about ``chunk_rows`` rows: (rows, rows without a vector,
        bytes). Records PostgreSQL cannot hold go to ``rejected`` (id → reason). When an id occurs twice only its
        last record is kept (one INSERT … ON CONFLICT must not touch a row twice)."""
        records = batch.records
        last = {rec.id: i for i, rec in enumerate(records)}
        dups = len(last) != len(records)
        mat = batch.vectors
        vec_bytes: memoryview | None = None
        has: list[bool] = []
        width = 0
        wrong_dims = None
        if mat is not None:
            d = int(mat.shape[1])
            if self.dims is not None and d != self.dims:
                wrong_dims = f"vector has {d} dims, the store holds vector({self.dims})"
            width = 4 * d
            vec_bytes = memoryview(mat.astype(">f4", copy=False).tobytes())
            has = [True] * len(records) if batch.has_vector is None else batch.has_vector.tolist()
        vec_head = struct.pack(">ihh", 4 + width, width // 4, 0)
        out: list[bytes | memoryview] = []
        count = bare = 0
        for i, rec in enumerate(records):
            rid = rec.id
            if dups and last[rid] != i:
                continue
            try:
                if not rid:
                    raise Refused("empty id")
                key = _text(rid, "the id")
                if len(key) > MAX_KEY_BYTES + 4:
                    raise Refused(f"the id is longer than {MAX_KEY_BYTES} bytes")
                prefix = self._prefix(rec.namespace)
                with_vector = vec_bytes is not None and has[i]
                if with_vector and wrong_dims is not None:
                    raise Refused(wrong_dims)
                value = build_value(rec, self.text_field, with_vector)
                created = _NULL if rec.created_at is None else self._time(rec.created_at)
            except Refused as exc:
                rejected[rid] = str(exc)
                continue
            out += (_ROW, prefix, key, _I32(len(value) + 1), b"\x01", value, created)
            if with_vector:
                assert vec_bytes is not None
                out += (vec_head, vec_bytes[i * width : (i + 1) * width])
            else:
                out.append(_NULL)
                bare += 1
            count += 1
            if count == chunk_rows:
                yield count, bare, b"".join(out)
                out.clear()
                count = bare = 0
        if count:
            yield count, bare, b"".join(out)


class Decoder:
    """Turns rows of (prefix, key, value as JSON text, created_at, the vector's binary form or None) into
    batches."""

    def __init__(self, spaces: Namespaces, text_field: str, where: str) -> None:
        self.spaces = spaces
        self.text_field = text_field
        self.where = where

    def batch(self, rows: Sequence[Sequence[Any]]) -> Batch:
        records: list[Record] = []
        blobs: list[bytes | None] = []
        for prefix, key, value, created, emb in rows:
            namespace = self.spaces.namespace(prefix)
            records.append(record_from(key, namespace, json_loads(value), created, self.text_field))
            blobs.append(None if emb is None else bytes(emb))
        present = [b for b in blobs if b is not None]
        if not present:
            return Batch(records=records)
        width = len(present[0])
        if any(len(b) != width for b in present):
            raise FormatError(f"{self.where}: the store holds vectors of several dimensions")
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
