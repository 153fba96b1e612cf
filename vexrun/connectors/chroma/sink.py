"""Chroma as a sink: upserts of ids + our own embeddings + documents + metadata, capped at the server's
``max_batch_size`` per request.

Chroma's upsert *merges* metadata into an existing record (keys it is not given are kept) and keeps an
existing document when given none. So when the collection was not created by this run, the sink reads the
batch's existing records first and removes what the new version no longer has (stale keys are set to None,
which deletes them; a record whose text became None is deleted and added again): a re-written record equals
the record given, as an upsert should.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InvalidInput
from ...vmig.batch import Batch
from ..base import Hit, RunContext, Sink, WriteResult
from . import readback
from .client import _SPACES, Store, record_metadata, rows_to_batch
from .config import ChromaSinkConfig

__all__ = ["ChromaSink"]


class ChromaSink(Sink):
    name = "chroma"
    io_bound = True

    def __init__(self, config: ChromaSinkConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.cfg = config
        self.store = Store(config, ctx)
        self.fresh = True
        #: the collection was created by this run: nothing in it predates the run, no merge to undo
        self.created = False
        self.records = 0
        self.dims: int | None = None
        self.space = "cosine"
        self.limit = 5000
        self.pool: ThreadPoolExecutor | None = None

    def identity(self) -> str:
        return f"chroma:{self.cfg.collection} at {self.store.where}"

    def open(self, state: dict[str, Any] | None) -> None:
        self.store.open(create_dir=True)
        self.fresh = state is None
        self.records = int((state or {}).get("records", 0))
        self.created = bool((state or {}).get("created", False))
        self.limit = min(self.store.max_batch(), 5000)
        if self.store.get_collection() is not None:
            self.dims = self.store.dims()

    def prepare(self, dims: int | None, model: str | None, metric: str = "cosine") -> None:
        store, cfg = self.store, self.cfg
        metric = cfg.metric or metric
        if metric not in _SPACES:
            raise InvalidInput(f"chroma has no metric {metric!r} (it has {', '.join(_SPACES)})")
        coll = store.get_collection()
        if coll is not None and cfg.replace and self.fresh:
            store.call("deleting the collection", store.api.delete_collection, store.name)
            coll = None
        self.fresh = False
        if coll is None:
            store.create_collection(metric)
            self.created = True
            self.dims = dims  # Chroma fixes the dimension at the first write: hold it to the prepared one
            self.space = metric
            return
        have = store.metric() or "l2"  # Chroma's default space
        self.dims = store.dims()
        if have != metric or (dims is not None and self.dims is not None and dims != self.dims):
            shape = f"{self.dims}-d vectors" if self.dims else "vectors"
            raise InvalidInput(
                f"chroma collection '{store.name}' at {store.where} holds {shape} by {have}, this run writes "
                f"{dims}-d vectors by {metric}",
                hint="set replace: true on the target to re-create it, or choose another collection",
            )
        self.space = metric

    def write(self, batch: Batch) -> WriteResult:
        store = self.store
        rejected: dict[str, str] = {}
        mat = None if batch.vectors is None else np.ascontiguousarray(batch.vectors, dtype=np.float32)
        if mat is not None and self.dims is not None and mat.shape[1] != self.dims:
            reason = f"vector has {mat.shape[1]} dims, the collection holds {self.dims}-d vectors"
            return WriteResult(0, {rec.id: reason for rec in batch.records})
        ids: list[str] = []
        docs: list[str | None] = []
        metas: list[dict[str, Any] | None] = []
        rows: list[int] = []
        seen: set[str] = set()
        for i, rec in enumerate(batch.records):
            if mat is None or (batch.has_vector is not None and not batch.has_vector[i]):
                rejected[rec.id] = "no vector (vexrun writes its own embeddings to chroma)"
                continue
            if rec.id in seen:
                rejected[rec.id] = "the same id twice in one batch"
                continue
            meta = record_metadata(rec, self.cfg, self.cfg.namespace)
            if isinstance(meta, str):
                rejected[rec.id] = meta
                continue
            seen.add(rec.id)
            ids.append(rec.id)
            docs.append(rec.text)
            metas.append(meta or None)
            rows.append(i)
        if not rows:
            return WriteResult(0, rejected)
        assert mat is not None
        vecs = mat if len(rows) == len(batch) else mat[rows]
        if self.store.collection is None:
            store.get_collection()
        parts = [(s, min(s + self.limit, len(ids))) for s in range(0, len(ids), self.limit)]
        if not self.created:
            for start, end in parts:
                metas[start:end] = self._undo_merge(ids[start:end], docs[start:end], metas[start:end])
        if self.store.local or len(parts) == 1 or self.cfg.parallel == 1:
            for start, end in parts:
                self._upsert(ids[start:end], vecs[start:end], docs[start:end], metas[start:end])
        else:
            if self.pool is None:
                self.pool = ThreadPoolExecutor(max_workers=self.cfg.parallel, thread_name_prefix="vexrun-chroma")
            futures = [self.pool.submit(self._upsert, ids[s:e], vecs[s:e], docs[s:e], metas[s:e]) for s, e in parts]
            for future in futures:
                future.result()
        if self.dims is None:
            self.dims = int(mat.shape[1])
        self.records += len(rows)
        return WriteResult(written=len(rows), rejected=rejected)

    def _undo_merge(
        self, ids: list[str], docs: list[str | None], metas: list[dict[str, Any] | None]
    ) -> list[dict[str, Any] | None]:
        """Make the coming upsert replace the records that exist (see the module docstring): the metadatas
        to send, with the keys the new version no longer has set to None."""
        store = self.store
        old = store.call("reading existing records", store.coll.get, ids=ids, include=["metadatas", "documents"])
        if not old["ids"]:
            return metas
        where = {rid: i for i, rid in enumerate(ids)}
        old_docs = old.get("documents") or [None] * len(old["ids"])
        old_metas = old.get("metadatas") or [None] * len(old["ids"])
        gone: list[str] = []
        for rid, old_doc, old_meta in zip(old["ids"], old_docs, old_metas, strict=True):
            i = where[rid]
            if docs[i] is None and old_doc is not None:
                gone.append(rid)
                continue
            stale = set(old_meta or ()) - set(metas[i] or ())
            if stale:
                metas[i] = {**(metas[i] or {}), **dict.fromkeys(stale)}
        if gone:
            store.call("deleting records whose text was removed", store.coll.delete, ids=gone)
        return metas

    def _upsert(self, ids: list[str], vecs: np.ndarray, docs: list[str | None], metas: list[Any]) -> None:
        store = self.store
        store.call(
            "upserting records",
            store.coll.upsert,
            ids=ids,
            embeddings=vecs,
            documents=docs if any(d is not None for d in docs) else None,
            metadatas=metas if any(m is not None for m in metas) else None,
        )

    def state(self) -> dict[str, Any]:
        return {"records": self.records, "created": self.created}

    def check(self) -> str:
        if self.store.local and not Path(self.ctx.resolve_path(self.cfg.path or ".")).exists():
            return f"{self.identity()}: the local store does not exist yet (a run creates it)"
        self.store.open(create_dir=False)
        try:
            if self.store.get_collection() is None:
                return f"{self.identity()}: reachable; the collection does not exist yet (a run creates it)"
            n = self.store.call("counting", self.store.coll.count)
            dims = self.store.dims()
            shape = f", {dims}-d" if dims else ""
            return f"{self.identity()}: reachable, {n:,} records{shape} {self.store.metric() or 'l2'}"
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
        if self.store.collection is None and self.store.get_collection() is None:
            raise InvalidInput(f"chroma collection '{self.cfg.collection}' at {self.store.where} does not exist")

    def fetch(self, ids: Sequence[str], namespace: str | None = None) -> Batch:
        self._reading()
        return readback.fetch(self.store, self.cfg, ids, namespace, self.limit)

    def delete(self, ids: Sequence[str], namespace: str | None = None) -> int:
        self._reading()
        return readback.delete(self.store, ids, namespace, self.limit)

    def namespaces(self) -> list[str]:
        self._reading()
        return readback.namespaces(self.store, self.cfg)

    def count(self, namespace: str | None = None) -> int:
        self._reading()
        return readback.count(self.store, namespace)

    # -- search ------------------------------------------------------------------------------------
    def connect(self) -> None:
        self.store.open(create_dir=False)
        if self.store.get_collection() is None:
            raise InvalidInput(f"chroma collection '{self.cfg.collection}' at {self.store.where} does not exist")
        self.space = self.store.metric() or "l2"
        self.limit = min(self.store.max_batch(), 5000)

    def search(self, vector: Any, text: str, k: int, namespace: str | None = None) -> list[Any]:
        from ..encoding import from_store

        if vector is None:
            raise InvalidInput("chroma search needs a query vector (the recipe's embedder makes one)")
        if self.store.collection is None:
            self.connect()
        store = self.store
        query = np.asarray(vector, dtype=np.float32).ravel()
        res = store.call(
            "searching",
            store.coll.query,
            query_embeddings=[query],
            n_results=k,
            where=store.where_namespace(namespace),
            include=["documents", "metadatas", "distances", "embeddings"],
        )
        if not res["ids"] or not res["ids"][0]:
            return []
        got = {key: (res.get(key) or [None])[0] for key in ("ids", "documents", "metadatas", "embeddings")}
        distances = res["distances"][0]
        batch = from_store(rows_to_batch(got, self.cfg))
        qn = float(np.linalg.norm(query)) or 1.0
        hits = []
        for rank, ((rec, vec), dist) in enumerate(zip(batch, distances, strict=True), start=1):
            cosine = None if vec is None else float(np.dot(vec, query) / ((float(np.linalg.norm(vec)) or 1.0) * qn))
            score = -float(dist) if self.space == "l2" else 1.0 - float(dist)
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
