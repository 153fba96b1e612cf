"""Reading a collection back by record id (``vexrun compare``, a run's reconciliation, the recall facade).

Chroma keeps vexrun's ids as they are (:func:`~..encoding.store_id` with the connector's capabilities changes
none); records are decoded as :class:`~.source.ChromaSource` decodes them, then by
:func:`~..encoding.from_store` (metadata values Chroma cannot hold come back from their JSON text).

Costs: ``fetch`` and ``delete`` are one ``get`` per ``max_batch_size`` ids (``delete`` adds one delete per
chunk). ``count`` of the whole collection is Chroma's count; of one namespace, Chroma has no filtered count, so
it pages through the matching ids (:data:`PAGE` per request, ids only). ``namespaces`` has no facet to use:
each request asks for records whose namespace is none of those already found (``$nin``), skipping the records
without one already seen, so it takes about one request per namespace plus one per :data:`PAGE` records
without a namespace; past :data:`MAX_EXCLUDED` namespaces it pages through the whole collection's metadata.
The skipping relies on Chroma returning the records of a ``get`` in one stable order (its internal offset ids),
whatever the filter, which is how Chroma 1.x pages.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ...vmig.batch import Batch
from ..encoding import from_store, store_id
from .client import Store, rows_to_batch
from .config import ChromaStoreConfig
from .plugin import CAPABILITIES

if TYPE_CHECKING:
    import numpy as np

    from ...vmig.model import Record

__all__ = ["count", "delete", "fetch", "namespaces"]

#: Records per page while counting a namespace or listing namespaces.
PAGE = 1000
#: Above this many namespaces, listing stops excluding the ones found and pages through everything.
MAX_EXCLUDED = 256


def _keys(ids: Sequence[str]) -> list[str]:
    return [k for k in dict.fromkeys(store_id(rid, CAPABILITIES) for rid in ids) if k]


def _in_order(found: dict[str, tuple[Record, np.ndarray | None]], ids: Sequence[str]) -> Batch:
    """The found records (by the key the store holds them under) in the order of ``ids``, vexrun ids or store
    keys alike (:func:`store_id` maps a key to itself); missing ids left out, an id asked twice given twice."""
    keys = (store_id(rid, CAPABILITIES) for rid in ids)
    hits = [found[key] for key in keys if key in found]
    return Batch.from_records([rec for rec, _ in hits], [vec for _, vec in hits])


def _decoded(batch: Batch) -> Iterator[tuple[str, Record, np.ndarray | None]]:
    """(store key, decoded record, vector) of each record of a batch as the store gave it."""
    keys = [rec.id for rec in batch.records]
    for key, (rec, vec) in zip(keys, from_store(batch), strict=True):
        yield key, rec, vec


def fetch(store: Store, cfg: ChromaStoreConfig, ids: Sequence[str], namespace: str | None, chunk: int) -> Batch:
    """The records with these ids (in ``namespace`` only, when given), in the order asked."""
    keys = _keys(ids)
    found: dict[str, tuple[Record, np.ndarray | None]] = {}
    for start in range(0, len(keys), chunk):
        got = store.call(
            "reading records",
            store.coll.get,
            ids=keys[start : start + chunk],
            where=store.where_namespace(namespace),
            include=["documents", "metadatas", "embeddings"],
        )
        if got["ids"]:
            for key, rec, vec in _decoded(rows_to_batch(got, cfg)):
                found[key] = (rec, vec)
    return _in_order(found, ids)


def delete(store: Store, ids: Sequence[str], namespace: str | None, chunk: int) -> int:
    """Delete the records with these ids (those in ``namespace``, when given); how many there were."""
    keys = _keys(ids)
    deleted = 0
    for start in range(0, len(keys), chunk):
        part = keys[start : start + chunk]
        got = store.call(
            "reading records", store.coll.get, ids=part, where=store.where_namespace(namespace), include=[]
        )
        held = list(got["ids"])
        if held:
            store.call("deleting records", store.coll.delete, ids=held)
            deleted += len(held)
    return deleted


def count(store: Store, namespace: str | None) -> int:
    if namespace is None:
        return int(store.call("counting", store.coll.count))
    where = store.where_namespace(namespace)
    total = 0
    while True:
        got = store.call("counting", store.coll.get, where=where, include=[], limit=PAGE, offset=total)
        total += len(got["ids"])
        if len(got["ids"]) < PAGE:
            return total


def _page(store: Store, where: dict[str, Any] | None, offset: int) -> list[dict[str, Any] | None]:
    got = store.call(
        "listing namespaces", store.coll.get, where=where, include=["metadatas"], limit=PAGE, offset=offset
    )
    metas: list[dict[str, Any] | None] = list(got.get("metadatas") or [None] * len(got["ids"]))
    return metas


def namespaces(store: Store, cfg: ChromaStoreConfig) -> list[str]:
    """The distinct namespaces (see the module docstring for the cost)."""
    key = cfg.namespace_key
    found: set[str] = set()
    #: records at the start of the current filter's results that have no namespace (all already seen)
    skip = 0
    while len(found) <= MAX_EXCLUDED:
        where = {key: {"$nin": sorted(found)}} if found else None
        metas = _page(store, where, skip)
        values = [(m or {}).get(key) for m in metas]
        new = {v for v in values if isinstance(v, str)} - found
        # every record of the page that has a namespace is excluded from the next request; the others stay at
        # its start, in the same order
        skip += sum(1 for v in values if not isinstance(v, str))
        found |= new
        if len(metas) < PAGE:
            return sorted(found)
    everything: set[str] = set()
    offset = 0
    while True:
        metas = _page(store, None, offset)
        everything.update(v for m in metas if isinstance(v := (m or {}).get(key), str))
        offset += len(metas)
        if len(metas) < PAGE:
            return sorted(everything)
