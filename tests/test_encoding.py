"""Capability-driven encoding: ids and metadata a store cannot hold round-trip losslessly."""

from __future__ import annotations

import json
import uuid

import numpy as np

from vexrun.connectors.base import Capabilities
from vexrun.connectors.encoding import JSON_KEYS, NO_METADATA, ORIGINAL_ID, from_store, split_for, store_id, to_store
from vexrun.vmig import Batch, Record

QDRANT_LIKE = Capabilities(ids="uuid-or-uint", metadata="lists")
CHROMA_LIKE = Capabilities(metadata="scalars", metadata_nulls=False, max_batch_records=3)


def _batch() -> Batch:
    recs = [
        Record(id="mem-1", text="a", metadata={"tags": ["x", "y"], "n": 1, "none": None, "mixed": [1, "a"]}),
        Record(id=str(uuid.uuid4()), text="b", metadata={"k": "v"}),
        Record(id="42", text="c"),
        Record(id="18446744073709551616", text="d"),  # 2**64 does not fit an unsigned int
    ]
    return Batch.from_records(recs, [np.full(4, i, dtype=np.float32) for i in range(4)])


def test_ids_become_uuids_and_come_back() -> None:
    batch = _batch()
    stored = to_store(batch, QDRANT_LIKE)
    ids = [r.id for r in stored.records]
    assert ids[0] != "mem-1" and uuid.UUID(ids[0])
    assert ids[1] == batch.records[1].id and ids[2] == "42"
    assert uuid.UUID(ids[3]) and stored.records[3].metadata == {ORIGINAL_ID: "18446744073709551616", NO_METADATA: True}
    assert stored.records[0].metadata[ORIGINAL_ID] == "mem-1"  # type: ignore[index]
    assert batch.records[0].id == "mem-1"  # the input batch is not mutated
    assert store_id("mem-1", QDRANT_LIKE) == ids[0] and store_id("42", QDRANT_LIKE) == "42"
    back = from_store(stored)
    assert [(r.id, r.metadata) for r in back.records] == [(r.id, r.metadata) for r in _batch().records[:1]] + [
        (r.id, r.metadata) for r in batch.records[1:]
    ]


def test_metadata_is_encoded_reversibly() -> None:
    batch = _batch()
    stored = to_store(batch, CHROMA_LIKE)
    meta = stored.records[0].metadata
    assert meta is not None
    assert meta["tags"] == '["x","y"]' and meta["none"] == "null" and meta["n"] == 1
    assert sorted(json.loads(meta[JSON_KEYS])) == ["mixed", "none", "tags"]
    assert all(not isinstance(v, list) and v is not None for v in meta.values())
    assert from_store(stored).records[0].metadata == batch.records[0].metadata
    assert to_store(batch, Capabilities(metadata="nested")) is batch


def test_batches_are_split_by_records_and_bytes() -> None:
    batch = _batch()
    parts = list(split_for(batch, CHROMA_LIKE))
    assert [len(p) for p in parts] == [3, 1]
    assert np.array_equal(np.concatenate([p.vectors for p in parts]), batch.vectors)  # type: ignore[misc]
    big = Batch.from_records([Record(id=str(i), text="x" * 1000) for i in range(10)])
    parts = list(split_for(big, Capabilities(max_batch_bytes=2500)))
    assert [len(p) for p in parts] == [2, 2, 2, 2, 2]
    huge = Batch.from_records([Record(id="solo", text="x" * 10_000)])
    assert [len(p) for p in split_for(huge, Capabilities(max_batch_bytes=100))] == [1]  # never an empty part
    assert list(split_for(big, None))[0] is big


def test_empty_and_missing_metadata_stay_apart() -> None:
    batch = Batch.from_records([Record(id="a-1", text="x", metadata={}), Record(id="a-2", text="y")])
    stored = to_store(batch, QDRANT_LIKE)
    assert all(r.metadata and ORIGINAL_ID in r.metadata for r in stored.records)
    back = from_store(stored)
    assert [(r.id, r.metadata) for r in back.records] == [("a-1", {}), ("a-2", None)]
