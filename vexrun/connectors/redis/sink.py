"""Redis as a sink: pipelined upserts (HSET, or JSON.SET with ``storage: json``; no MULTI), and a RediSearch
vector index over the key prefix, created before the load or, with ``index_after_load``, when the run completes.

An upsert replaces a record: HSET of its fields, then HDEL of the fields vexrun owns that the new version
lacks (a JSON.SET replaces the whole document). ``write`` returns when Redis has applied every command of the
batch; how durable that is, is the server's persistence setting (AOF ``appendfsync``). With an index, Redis
indexes each record as it is written, so a record is searchable when ``write`` returns.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from ...errors import InvalidInput
from ...vmig.batch import Batch
from ...vmig.model import Record
from ..base import Hit, RunContext, Sink, WriteResult
from .client import DISTANCES, IndexInfo, Store
from .codec import Layout, hash_fields, json_document, json_loads, json_text, to_batch
from .config import RedisSinkConfig
from .readback import ReadBack

__all__ = ["CHUNK", "RedisSink"]

#: Records per chunk of commands sent before the next is built (see :meth:`Store.stream`).
CHUNK = 250
#: How often to say how far the background indexing is, seconds.
_PROGRESS_EVERY = 10.0
SCHEMA_VERSION = "1"


class RedisSink(ReadBack, Sink):
    name = "redis"
    concurrent_writers = True
    io_bound = True
    cfg: RedisSinkConfig

    def __init__(self, config: RedisSinkConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.cfg = config
        self.store = Store(config, ctx)
        self.layout = Layout(config)
        self.fresh = True
        self.records = 0
        self.dims: int | None = None
        self.metric = "cosine"

    def identity(self) -> str:
        return f"redis:{self.cfg.collection} at {self.store.where}"

    # -- lifecycle ---------------------------------------------------------------------------------
    def open(self, state: dict[str, Any] | None) -> None:
        self.store.open()
        self.fresh = state is None
        self.records = int((state or {}).get("records", 0))

    def prepare(self, dims: int | None, model: str | None, metric: str = "cosine") -> None:
        store, cfg = self.store, self.cfg
        metric = cfg.metric or metric
        if metric not in DISTANCES:
            raise InvalidInput(f"redis has no metric {metric!r} (it has {', '.join(DISTANCES)})")
        if cfg.replace and self.fresh:
            store.drop()
        self.fresh = False
        info = store.index_info()
        meta = store.read_meta()
        if info is not None:
            self._check(info, dims, metric)
            self.dims = info.dims or dims
            self.metric = info.metric or metric
        elif meta.get("dims"):  # written before, without an index: index_after_load, or the index was dropped
            have, have_metric = int(meta["dims"]), meta.get("metric", "cosine")
            if (dims is not None and dims != have) or have_metric != metric:
                raise InvalidInput(
                    f"redis collection '{cfg.collection}' at {store.where} holds {have}-d vectors by {have_metric}, "
                    f"this run writes {dims}-d vectors by {metric}",
                    hint="set replace: true on the target to re-create it, or choose another collection",
                )
            if not cfg.index_after_load:
                store.create_index(cfg, have, have_metric)
            self.dims, self.metric = have, have_metric
        else:
            if dims is None:
                raise InvalidInput(
                    f"redis collection '{cfg.collection}' needs vectors: this run has none (add an embed step)"
                )
            if not cfg.index_after_load:
                store.create_index(cfg, dims, metric)
            self.dims, self.metric = dims, metric
        spec = getattr(self.ctx, "embedder_spec", None)
        values = {
            "schema": SCHEMA_VERSION,
            "dims": str(self.dims or ""),
            "metric": self.metric,
            "storage": cfg.storage,
            "prefix": cfg.key_prefix,
            "index": cfg.index,
        }
        if model:
            values["model"] = model
        if spec:
            values["embedder"] = json_text(spec)
        store.write_meta(values)

    def _check(self, info: IndexInfo, dims: int | None, metric: str) -> None:
        """Refuse an existing index that this target's records would not fit."""
        cfg, where = self.cfg, self.store.where
        name = f"redis index '{cfg.collection}' at {where}"
        hint = "set replace: true on the target to re-create it, or choose another collection"
        if info.storage != cfg.storage:
            raise InvalidInput(f"{name} indexes {info.storage} keys, this target writes {cfg.storage}", hint=hint)
        if cfg.key_prefix not in info.prefixes:
            have = ", ".join(f"'{p}'" for p in info.prefixes) or "every key"
            raise InvalidInput(f"{name} covers keys under {have}, not under '{cfg.key_prefix}'", hint=hint)
        if info.fields.get(cfg.vector_field) != "VECTOR":
            raise InvalidInput(f"{name} has no vector field '{cfg.vector_field}'", hint=hint)
        if (dims is not None and info.dims is not None and info.dims != dims) or (
            info.metric is not None and info.metric != metric
        ):
            raise InvalidInput(
                f"{name} holds {info.dims}-d vectors by {info.metric}, this run writes {dims}-d vectors by {metric}",
                hint=hint,
            )

    # -- writing -----------------------------------------------------------------------------------
    def write(self, batch: Batch) -> WriteResult:
        store = self.store
        rejected: dict[str, str] = {}
        mat = None if batch.vectors is None else np.ascontiguousarray(batch.vectors, dtype="<f4")
        if mat is not None and self.dims is not None and mat.shape[1] != self.dims:
            reason = f"vector has {mat.shape[1]} dims, the index holds {self.dims}-d vectors"
            return WriteResult(0, {rec.id: reason for rec in batch.records})
        rows: list[int] = []
        for i, rec in enumerate(batch.records):
            if mat is None or (batch.has_vector is not None and not batch.has_vector[i]):
                rejected[rec.id] = "no vector (a redis vector index needs one)"
                continue
            rows.append(i)
        if not rows:
            return WriteResult(0, rejected)
        assert mat is not None
        if self.dims is None:
            self.dims = int(mat.shape[1])
        records = batch.records
        store.stream("writing records", self._commands(records, rows, mat))
        duplicates = len(rows) - len({records[i].id for i in rows})
        self.records += len(rows)
        return WriteResult(written=len(rows), rejected=rejected, duplicates=duplicates)

    def _commands(self, records: list[Record], rows: list[int], mat: np.ndarray) -> Iterator[list[tuple[Any, ...]]]:
        """The write commands of these rows, in chunks of :data:`CHUNK` records."""
        store, cfg, layout = self.store, self.cfg, self.layout
        for start in range(0, len(rows), CHUNK):
            chunk: list[tuple[Any, ...]] = []
            for i in rows[start : start + CHUNK]:
                rec = records[i]
                key = store.key(rec.id)
                if cfg.storage == "json":
                    chunk.append(("JSON.SET", key, "$", json_document(rec, mat[i], layout, cfg.namespace)))
                    continue
                args, absent = hash_fields(rec, mat[i].tobytes(), layout, cfg.namespace)
                chunk.append(("HSET", key, *args))
                if absent:
                    chunk.append(("HDEL", key, *absent))
            yield chunk

    def state(self) -> dict[str, Any]:
        return {"records": self.records}

    def finalize(self) -> None:
        """Create the index if it is still to be made (``index_after_load``), and wait until Redis has indexed
        every record, saying how far it is."""
        store = self.store
        info = store.index_info()
        if info is None:
            meta = store.read_meta()
            if not meta.get("dims"):
                return  # nothing was written
            store.create_index(self.cfg, int(meta["dims"]), meta.get("metric") or self.metric)
            self.ctx.info(f"redis: indexing the records of '{self.cfg.collection}' (FT.CREATE after the load)")
        self.wait_indexed()

    def wait_indexed(self) -> None:
        store = self.store
        said = time.monotonic()
        while True:
            info = store.index_info()
            if info is None or not info.indexing:
                return
            if time.monotonic() - said >= _PROGRESS_EVERY:
                said = time.monotonic()
                self.ctx.info(f"redis: {info.num_docs:,} records of '{self.cfg.collection}' indexed so far")
            time.sleep(0.1)

    def check(self) -> str:
        self.store.open()
        try:
            info = self.store.index_info()
            if info is None:
                return f"{self.identity()}: reachable; the index does not exist yet (a run creates it)"
            shape = f", {info.dims}-d {info.metric or ''}".rstrip() if info.dims else ""
            return f"{self.identity()}: reachable, {info.num_docs:,} records indexed{shape}"
        finally:
            self.store.close()

    def close(self) -> None:
        self.store.close()

    # -- search ------------------------------------------------------------------------------------
    def connect(self) -> None:
        self.store.open()
        info = self.store.index_info()
        meta = self.store.read_meta()
        self.store.adopt(info, meta)
        if info is None and not meta:
            self.store.close()
            raise InvalidInput(f"redis index '{self.cfg.collection}' at {self.store.where} does not exist")
        self.metric = (info.metric if info else None) or meta.get("metric") or "cosine"
        self.dims = (info.dims if info else None) or (int(meta["dims"]) if meta.get("dims") else None)

    def embedder_spec(self) -> dict[str, Any] | None:
        """The embedder that made the vectors, as the sink recorded it (``{"type": ..., settings}``), or None."""
        self._ready()
        spec = json_loads(self.store.read_meta().get("embedder", "").encode())
        return dict(spec) if isinstance(spec, dict) and isinstance(spec.get("type"), str) else None

    def search(self, vector: Any, text: str, k: int, namespace: str | None = None) -> list[Hit]:
        from ..encoding import from_store

        if vector is None:
            raise InvalidInput("redis search needs a query vector (the recipe's embedder makes one)")
        store, cfg = self._ready(), self.cfg
        info = store.index_info()
        if info is None:
            raise InvalidInput(f"redis index '{cfg.collection}' at {store.where} does not exist (yet)")
        query = np.asarray(vector, dtype="<f4").ravel()
        if info.dims is not None and len(query) != info.dims:
            raise InvalidInput(f"the query vector has {len(query)} dims, redis index '{cfg.collection}' {info.dims}")
        found = self.knn(query, k, namespace, info)
        if not found:
            return []
        batch = from_store(to_batch([item for item, _ in found], store.where))
        qn = float(np.linalg.norm(query)) or 1.0
        metric = info.metric or self.metric
        hits = []
        for rank, ((rec, vec), (_, distance)) in enumerate(zip(batch, found, strict=True), start=1):
            cosine = None if vec is None else float(np.dot(vec, query) / ((float(np.linalg.norm(vec)) or 1.0) * qn))
            score = -distance if metric == "l2" else 1.0 - distance
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
