"""Reading a collection back by record id (``vexrun compare``, a run's reconciliation, the recall facade), and
vector search.

A record id is mapped to its object's UUID as the sink maps it (:func:`~.codec.object_key`); an object counts
as the record only when its ``vexrun_id`` is that id (or, for objects other tools wrote, when the id is the
UUID). Objects decode as :class:`~.source.WeaviateSource` decodes them, then by
:func:`~..encoding.from_store`.

Costs: ``fetch`` is one gRPC search per :data:`CHUNK` ids and tenant (every tenant when no namespace is given:
an id does not say which tenant holds it), ``delete`` one batch delete per chunk and tenant; ``count`` one
aggregate per tenant; ``namespaces`` one aggregate per tenant (tenants that hold nothing are not listed), or
without tenants one aggregate grouped by the namespace property; ``search`` one near-vector query per tenant,
merged by distance.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import InvalidInput
from ...vmig.batch import Batch
from ..base import Hit
from ..encoding import from_store
from . import wire
from .client import Store
from .codec import object_key, to_record
from .config import WeaviateStoreConfig

if TYPE_CHECKING:
    from ...vmig.model import Record

__all__ = [
    "CHUNK",
    "count",
    "delete",
    "fetch",
    "namespace_of",
    "namespaces",
    "search",
    "shards",
    "stored_dims",
    "to_batch",
    "total",
]

#: Object ids per fetch / delete request (a search may return at most QUERY_MAXIMUM_RESULTS, 10,000 by default).
CHUNK = 1000


def namespace_of(cfg: WeaviateStoreConfig, tenant: str) -> str | None:
    return None if not tenant or tenant == cfg.default_tenant else tenant


def to_batch(objects: Sequence[Any], cfg: WeaviateStoreConfig, tenant: str, multi_tenant: bool) -> Batch:
    """Objects as the client returns them (properties, vectors by name) as a batch, in store encoding."""
    return batch_of(wire.items(list(objects), cfg.vector_name), cfg, tenant, multi_tenant)


def batch_of(items: Sequence[wire.Item], cfg: WeaviateStoreConfig, tenant: str, multi_tenant: bool) -> Batch:
    """Objects as (UUID, properties, float32 vector bytes) as a batch, in store encoding."""
    ns = namespace_of(cfg, tenant) if multi_tenant else None
    ns_key = None if multi_tenant else cfg.namespace_key
    records = [to_record(uuid, props, cfg.text_key, ns_key, ns) for uuid, props, _ in items]
    vectors = [vec for _, _, vec in items]
    if not any(v is not None for v in vectors):
        return Batch(records=records)
    sizes = {len(v) // 4 for v in vectors if v is not None}
    if len(sizes) != 1:
        raise InvalidInput(f"weaviate objects of one collection have vectors of several sizes: {sorted(sizes)}")
    (d,) = sizes
    if all(v is not None for v in vectors):  # the usual case: one conversion of the whole page
        mat = np.frombuffer(b"".join(vectors), dtype="<f4").reshape(len(records), d).copy()  # type: ignore[arg-type]
        mask = np.ones(len(records), dtype=bool)
    else:
        mat = np.zeros((len(records), d), dtype=np.float32)
        mask = np.zeros(len(records), dtype=bool)
        for i, v in enumerate(vectors):
            if v is not None:
                mat[i] = np.frombuffer(v, dtype="<f4")
                mask[i] = True
    for rec, has in zip(records, mask.tolist(), strict=True):
        if has:
            rec.dims = d
    return Batch(records=records, vectors=mat, has_vector=mask)


def shards(store: Store, cfg: WeaviateStoreConfig, namespace: str | None) -> list[str]:
    """The shards to read for ``namespace``: its tenant, every tenant, or ``""`` without multi-tenancy."""
    if not store.read_shape().multi_tenant:
        return [""]
    tenants = store.tenants()
    if namespace is None:
        return tenants
    return [namespace] if namespace in tenants and namespace != cfg.default_tenant else []


def _ns_filter(store: Store, cfg: WeaviateStoreConfig, namespace: str | None) -> Any:
    """Without tenants: the filter on the namespace property (False: no object can match)."""
    if namespace is None or store.read_shape().multi_tenant:
        return None
    if cfg.namespace_key not in store.read_shape().props:
        return False
    from weaviate.classes.query import Filter

    return Filter.by_property(cfg.namespace_key).equal(namespace)


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def fetch(store: Store, cfg: WeaviateStoreConfig, ids: Sequence[str], namespace: str | None) -> Batch:
    """The records with these ids (in ``namespace`` only, when given), in the order asked."""
    from weaviate.classes.query import Filter

    keys = list(dict.fromkeys(object_key(rid) for rid in ids))
    ns_filter = _ns_filter(store, cfg, namespace)
    found: dict[str, tuple[Record, np.ndarray | None]] = {}
    mt = store.read_shape().multi_tenant
    for tenant in shards(store, cfg, namespace) if ns_filter is not False and keys else ():
        coll = store.collection(tenant or None)
        for chunk in _chunks([k for k in keys if k not in found]):
            flt = Filter.by_id().contains_any(chunk)
            if ns_filter is not None:
                flt = flt & ns_filter
            res = store.call(
                "reading objects", coll.query.fetch_objects, filters=flt, limit=len(chunk), include_vector=True
            )
            if not res.objects:
                continue
            batch = to_batch(res.objects, cfg, tenant, mt)
            uuids = [str(obj.uuid) for obj in res.objects]
            for key, (rec, vec) in zip(uuids, from_store(batch), strict=True):
                if namespace is None or rec.namespace == namespace:
                    found[key] = (rec, None if vec is None else vec.copy())
    hits = []
    for rid in ids:
        got = found.get(object_key(rid))
        if got is not None and got[0].id == rid:
            hits.append(got)
    return Batch.from_records([rec for rec, _ in hits], [vec for _, vec in hits])


def delete(store: Store, cfg: WeaviateStoreConfig, ids: Sequence[str], namespace: str | None) -> int:
    """Delete the objects these ids map to (those in ``namespace``, when given); how many there were."""
    from weaviate.classes.query import Filter

    keys = list(dict.fromkeys(object_key(rid) for rid in ids))
    ns_filter = _ns_filter(store, cfg, namespace)
    if not keys or ns_filter is False:
        return 0
    deleted = 0
    for tenant in shards(store, cfg, namespace):
        coll = store.collection(tenant or None)
        for chunk in _chunks(keys):
            flt = Filter.by_id().contains_any(chunk)
            if ns_filter is not None:
                flt = flt & ns_filter
            res = store.call("deleting objects", coll.data.delete_many, where=flt)
            deleted += int(res.successful)
    return deleted


def total(store: Store, tenant: str, flt: Any = None) -> int:
    """The number of objects in ``tenant`` (``""``: the collection without tenants) that match ``flt``."""
    coll = store.collection(tenant or None)
    res = store.call("counting objects", coll.aggregate.over_all, filters=flt, total_count=True)
    return int(res.total_count or 0)


def count(store: Store, cfg: WeaviateStoreConfig, namespace: str | None) -> int:
    ns_filter = _ns_filter(store, cfg, namespace)
    if ns_filter is False:
        return 0
    return sum(total(store, tenant, ns_filter) for tenant in shards(store, cfg, namespace))


def namespaces(store: Store, cfg: WeaviateStoreConfig) -> list[str]:
    """The namespaces holding records, sorted (the default tenant's records have none)."""
    if store.read_shape().multi_tenant:
        return [t for t in store.tenants() if t != cfg.default_tenant and total(store, t) > 0]
    if cfg.namespace_key not in store.read_shape().props:
        return []
    from weaviate.classes.aggregate import GroupByAggregate

    res = store.call(
        "listing namespaces",
        store.collection().aggregate.over_all,
        group_by=GroupByAggregate(prop=cfg.namespace_key, limit=100_000),
        total_count=True,
    )
    return sorted(str(g.grouped_by.value) for g in res.groups if g.total_count and isinstance(g.grouped_by.value, str))


def stored_dims(store: Store, cfg: WeaviateStoreConfig) -> int | None:
    """The dimension of the vectors the collection holds (one object of the first tenants that hold any)."""
    for tenant in shards(store, cfg, None)[:3]:
        coll = store.collection(tenant or None)
        res = store.call("reading an object", coll.query.fetch_objects, limit=1, include_vector=True)
        for obj in res.objects:
            vec = (obj.vector or {}).get(cfg.vector_name)
            if vec:
                return len(vec)
    return None


def search(store: Store, cfg: WeaviateStoreConfig, vector: Any, k: int, namespace: str | None) -> list[Hit]:
    """The ``k`` nearest objects to ``vector`` (in ``namespace`` only, when given), over every tenant."""
    from weaviate.classes.query import MetadataQuery

    if vector is None:
        raise InvalidInput("weaviate search needs a query vector (the recipe's embedder makes one)")
    shape = store.read_shape()
    query = np.asarray(vector, dtype=np.float32).ravel()
    ns_filter = _ns_filter(store, cfg, namespace)
    if ns_filter is False:
        return []
    found: list[tuple[float, Record, np.ndarray | None]] = []
    for tenant in shards(store, cfg, namespace):
        coll = store.collection(tenant or None)
        res = store.call(
            "searching",
            coll.query.near_vector,
            query.tolist(),
            limit=k,
            filters=ns_filter,
            target_vector=shape.vector or None,
            include_vector=True,
            return_metadata=MetadataQuery(distance=True),
        )
        if not res.objects:
            continue
        batch = from_store(to_batch(res.objects, cfg, tenant, shape.multi_tenant))
        for obj, (rec, vec) in zip(res.objects, batch, strict=True):
            found.append((float(obj.metadata.distance or 0.0), rec, vec))
    found.sort(key=lambda hit: hit[0])
    qn = float(np.linalg.norm(query)) or 1.0
    hits = []
    for rank, (dist, rec, vec) in enumerate(found[:k], start=1):
        cosine = None
        if vec is not None:
            cosine = float(np.dot(vec, query) / ((float(np.linalg.norm(vec)) or 1.0) * qn))
        score = 1.0 - dist if shape.distance == "cosine" else -dist
        hits.append(
            Hit(
                rank=rank,
                id=rec.id,
                score=score,
                text=rec.text,
                namespace=rec.namespace,
                metadata=rec.metadata,
                created_at=rec.created_at,
                cosine=cosine,
                vector_rank=rank,
            )
        )
    return hits
