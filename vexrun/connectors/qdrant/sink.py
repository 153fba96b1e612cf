"""Qdrant as a sink: idempotent upserts of points (``wait=True``: durable when ``write`` returns); against a
server a few requests in flight at once, in local mode one at a time."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConnectError, InvalidInput
from ...vmig.batch import Batch
from ..base import Hit, RunContext, Sink, WriteResult
from . import readback
from .client import Store, point_id, points_to_batch, record_payload
from .config import QdrantSinkConfig

__all__ = ["QdrantSink"]

#: Points per upsert request (Qdrant advises 64-256; measured best here, see bench/bench_qdrant.py).
CHUNK = 256
_DISTANCES = {"cosine": "Cosine", "dot": "Dot", "l2": "Euclid"}
_METRICS = {v: k for k, v in _DISTANCES.items()}


def _normalized(mat: np.ndarray) -> np.ndarray:
    """Unit rows (zero rows stay zero), in float32 as Qdrant computes them. A Qdrant server stores cosine
    vectors normalised; local mode normalises them in memory but persists them raw, and after re-opening
    it ranks cosine queries by the raw vectors. Writing them normalised makes both behave like a server."""
    norms = np.linalg.norm(mat, axis=1, keepdims=True).astype(np.float32)
    out: np.ndarray = np.divide(mat, norms, out=np.zeros_like(mat), where=norms > 0)
    return out


class QdrantSink(Sink):
    name = "qdrant"

    def __init__(self, config: QdrantSinkConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.cfg = config
        self.store = Store(config, ctx)
        self.fresh = True
        self.records = 0
        self.dims: int | None = None
        self.metric = "cosine"
        self.pool: ThreadPoolExecutor | None = None
        self._tuned: set[int] = set()

    def identity(self) -> str:
        return f"qdrant:{self.cfg.collection} at {self.store.where}"

    # -- lifecycle ---------------------------------------------------------------------------------
    def open(self, state: dict[str, Any] | None) -> None:
        self.store.open(create_dir=True)
        self.fresh = state is None
        self.records = int((state or {}).get("records", 0))
        if self.store.local:
            self.ctx.info(
                f"qdrant local mode ({self.store.where}): the whole collection is held in this process's memory"
            )

    def prepare(self, dims: int | None, model: str | None, metric: str = "cosine") -> None:
        from qdrant_client import models

        store, cfg = self.store, self.cfg
        metric = cfg.metric or metric
        if metric not in _DISTANCES:
            raise InvalidInput(f"qdrant has no metric {metric!r} (it has {', '.join(_DISTANCES)})")
        if cfg.replace and self.fresh and store.exists():
            store.call("dropping the collection", store.api.delete_collection, store.name)
        self.fresh = False
        if store.exists():
            params = store.vector_params()
            if params is not None and dims is not None:
                size, distance = params
                if size != dims or distance != _DISTANCES[metric]:
                    raise InvalidInput(
                        f"qdrant collection '{store.name}' at {store.where} holds {size}-d vectors by "
                        f"{_METRICS.get(distance, distance)}, this run writes {dims}-d vectors by {metric}",
                        hint="set replace: true on the target to re-create it, or choose another collection",
                    )
            self.dims = params[0] if params else dims
            self.metric = _METRICS.get(params[1], metric) if params else metric
            return
        if dims is None:
            raise InvalidInput(f"qdrant collection '{store.name}' needs vectors: this run has none (add an embed step)")
        params_ = models.VectorParams(
            size=dims, distance=models.Distance(_DISTANCES[metric]), on_disk=cfg.on_disk or None
        )
        vectors: Any = {cfg.vector_name: params_} if cfg.vector_name else params_
        store.call("creating the collection", store.api.create_collection, store.name, vectors_config=vectors)
        if not store.local:  # local mode ignores payload indexes (and warns)
            store.call(
                "indexing the namespace field",
                store.api.create_payload_index,
                store.name,
                cfg.namespace_key,
                field_schema=models.PayloadSchemaType.KEYWORD,
            )
        self.dims = dims
        self.metric = metric

    # -- writing -----------------------------------------------------------------------------------
    def write(self, batch: Batch) -> WriteResult:
        from qdrant_client import models

        cfg = self.cfg
        rejected: dict[str, str] = {}
        mat = None if batch.vectors is None else np.ascontiguousarray(batch.vectors, dtype=np.float32)
        if mat is not None and self.dims is not None and mat.shape[1] != self.dims:
            reason = f"vector has {mat.shape[1]} dims, the collection holds {self.dims}-d vectors"
            return WriteResult(0, {rec.id: reason for rec in batch.records})
        ids: list[Any] = []
        payloads: list[dict[str, Any]] = []
        rows: list[int] = []
        for i, rec in enumerate(batch.records):
            if mat is None or (batch.has_vector is not None and not batch.has_vector[i]):
                rejected[rec.id] = "no vector (qdrant stores points with vectors)"
                continue
            ids.append(point_id(rec.id))
            payloads.append(record_payload(rec, cfg, cfg.namespace))
            rows.append(i)
        if not rows:
            return WriteResult(0, rejected)
        assert mat is not None
        part = mat if len(rows) == len(batch) else mat[rows]
        if self.metric == "cosine":
            part = _normalized(part)
        vecs = part.tolist()
        chunks = []
        for start in range(0, len(rows), CHUNK):
            end = start + CHUNK
            vec_part: Any = vecs[start:end]
            if cfg.vector_name:
                vec_part = {cfg.vector_name: vec_part}
            chunks.append(models.Batch(ids=ids[start:end], vectors=vec_part, payloads=payloads[start:end]))
        if self.store.local or len(chunks) == 1 or cfg.parallel == 1:
            self._tune_local()
            for chunk in chunks:
                self._upsert(chunk)
            self._sync_local()
        else:
            if self.pool is None:
                self.pool = ThreadPoolExecutor(max_workers=cfg.parallel, thread_name_prefix="vexrun-qdrant")
            for future in [self.pool.submit(self._upsert, chunk) for chunk in chunks]:
                future.result()
        self.records += len(rows)
        return WriteResult(written=len(rows), rejected=rejected)

    def _upsert(self, points: Any) -> None:
        store = self.store
        store.call("upserting points", store.api.upsert, store.name, points=points, wait=True)

    def _local_db(self) -> sqlite3.Connection | None:
        """The SQLite connection that persists the local collection (qdrant-client internals; None if they
        changed, and then the client's own per-point commits are used as they are)."""
        inner = getattr(self.store.api, "_client", None)
        collection = getattr(inner, "collections", {}).get(self.store.name)
        db = getattr(getattr(collection, "storage", None), "storage", None)
        return db if isinstance(db, sqlite3.Connection) else None

    def _tune_local(self) -> None:
        """Local mode with ``local_durability: batch``: put the collection's SQLite file in WAL mode with
        ``synchronous=NORMAL``, so qdrant-client's commit of each point is not synced on its own; then
        :meth:`_sync_local` syncs the whole batch once."""
        if not self.store.local or self.cfg.local_durability != "batch":
            return
        db = self._local_db()
        if db is None or id(db) in self._tuned:
            return
        try:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            raise ConnectError(f"qdrant local store {self.store.where}: {exc}") from None
        self._tuned.add(id(db))

    def _sync_local(self) -> None:
        """Local mode: a checkpoint syncs the WAL, then the database (SQLite does both in WAL mode with
        ``synchronous=NORMAL``): the batch is on disk when ``write`` returns."""
        if not self.store.local or self.cfg.local_durability != "batch":
            return
        db = self._local_db()
        if db is None or id(db) not in self._tuned:
            return
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:
            raise ConnectError(f"qdrant local store {self.store.where}: {exc}") from None

    def state(self) -> dict[str, Any]:
        return {"records": self.records}

    def finalize(self) -> None:
        self._sync_local()

    def check(self) -> str:
        if self.store.local and not Path(self.ctx.resolve_path(self.cfg.path or ".")).exists():
            return f"{self.identity()}: the local store does not exist yet (a run creates it)"
        self.store.open(create_dir=False)
        try:
            if not self.store.exists():
                return f"{self.identity()}: reachable; the collection does not exist yet (a run creates it)"
            params = self.store.vector_params()
            shape = f", {params[0]}-d {_METRICS.get(params[1], params[1])}" if params else ""
            return f"{self.identity()}: reachable, {self.store.count():,} points{shape}"
        finally:
            self.store.close()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None
        self.store.close()

    # -- reading back (see .readback) ----------------------------------------------------------------
    def _reading(self) -> None:
        """Open the collection for reading unless the run (or :meth:`connect`) already has it open."""
        if self.store.client is None:
            self.connect()

    def fetch(self, ids: Sequence[str], namespace: str | None = None) -> Batch:
        self._reading()
        return readback.fetch(self.store, self.cfg, ids, namespace)

    def delete(self, ids: Sequence[str], namespace: str | None = None) -> int:
        self._reading()
        deleted = readback.delete(self.store, self.cfg, ids, namespace)
        self._sync_local()
        return deleted

    def namespaces(self) -> list[str]:
        self._reading()
        return readback.namespaces(self.store, self.cfg)

    def count(self, namespace: str | None = None) -> int:
        self._reading()
        return readback.count(self.store, namespace)

    # -- search ------------------------------------------------------------------------------------
    def connect(self) -> None:
        self.store.open(create_dir=False)
        if not self.store.exists():
            raise InvalidInput(f"qdrant collection '{self.cfg.collection}' at {self.store.where} does not exist")

    def search(self, vector: Any, text: str, k: int, namespace: str | None = None) -> list[Any]:
        from ..encoding import from_store

        if vector is None:
            raise InvalidInput("qdrant search needs a query vector (the recipe's embedder makes one)")
        store = self.store
        if store.client is None:
            self.connect()
        query = np.asarray(vector, dtype=np.float32).ravel()
        res = store.call(
            "searching",
            store.api.query_points,
            store.name,
            query=query.tolist(),
            using=self.cfg.vector_name,
            query_filter=store.namespace_filter(namespace),
            limit=k,
            with_payload=True,
            with_vectors=True,
        )
        points = list(res.points)
        if not points:
            return []
        batch = from_store(points_to_batch(points, self.cfg))
        qn = float(np.linalg.norm(query)) or 1.0
        hits = []
        for rank, (point, (rec, vec)) in enumerate(zip(points, batch, strict=True), start=1):
            cosine = None
            if vec is not None:
                vn = float(np.linalg.norm(vec)) or 1.0
                cosine = float(np.dot(vec, query) / (vn * qn))
            hits.append(
                Hit(
                    rank=rank,
                    id=rec.id,
                    score=float(point.score),
                    text=rec.text,
                    namespace=rec.namespace,
                    metadata=rec.metadata,
                    created_at=rec.created_at,
                    cosine=cosine,
                    vector_rank=rank,
                )
            )
        return hits
