"""Reading a Redis collection back (the sink's half of the read-back protocol): fetch, delete, namespaces,
count, and the KNN query behind ``search``.

Counts and namespaces come from the index when it covers the collection and has indexed everything; before
an ``index_after_load`` run has made its index (or for keys no index covers) they come from a SCAN of the
prefix, reading only the namespace field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...vmig.batch import Batch
from .client import IndexInfo, Store, tag_query
from .codec import Item, Layout, json_loads, record_from_hash, record_from_json, to_batch
from .config import RedisStoreConfig

__all__ = ["ReadBack"]

#: Keys per round trip when fetching or deleting by id.
_PAGE = 1000
_DISTANCE = "__vexrun_distance"


class ReadBack:
    """fetch / delete / namespaces / count for a sink that has ``store``, ``layout`` and ``cfg``, and a
    ``connect()`` that opens the store read-only."""

    store: Store
    layout: Layout
    cfg: RedisStoreConfig

    def connect(self) -> None:
        raise NotImplementedError

    def _ready(self) -> Store:
        if self.store.client is None:
            self.connect()
        return self.store

    def _usable_index(self) -> IndexInfo | None:
        """The index, if it covers exactly this collection's keys and has indexed all of them."""
        store = self._ready()
        info = store.index_info()
        if info is None or info.indexing or info.storage != store.storage or info.prefixes != [store.key_prefix]:
            return None
        return info

    def fetch(self, ids: Sequence[str], namespace: str | None = None) -> Batch:
        from ..encoding import from_store

        store = self._ready()
        wanted = list(dict.fromkeys(ids))
        found: dict[str, Item] = {}
        for start in range(0, len(wanted), _PAGE):
            part = wanted[start : start + _PAGE]
            for rid, item in zip(part, store.read([store.key(rid) for rid in part], self.layout), strict=True):
                if item is not None and (namespace is None or item[0].namespace == namespace):
                    found[rid] = item
        return from_store(to_batch([found[rid] for rid in ids if rid in found], store.where))

    def delete(self, ids: Sequence[str], namespace: str | None = None) -> int:
        store = self._ready()
        wanted = list(dict.fromkeys(ids))
        deleted = 0
        for start in range(0, len(wanted), _PAGE):
            keys = [store.key(rid) for rid in wanted[start : start + _PAGE]]
            if namespace is not None:
                keys = [k for k, ns in zip(keys, store.read_namespaces(keys), strict=True) if ns == namespace]
            if keys:
                deleted += int(store.call("deleting records", store.api.unlink, *keys))
        return deleted

    def namespaces(self) -> list[str]:
        store = self._ready()
        if self._usable_index() is not None:
            return store.namespaces_by_index()
        found: set[str] = set()
        for keys in store.scan_all():
            found.update(ns for ns in store.read_namespaces(keys) if ns is not None)
        return sorted(found)

    def count(self, namespace: str | None = None) -> int:
        store = self._ready()
        if self._usable_index() is not None:
            return store.search_total("*" if namespace is None else tag_query(self.cfg.namespace_field, namespace))
        total = 0
        for keys in store.scan_all():
            if namespace is None:
                total += len(keys)
            else:
                total += sum(1 for ns in store.read_namespaces(keys) if ns == namespace)
        return total

    def knn(self, query: np.ndarray, k: int, namespace: str | None, info: IndexInfo) -> list[tuple[Item, float]]:
        """The ``k`` nearest records with their distances (RediSearch's: 1 - cosine, squared L2, 1 - dot)."""
        store, cfg = self.store, self.cfg
        base = "*" if namespace is None else f"({tag_query(cfg.namespace_field, namespace)})"
        hnsw = info.algorithm == "hnsw"
        ef = " EF_RUNTIME $ef" if hnsw else ""
        params: list[Any] = ["vec", query.astype("<f4").tobytes()]
        if hnsw:
            params += ["ef", str(max(k, 100))]
        reply = store.cmd(
            "searching",
            "FT.SEARCH",
            store.index,
            f"{base}=>[KNN {int(k)} @{cfg.vector_field} $vec{ef} AS {_DISTANCE}]",
            "PARAMS",
            str(len(params)),
            *params,
            "SORTBY",
            _DISTANCE,
            "ASC",
            "LIMIT",
            "0",
            str(int(k)),
            "DIALECT",
            "2",
        )
        out: list[tuple[Item, float]] = []
        rows = list(reply)[1:]
        for key, raw in zip(rows[::2], rows[1::2], strict=True):
            fields: dict[bytes, bytes] = dict(zip(raw[::2], raw[1::2], strict=True))
            distance = float(fields.pop(_DISTANCE.encode(), b"0") or 0)
            rid = store.rid(key if isinstance(key, bytes) else str(key).encode())
            if store.storage == "json":
                item = record_from_json(rid, json_loads(fields.get(b"$", b"null")), self.layout)
            else:
                item = record_from_hash(rid, fields, self.layout)
            out.append((item, distance))
        return out
