"""Digests of what :func:`vexrun.verify.diff.differs` compares, so that ``run.verify: full`` can check a record
read back from a target against 16 bytes the ledger kept for it instead of the whole record.

Per record, two 64-bit values:

- the **content digest**: xxh3-64 of the text (``""`` for none), the metadata (``{}`` for none) and the namespace
  as sorted msgpack (types stay apart: 1 is not 1.0, ``{1: x}`` is not ``{"1": x}``), or of the text and metadata
  only, with another seed, when the written record had no namespace (``differs`` does not compare it then);
- the **vector sum**: xxh3-64 of the vector's float32 bytes (13 ms per 100k × 384; a weighted sum of the bits in
  numpy took 178 ms), or 0 for a record written without a vector (whatever a store made up for it is not
  compared).

Equal digests mean the comparison would find the records equal (but for a 2**-64 chance). Unequal ones mean
only "look closer": the caller compares the record the ledger kept, with ``differs``' tolerances (a float32 store
that gives back a vector 1 ulp off, metadata whose 1 came back as 1.0). A record whose metadata msgpack cannot
encode gets digest 0, which never matches.
"""

from __future__ import annotations

import msgspec
import numpy as np
import xxhash

from ..vmig.batch import Batch
from ..vmig.model import Record

__all__ = ["NO_VECTOR", "content_digest", "content_digests", "content_matches", "vector_sums"]

NO_VECTOR = 0
_META = msgspec.msgpack.Encoder(order="sorted")
_ANY_NS = 1  # the seeds of the two digests
_NS = 2


def vector_sums(batch: Batch) -> np.ndarray:
    """The vector sum of each record of ``batch`` (``NO_VECTOR`` where it has none), as ``uint64``."""
    out = np.zeros(len(batch), dtype=np.uint64)
    if batch.vectors is None or not len(batch):
        return out
    v = np.ascontiguousarray(batch.vectors, dtype="<f4")  # float64 rows become the float32 a target is given
    sums = np.fromiter((xxhash.xxh3_64_intdigest(row) or 1 for row in v), dtype=np.uint64, count=len(v))
    mask = np.ones(len(batch), dtype=bool) if batch.has_vector is None else np.asarray(batch.has_vector, dtype=bool)
    out[mask] = sums[mask]
    return out


def _hash(parts: tuple[object, ...], seed: int) -> int:
    try:
        body = _META.encode(parts)
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError):
        return 0
    return xxhash.xxh3_64_intdigest(body, seed) or 1  # 0 is kept for "cannot tell"


def content_digest(rec: Record) -> int:
    """The content digest of a record as written (0: metadata msgpack cannot encode)."""
    if rec.namespace is None:
        return _hash((rec.text or "", rec.metadata or {}), _ANY_NS)
    return _hash((rec.text or "", rec.metadata or {}, rec.namespace), _NS)


def content_digests(records: list[Record]) -> np.ndarray:
    """:func:`content_digest` of each record, as ``uint64`` (one comprehension: the check of a 100k-record
    ``full`` run computes 100k of them; a record msgpack cannot encode sends the batch the slow way)."""
    encode, digest = _META.encode, xxhash.xxh3_64_intdigest
    try:
        found = [
            digest(encode((r.text or "", r.metadata or {})), _ANY_NS)
            if r.namespace is None
            else digest(encode((r.text or "", r.metadata or {}, r.namespace)), _NS)
            for r in records
        ]
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError):
        return np.fromiter(map(content_digest, records), dtype=np.uint64, count=len(records))
    out = np.array(found, dtype=np.uint64)
    out[out == 0] = 1  # 0 is kept for "cannot tell"
    return out


def content_matches(want: int, got: Record) -> bool:
    """Whether ``got`` (read back) has the content digest ``want`` (of the record written)."""
    if want == 0:
        return False
    text, meta = got.text or "", got.metadata or {}
    if got.namespace is not None and _hash((text, meta, got.namespace), _NS) == want:
        return True
    return _hash((text, meta), _ANY_NS) == want
