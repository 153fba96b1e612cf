"""Reading a collection back by record id (``vexrun compare``, a run's reconciliation, the recall facade).

A record id is mapped to its point id the way the run mapped it (:func:`~..encoding.store_id` with the
connector's capabilities, then :func:`~.client.point_id`): a UUID or an unsigned integer stays as it is, any
other id is a uuid5 with the original in the metadata. Points are decoded as :class:`~.source.QdrantSource`
decodes them, then by :func:`~..encoding.from_store`.

Costs: ``fetch`` and ``delete`` are one ``retrieve`` per :data:`CHUNK` ids (``delete`` adds one delete request
per chunk); ``count`` is Qdrant's exact count; ``namespaces`` is one facet request on the namespace field (a
server answers it from the keyword index the sink creates), or, where facets are not available (a collection
without that index, a server older than 1.12), one filtered scroll per namespace found, each excluding those
already found; past :data:`MAX_EXCLUDED` namespaces, one scroll of the whole collection's namespace field.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ...vmig.batch import Batch
from ..encoding import from_store, store_id
from .client import Store, point_id, points_to_batch, quiet
from .config import QdrantStoreConfig
from .plugin import CAPABILITIES

if TYPE_CHECKING:
    import numpy as np

    from ...vmig.model import Record

__all__ = ["count", "delete", "fetch", "namespaces"]

#: Point ids per retrieve / delete request.
CHUNK = 1000
#: Points per scroll page while listing namespaces.
PAGE = 1000
#: Above this many namespaces, listing stops excluding the ones found and scrolls the whole collection.
MAX_EXCLUDED = 256


def _point_ids(ids: Sequence[str]) -> list[int | str]:
    return list(dict.fromkeys(point_id(store_id(rid, CAPABILITIES)) for rid in ids))


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


def fetch(store: Store, cfg: QdrantStoreConfig, ids: Sequence[str], namespace: str | None) -> Batch:
    """The records with these ids (in ``namespace`` only, when given), in the order asked."""
    keys = _point_ids(ids)
    found: dict[str, tuple[Record, np.ndarray | None]] = {}
    for start in range(0, len(keys), CHUNK):
        points = store.call(
            "reading points",
            store.api.retrieve,
            store.name,
            ids=keys[start : start + CHUNK],
            with_payload=True,
            with_vectors=True,
        )
        if not points:
            continue
        for key, rec, vec in _decoded(points_to_batch(points, cfg)):
            if namespace is None or rec.namespace == namespace:
                found[key] = (rec, vec)
    return _in_order(found, ids)


def delete(store: Store, cfg: QdrantStoreConfig, ids: Sequence[str], namespace: str | None) -> int:
    """Delete the points these ids map to (those in ``namespace``, when given); how many there were."""
    from qdrant_client import models

    keys = _point_ids(ids)
    payload: bool | list[str] = [cfg.namespace_key] if namespace is not None else False
    deleted = 0
    for start in range(0, len(keys), CHUNK):
        points = store.call(
            "reading points",
            store.api.retrieve,
            store.name,
            ids=keys[start : start + CHUNK],
            with_payload=payload,
            with_vectors=False,
        )
        held = [p.id for p in points if namespace is None or (p.payload or {}).get(cfg.namespace_key) == namespace]
        if held:
            selector = models.PointIdsList(points=held)
            store.call("deleting points", store.api.delete, store.name, points_selector=selector, wait=True)
            deleted += len(held)
    return deleted


def count(store: Store, namespace: str | None) -> int:
    return store.count(namespace)


def _facet(store: Store, key: str) -> list[str] | None:
    """Every value of ``key`` by facet counts; None when the collection cannot answer facets."""
    limit = PAGE
    while True:
        try:
            with quiet():
                res = store.api.facet(store.name, key, limit=limit, exact=True)
        except Exception:  # noqa: BLE001 - no keyword index, or no facets on this server: scroll instead
            return None
        values = [hit.value for hit in res.hits]
        if len(values) < limit:
            return [v for v in values if isinstance(v, str)]
        limit *= 8


def _scroll_all(store: Store, key: str) -> set[str]:
    found: set[str] = set()
    offset: Any = None
    while True:
        points, offset = store.call(
            "listing namespaces",
            store.api.scroll,
            store.name,
            limit=PAGE,
            offset=offset,
            with_payload=[key],
            with_vectors=False,
        )
        found.update(v for p in points if isinstance(v := (p.payload or {}).get(key), str))
        if offset is None:
            return found


def namespaces(store: Store, cfg: QdrantStoreConfig) -> list[str]:
    """The distinct values of the namespace field (see the module docstring for the cost)."""
    from qdrant_client import models

    key = cfg.namespace_key
    faceted = _facet(store, key)
    if faceted is not None:
        return sorted(faceted)
    found: set[str] = set()
    no_key = models.IsEmptyCondition(is_empty=models.PayloadField(key=key))
    while len(found) <= MAX_EXCLUDED:
        flt = models.Filter(must_not=[no_key])
        if found:
            flt.must = [models.FieldCondition(key=key, match=models.MatchExcept(**{"except": sorted(found)}))]
        points, _ = store.call(
            "listing namespaces",
            store.api.scroll,
            store.name,
            scroll_filter=flt,
            limit=PAGE,
            with_payload=[key],
            with_vectors=False,
        )
        new = {v for p in points if isinstance(v := (p.payload or {}).get(key), str)} - found
        if not new:  # nothing left, or only values that are not text (a collection vexrun did not write)
            if points:
                break
            return sorted(found)
        found |= new
    return sorted(_scroll_all(store, key))
