"""Weaviate as a sink: gRPC batch upserts (``insert_many``: a batch write replaces each object whole) with
vexrun's own vectors, ``chunk`` objects per request and ``parallel`` requests in flight; every object the server
refuses comes back as a rejected record with the server's reason. Durable when ``write`` returns (Weaviate
answers a batch once it is in its write-ahead log).

Namespaces are tenants by default: the sink creates the collection multi-tenant and each tenant as its first
record arrives; records without a namespace go to ``default_tenant``. A namespace that is not a valid tenant
name (1-64 of ``A-Za-z0-9_-``) is refused record by record (use ``tenants: false`` to keep any namespace, in a
property). New metadata keys become properties before the batch that brings them is sent (see :mod:`.codec`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from ...errors import InvalidInput
from ...vmig.batch import Batch
from ..base import Hit, RunContext, Sink, WriteResult
from . import readback, wire
from .client import DISTANCES, METRICS, Store
from .codec import OWN, Codec, object_key
from .config import WeaviateSinkConfig

__all__ = ["WeaviateSink"]

_ALL_FAILED = "Every object failed during insertion. Here is the set of all errors: "

_TENANT = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")


class WeaviateSink(Sink):
    name = "weaviate"
    concurrent_writers = True
    io_bound = True

    def __init__(self, config: WeaviateSinkConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.cfg = config
        self.store = Store(config, ctx)
        self.fresh = True
        self.records = 0
        self.dims: int | None = None
        self.codec: Codec | None = None
        #: write through :mod:`.wire` (False: the client's internals are not what it expects; ``insert_many``)
        self.wire = True
        self.known_tenants: set[str] | None = None
        self.pool: ThreadPoolExecutor | None = None

    def identity(self) -> str:
        return f"weaviate:{self.store.name} at {self.store.where}"

    @property
    def multi_tenant(self) -> bool:
        return self.store.read_shape().multi_tenant

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def open(self, state: dict[str, Any] | None) -> None:
        self.store.open()
        self.fresh = state is None
        self.records = int((state or {}).get("records", 0))

    def prepare(self, dims: int | None, model: str | None, metric: str = "cosine") -> None:
        store, cfg = self.store, self.cfg
        metric = cfg.metric or metric
        if metric not in DISTANCES:
            raise InvalidInput(f"weaviate has no metric {metric!r} (it has {', '.join(DISTANCES)})")
        if cfg.replace and self.fresh and store.exists():
            store.call("deleting the collection", store.api.collections.delete, store.name)
            store.forget()
        self.fresh = False
        if not store.exists():
            self._create(metric)
        shape = store.read_shape()
        if cfg.tenants is not None and cfg.tenants != shape.multi_tenant:
            raise InvalidInput(
                f"weaviate collection '{store.name}' at {store.where} "
                + ("has multi-tenancy" if shape.multi_tenant else "has no multi-tenancy")
                + f", the target says tenants: {str(cfg.tenants).lower()}",
                hint="leave tenants unset to use the collection as it is, or choose another collection",
            )
        if shape.vector is None:
            raise InvalidInput(f"weaviate collection '{store.name}' at {store.where} has no vector index")
        if shape.distance != DISTANCES[metric]:
            have = METRICS.get(shape.distance or "", shape.distance)
            raise InvalidInput(
                f"weaviate collection '{store.name}' at {store.where} measures vectors by {have}, this run by {metric}",
                hint="set metric on the target, or replace: true to re-create the collection",
            )
        held = readback.stored_dims(store, self.cfg)
        if held is not None and dims is not None and held != dims:
            raise InvalidInput(
                f"weaviate collection '{store.name}' at {store.where} holds {held}-d vectors, this run writes {dims}-d",
                hint="set replace: true on the target to re-create it, or choose another collection",
            )
        self.dims = held or dims
        self.codec = Codec(cfg.text_key, None if shape.multi_tenant else cfg.namespace_key, dict(shape.props))
        self.wire = wire.writable(store.api)
        self._own_properties(shape.props)
        self.known_tenants = set(store.tenants()) if shape.multi_tenant else None

    def _create(self, metric: str) -> None:
        from weaviate.classes.config import Configure, DataType, Property, Tokenization, VectorDistances

        cfg, store = self.cfg, self.store
        index = Configure.VectorIndex.flat if cfg.index == "flat" else Configure.VectorIndex.hnsw
        props = [Property(name=cfg.text_key, data_type=DataType.TEXT)]
        if cfg.tenants is False:
            props.append(
                Property(
                    name=cfg.namespace_key,
                    data_type=DataType.TEXT,
                    tokenization=Tokenization.FIELD,
                    index_searchable=False,
                )
            )
        for name, (_, tok, filterable, searchable) in OWN.items():
            props.append(
                Property(
                    name=name,
                    data_type=DataType.TEXT,
                    tokenization=Tokenization(tok),
                    index_filterable=filterable,
                    index_searchable=searchable,
                )
            )
        try:
            store.api.collections.create(
                store.name,
                properties=props,
                vector_config=Configure.Vectors.self_provided(
                    name=cfg.vector_name, vector_index_config=index(distance_metric=VectorDistances(DISTANCES[metric]))
                ),
                multi_tenancy_config=Configure.multi_tenancy(enabled=cfg.tenants is not False),
            )
        except Exception as exc:  # noqa: BLE001
            if "already exists" not in str(exc) or not store.exists():  # another writer created it meanwhile
                store.fail(exc, "creating the collection")
        store.forget()

    def _own_properties(self, have: dict[str, str]) -> None:
        """A collection other tools made may lack vexrun's properties: add them (conflicting types are refused)."""
        cfg = self.cfg
        want = {name: "text" for name in OWN}
        want[cfg.text_key] = "text"
        if not self.store.read_shape().multi_tenant:
            want[cfg.namespace_key] = "text"
        for name, dtype in want.items():
            if name in have and have[name] != dtype and name != "created_at":
                raise InvalidInput(
                    f"weaviate collection '{self.store.name}' at {self.store.where} has a property '{name}' of type "
                    f"{have[name]}, vexrun keeps text there",
                    hint="set text_key / namespace_key to other names, or choose another collection",
                )
        missing = {n: d for n, d in want.items() if n not in have}
        if missing:
            self._declare(missing)

    def _declare(self, props: dict[str, str]) -> None:
        from weaviate.classes.config import DataType, Property, Tokenization

        coll = self.store.collection()
        for name, dtype in props.items():
            own = OWN.get(name)
            tok = Tokenization(own[1]) if own else (Tokenization.FIELD if name == self.cfg.namespace_key else None)
            textual = dtype in ("text", "text[]")
            prop = Property(
                name=name,
                data_type=DataType(dtype),
                tokenization=tok if textual else None,
                index_filterable=own[2] if own else True,
                index_searchable=(own[3] if own else tok is None) and textual,
            )
            try:
                coll.config.add_property(prop)
            except Exception as exc:  # noqa: BLE001 - a concurrent writer may have added it: check the schema
                self.store.forget()
                if self.store.read_shape().props.get(name) != dtype:
                    self.store.fail(exc, f"adding the property '{name}'")
        self.store.forget()

    # -- writing -----------------------------------------------------------------------------------------------
    def write(self, batch: Batch) -> WriteResult:
        """Encode the batch chunk by chunk, each chunk sent as soon as it is built (``parallel`` in flight), so
        encoding the next chunk overlaps with the server's work on this one; returns when every chunk is done."""
        if self.codec is None:
            raise RuntimeError("weaviate sink written before prepare()")
        mat = None if batch.vectors is None else np.ascontiguousarray(batch.vectors, dtype=np.float32)
        if mat is not None and self.dims is not None and mat.shape[1] != self.dims:
            reason = f"vector has {mat.shape[1]} dims, the collection holds {self.dims}-d vectors"
            return WriteResult(0, {rec.id: reason for rec in batch.records})
        rejected: dict[str, str] = {}
        plan = self._plan(batch, rejected)
        futures: list[Future[dict[str, str]]] = []
        buffers: dict[str, list[tuple[str, Any]]] = {}
        shape = self.store.read_shape()
        for i, tenant, key in plan:
            obj = self._object(batch, i, key, mat, tenant, shape.multi_tenant, shape.only_vector)
            buffers.setdefault(tenant, []).append((batch.records[i].id, obj))
            if len(buffers[tenant]) >= self.cfg.chunk:
                futures.append(self._submit(tenant, buffers.pop(tenant)))
        for tenant, items in buffers.items():
            futures.append(self._submit(tenant, items))
        for future in futures:
            rejected.update(future.result())
        written = sum(1 for rec in batch.records if rec.id not in rejected)
        self.records += written
        return WriteResult(written=written, rejected=rejected)

    def _plan(self, batch: Batch, rejected: dict[str, str]) -> list[tuple[int, str, str]]:
        """(row, tenant, object key) of each record to send: namespaces a tenant cannot be are refused, and of an
        id written twice only the last is sent (the last write wins, never two writes of one object in flight)."""
        cfg = self.cfg
        mt = self.multi_tenant
        last: dict[tuple[str, str], int] = {}
        for i, rec in enumerate(batch.records):
            ns = rec.namespace if rec.namespace is not None else cfg.namespace
            tenant = ""
            if mt:
                tenant = cfg.default_tenant if ns is None else ns
                if ns is not None and not _TENANT.match(ns):
                    rejected[rec.id] = (
                        f"namespace {ns!r} is not a Weaviate tenant name (1-64 of A-Z a-z 0-9 _ -); "
                        "tenants: false keeps any namespace"
                    )
                    continue
                if ns == cfg.default_tenant:
                    rejected[rec.id] = (
                        f"namespace {ns!r} is the default_tenant, which holds records without a "
                        "namespace; set default_tenant to another name"
                    )
                    continue
            last[(tenant, object_key(rec.id))] = i
        return sorted(((i, tenant, key) for (tenant, key), i in last.items()), key=lambda t: t[0])

    def _object(
        self, batch: Batch, i: int, key: str, mat: np.ndarray | None, tenant: str, mt: bool, unnamed: bool
    ) -> Any:
        """The record's ``BatchObject``, serialized (:func:`.wire.object_bytes`), or its ``DataObject`` for
        ``insert_many`` when the client's internals are not what :mod:`.wire` expects."""
        assert self.codec is not None
        rec = batch.records[i]
        vec = None
        if mat is not None and (batch.has_vector is None or batch.has_vector[i]):
            vec = mat[i]
        ns = None
        if not mt:
            ns = rec.namespace if rec.namespace is not None else self.cfg.namespace
        name = None if unnamed else self.cfg.vector_name
        props = self.codec.encode(rec, ns)
        if self.wire:
            return wire.object_bytes(self.store.name, key, tenant, props, vec, name)
        from weaviate.classes.data import DataObject

        if vec is None:
            return DataObject(properties=props, uuid=key)
        values: list[float] = vec.tolist()
        return DataObject(properties=props, uuid=key, vector=values if name is None else {name: values})

    def _submit(self, tenant: str, items: list[tuple[str, Any]]) -> Future[dict[str, str]]:
        """Send one chunk: the properties and tenant it needs exist first."""
        assert self.codec is not None
        if self.codec.pending:
            self._declare(self.codec.pending)
            self.codec.declared()
        if tenant:
            self._ensure_tenants([tenant])
        if self.cfg.parallel == 1:
            done: Future[dict[str, str]] = Future()
            done.set_result(self._send(tenant, items))
            return done
        if self.pool is None:
            self.pool = ThreadPoolExecutor(max_workers=self.cfg.parallel, thread_name_prefix="vexrun-weaviate")
        return self.pool.submit(self._send, tenant, items)

    def _send(self, tenant: str, items: list[tuple[str, Any]]) -> dict[str, str]:
        """One gRPC batch; the records the server refused, with its reasons."""
        if not self.wire:
            return self._insert_many(tenant, items)
        try:
            errors = wire.send(self.store.api, [obj for _, obj in items])
        except Exception as exc:  # noqa: BLE001
            self.store.fail(exc, "writing objects")
        return {items[i][0]: str(message) for i, message in errors.items()}

    def _insert_many(self, tenant: str, items: list[tuple[str, Any]]) -> dict[str, str]:
        from weaviate.exceptions import WeaviateInsertManyAllFailedError

        coll = self.store.collection(tenant or None)
        try:
            res = coll.data.insert_many([obj for _, obj in items])
        except WeaviateInsertManyAllFailedError as exc:
            reason = str(getattr(exc, "message", exc)).replace(_ALL_FAILED, "").strip()
            return {rid: reason for rid, _ in items}
        except Exception as exc:  # noqa: BLE001
            self.store.fail(exc, "writing objects")
        return {items[i][0]: str(err.message) for i, err in res.errors.items()}

    def _ensure_tenants(self, tenants: list[str]) -> None:
        known = self.known_tenants if self.known_tenants is not None else set()
        missing = [t for t in tenants if t and t not in known]
        if missing:
            coll = self.store.collection()
            for start in range(0, len(missing), 100):
                self.store.call("creating tenants", coll.tenants.create, missing[start : start + 100])
            known.update(missing)
            self.known_tenants = known

    def state(self) -> dict[str, Any]:
        return {"records": self.records}

    def check(self) -> str:
        self.store.open()
        try:
            if not self.store.exists():
                return f"{self.identity()}: reachable; the collection does not exist yet (a run creates it)"
            shape = self.store.read_shape()
            kind = "tenants " + ", ".join(self.store.tenants()[:5]) if shape.multi_tenant else "no tenants"
            return f"{self.identity()}: reachable, {readback.count(self.store, self.cfg, None):,} objects ({kind})"
        finally:
            self.store.close()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None
        self.store.close()

    # -- reading back and search (see .readback) -------------------------------------------------------------
    def connect(self) -> None:
        self.store.open()
        if not self.store.exists():
            raise InvalidInput(f"weaviate collection '{self.store.name}' at {self.store.where} does not exist")
        self.store.read_shape()

    def _reading(self) -> None:
        if self.store.client is None or self.store.shape is None:
            self.connect()

    def fetch(self, ids: Sequence[str], namespace: str | None = None) -> Batch:
        self._reading()
        return readback.fetch(self.store, self.cfg, ids, namespace)

    def delete(self, ids: Sequence[str], namespace: str | None = None) -> int:
        self._reading()
        return readback.delete(self.store, self.cfg, ids, namespace)

    def namespaces(self) -> list[str]:
        self._reading()
        return readback.namespaces(self.store, self.cfg)

    def count(self, namespace: str | None = None) -> int:
        self._reading()
        return readback.count(self.store, self.cfg, namespace)

    def search(self, vector: Any, text: str, k: int, namespace: str | None = None) -> list[Hit]:
        self._reading()
        return readback.search(self.store, self.cfg, vector, k, namespace)
