"""Milvus / Zilliz Cloud (or Milvus Lite) as a sink: idempotent upserts sent with bounded concurrency, the
vector index built once the load is done."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ...errors import InvalidInput, UsageError
from ...vmig.batch import Batch
from ..base import Hit, RunContext, Sink, WriteResult
from ..encoding import ORIGINAL_ID
from . import readback
from .codec import decode_row, encode_row, row_bytes
from .common import (
    ID,
    MAX_ID_BYTES,
    MAX_VARCHAR_BYTES,
    METADATA,
    METRICS,
    NAMESPACE,
    SCHEMA_VERSION,
    TEXT,
    VECTOR,
    VEXRUN,
    MilvusStoreConfig,
    Store,
    dumps,
    literal,
    open_store,
    sdk,
)
from .wire import WireWriter, wire_writer

__all__ = ["MilvusSink", "MilvusSinkConfig"]

#: Upper bound of one upsert request (Milvus refuses messages over 64 MB; 20-40 MB is its advice).
REQUEST_BYTES = 16 * 1024 * 1024
#: Parameters Milvus 2.3 requires for some index types, used when the recipe gives none.
INDEX_DEFAULTS: dict[str, dict[str, int]] = {
    "HNSW": {"M": 16, "efConstruction": 200},
    "IVF_FLAT": {"nlist": 128},
    "IVF_SQ8": {"nlist": 128},
}
#: Below this many rows a batch is not split for concurrency (small requests cost more than they save).
MIN_PART_ROWS = 256


class MilvusSinkConfig(MilvusStoreConfig):
    """``type: milvus`` (alias ``zilliz``) — a Milvus collection (a Milvus server, Zilliz Cloud, or a Milvus
    Lite ``.db``), created when missing: id, float32 vector, text, namespace, metadata (JSON). Records are
    upserted, so writing the same records again changes nothing."""

    namespace: str | None = Field(default=None, description="Set this namespace on records that have none.")
    metric: Literal["cosine", "l2", "dot"] | None = Field(
        default=None, description="Distance of the vector index (default: the run's metric, cosine)."
    )
    index_type: str = Field(
        default="AUTOINDEX",
        min_length=1,
        description="Vector index built when the run completes: AUTOINDEX, HNSW, FLAT, IVF_FLAT, ... "
        "or 'none' (no index; Milvus cannot load, read or search the collection until one exists).",
    )
    index_params: dict[str, int | float | str] = Field(
        default_factory=dict,
        description="Parameters of the index (HNSW defaults to {M: 16, efConstruction: 200}, IVF_FLAT and "
        "IVF_SQ8 to {nlist: 128}).",
    )
    replace: bool = Field(
        default=False,
        description="Drop the collection when a fresh run starts (never when a run resumes). Without it, a "
        "collection with vectors of other dims, another metric or another model is refused.",
    )
    concurrency: int = Field(
        default=3, ge=1, le=16, description="Upsert requests in flight at once (Milvus Lite always uses 1)."
    )


class MilvusSink(Sink):
    name = "milvus"
    io_bound = True

    def __init__(self, config: MilvusSinkConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.cfg = config
        self.store: Store | None = None
        self.pool: ThreadPoolExecutor | None = None
        self.writer: WireWriter | None = None
        self.fresh = True
        self.dims: int | None = None
        self.metric: str | None = None
        self.model: str | None = None
        self.records = 0
        #: the collection is loaded, so reads (search, read-back) can be answered
        self.readable = False

    def identity(self) -> str:
        where = self.store.where if self.store is not None else self.cfg.uri
        return f"{where}#{self.cfg.collection}"

    def _db(self) -> Store:
        if self.store is None:
            raise RuntimeError("MilvusSink used before open()")
        return self.store

    def open(self, state: dict[str, Any] | None) -> None:
        self.store = open_store(self.cfg, self.ctx)
        self.readable = False
        self.fresh = state is None
        self.records = int((state or {}).get("records", 0))
        if self.store.local is None and self.cfg.concurrency > 1:
            self.pool = ThreadPoolExecutor(self.cfg.concurrency, thread_name_prefix="milvus-upsert")
        #: upserts built and sent by vexrun on the client's stub (None: through ``MilvusClient.upsert``)
        self.writer = wire_writer(self.store, self.cfg.db_name)

    # -- the collection ----------------------------------------------------------------------------------

    def prepare(self, dims: int | None, model: str | None, metric: str = "cosine") -> None:
        store = self._db()
        metric = self.cfg.metric or metric
        if metric not in METRICS:
            raise InvalidInput(f"milvus: unknown metric {metric!r} (choose from {', '.join(METRICS)})")
        self.metric, self.model = metric, model
        self.readable = False
        if self.cfg.replace and self.fresh and store.exists():
            store.call("dropping the collection", store.client.drop_collection, store.collection)
        self.fresh = False  # a second prepare() of the same run must not drop it again
        if store.exists():
            self._adopt(dims, model, metric)
        elif dims:
            self._create(dims)

    def _adopt(self, dims: int | None, model: str | None, metric: str) -> None:
        """Check an existing collection against this run; refuse (one line) what would mix or corrupt it."""
        store = self._db()
        fields = store.fields()
        where = f"{store.where}: collection '{store.collection}'"
        hint = "set replace: true on the target to drop it first, or write to another collection"
        if VEXRUN not in fields or VECTOR not in fields:
            raise InvalidInput(
                f"{where} exists and was not written by vexrun (fields: {', '.join(fields)})",
                hint="write to another collection",
            )
        have_dims = int(fields[VECTOR].get("params", {}).get("dim", 0))
        props = store.properties()
        have_metric = props.get("vexrun.metric") or _metric_name(store.index_metric())
        have_model = props.get("vexrun.model") or None
        if dims and have_dims != dims:
            raise InvalidInput(f"{where} holds {have_dims}-d vectors, this run writes {dims}-d vectors", hint=hint)
        if have_metric and have_metric != metric:
            raise InvalidInput(f"{where} uses the {have_metric} metric, this run asks for {metric}", hint=hint)
        if model and have_model and model != have_model:
            raise InvalidInput(f"{where} holds vectors of model '{have_model}', this run writes '{model}'", hint=hint)
        self.dims = have_dims
        wanted = self._properties()
        if any(props.get(k) != v for k, v in wanted.items() if v):
            changes = {k: v for k, v in wanted.items() if v and props.get(k) != v}
            store.call(
                "setting collection properties",
                store.client.alter_collection_properties,
                store.collection,
                properties=changes,
            )

    def _properties(self) -> dict[str, str]:
        spec = getattr(self.ctx, "embedder_spec", None)
        return {
            "vexrun.schema": SCHEMA_VERSION,
            "vexrun.metric": self.metric or "cosine",
            "vexrun.model": self.model or "",
            "vexrun.embedder": dumps(spec) if spec else "",
        }

    def _create(self, dims: int) -> None:
        store = self._db()
        pymilvus = sdk()
        dt = pymilvus.DataType
        schema = pymilvus.MilvusClient.create_schema(
            auto_id=False, enable_dynamic_field=False, description="vexrun memory records"
        )
        schema.add_field(ID, dt.VARCHAR, max_length=MAX_ID_BYTES, is_primary=True)
        schema.add_field(VECTOR, dt.FLOAT_VECTOR, dim=dims)
        schema.add_field(TEXT, dt.VARCHAR, max_length=MAX_VARCHAR_BYTES)
        schema.add_field(NAMESPACE, dt.VARCHAR, max_length=MAX_VARCHAR_BYTES)
        schema.add_field(METADATA, dt.JSON)
        schema.add_field(VEXRUN, dt.JSON)
        store.call(
            "creating the collection",
            store.client.create_collection,
            store.collection,
            schema=schema,
            consistency_level="Strong",
            properties={k: v for k, v in self._properties().items() if v},
        )
        self.dims = dims

    # -- writing -----------------------------------------------------------------------------------------

    def write(self, batch: Batch) -> WriteResult:
        store = self._db()
        rejected: dict[str, str] = {}
        if batch.vectors is None:
            for rec in batch.records:
                rejected[rec.id] = "no vector; Milvus holds records with a vector only (add an embed stage)"
            return WriteResult(written=0, rejected=rejected)
        dims = int(batch.vectors.shape[1])
        if self.dims is None:
            if not store.exists():
                self._create(dims)
            else:
                self._adopt(dims, self.model, self.metric or self.cfg.metric or "cosine")
        mat = np.ascontiguousarray(batch.vectors, dtype=np.float32)
        mask = batch.has_vector
        finite = np.asarray(np.isfinite(mat).all(axis=1), dtype=bool)
        rows: list[dict[str, Any]] = []
        sizes: list[int] = []
        vec_bytes = row_bytes(dims)
        for i, rec in enumerate(batch.records):
            if mask is not None and not mask[i]:
                rejected[rec.id] = "no vector; Milvus holds records with a vector only (add an embed stage)"
                continue
            if dims != self.dims:
                rejected[rec.id] = f"vector has {dims} dims, the collection holds {self.dims}-d vectors"
                continue
            if not finite[i]:
                rejected[rec.id] = "vector holds NaN or infinity"
                continue
            row, reason, size = encode_row(rec, mat[i], self.cfg.namespace)
            if row is None:
                rejected[rec.id] = reason or "cannot be stored"
                continue
            rows.append(row)
            sizes.append(size + vec_bytes)
        if rows:
            self._upsert(rows, sizes)
        self.records += len(rows)
        return WriteResult(written=len(rows), rejected=rejected)

    def _upsert(self, rows: list[dict[str, Any]], sizes: list[int]) -> None:
        """Send the rows in parts of at most REQUEST_BYTES, ``concurrency`` at a time; return when all are in."""
        store = self._db()
        total = sum(sizes)
        target = REQUEST_BYTES
        if self.pool is not None and len(rows) >= 2 * MIN_PART_ROWS:
            parts = min(self.cfg.concurrency, len(rows) // MIN_PART_ROWS)
            target = min(target, -(-total // parts))
        cuts = [0]
        acc = 0
        for i, size in enumerate(sizes):
            if acc and acc + size > target:
                cuts.append(i)
                acc = 0
            acc += size
        cuts.append(len(rows))
        pieces = [rows[a:b] for a, b in zip(cuts, cuts[1:], strict=False) if b > a]

        writer = self.writer

        def send(piece: list[dict[str, Any]]) -> None:
            if writer is not None:
                writer.upsert(piece)
            else:
                store.call("upserting records", store.client.upsert, store.collection, piece)

        if self.pool is None or len(pieces) == 1:
            for piece in pieces:
                send(piece)
            return
        futures = [self.pool.submit(send, piece) for piece in pieces]
        errors = [f.exception() for f in futures]  # wait for every request before raising
        for exc in errors:
            if exc is not None:
                raise exc

    def state(self) -> dict[str, Any]:
        # Upserts are idempotent, so nothing is needed to resume; the count feeds the run report.
        return {"records": self.records}

    def finalize(self) -> None:
        store = self._db()
        if not store.exists():
            return
        store.call("flushing", store.client.flush, store.collection)
        if store.index_metric() is None and not self._build_index():
            return
        store.call("loading the collection", store.client.load_collection, store.collection)

    def _build_index(self) -> bool:
        """Create the vector index the recipe asks for; False when it asks for none."""
        store = self._db()
        if self.cfg.index_type.lower() == "none":
            return False
        metric = self.metric or self.cfg.metric or "cosine"
        params = store.client.prepare_index_params()
        params.add_index(
            field_name=VECTOR,
            index_type=self.cfg.index_type,
            metric_type=METRICS[metric],
            params={**INDEX_DEFAULTS.get(self.cfg.index_type.upper(), {}), **self.cfg.index_params},
        )
        store.call("building the vector index", store.client.create_index, store.collection, params)
        return True

    def check(self) -> str:
        self.store = store = open_store(self.cfg, self.ctx)
        if not store.exists():
            return f"{store.where}: reachable; collection '{store.collection}' will be created"
        fields = store.fields()
        dims = fields.get(VECTOR, {}).get("params", {}).get("dim")
        stats = store.call("reading statistics", store.client.get_collection_stats, store.collection)
        rows = int(stats.get("row_count", 0)) if isinstance(stats, dict) else 0
        return f"{store.where}: collection '{store.collection}' exists ({dims}-d vectors, about {rows:,} rows)"

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None
        if self.store is not None:
            self.store.close()
            self.store = None
        self.readable = False

    # -- reading back (see .readback) -------------------------------------------------------------------

    def _reading(self) -> Store:
        """The store, its collection loaded (Milvus reads only loaded collections). A run still writing has
        no vector index yet: the sink builds the one :meth:`finalize` would, so the collection can load."""
        if self.store is None:
            self.connect()
        store = self._db()
        if not self.readable:
            if not store.exists():
                raise InvalidInput(f"{store.where}: no collection '{store.collection}'")
            if not store.loaded():
                if store.index_metric() is None and not self._build_index():
                    # a run's verification reports the target as not verified (it is not an error of the run)
                    raise NotImplementedError(
                        f"{store.where}: collection '{store.collection}' has no vector index (index_type: none), "
                        "so Milvus cannot load it for reading"
                    )
                store.call("loading the collection", store.client.load_collection, store.collection)
            self.readable = True
        return store

    def fetch(self, ids: Sequence[str], namespace: str | None = None) -> Batch:
        return readback.fetch(self._reading(), ids, namespace)

    def delete(self, ids: Sequence[str], namespace: str | None = None) -> int:
        return readback.delete(self._reading(), ids, namespace)

    def namespaces(self) -> list[str]:
        return readback.namespaces(self._reading())

    def count(self, namespace: str | None = None) -> int:
        return readback.count(self._reading(), namespace)

    # -- search ------------------------------------------------------------------------------------------

    def connect(self) -> None:
        self.store = store = open_store(self.cfg, self.ctx)
        if not store.exists():
            raise InvalidInput(f"{store.where}: no collection '{store.collection}'")
        if not store.loaded():
            if store.index_metric() is None:
                raise InvalidInput(
                    f"{store.where}: collection '{store.collection}' has no vector index yet",
                    hint="finish the import that writes it (the index is built when the run completes)",
                )
            store.call("loading the collection", store.client.load_collection, store.collection)
        self.readable = True

    def search(self, vector: Any, text: str, k: int, namespace: str | None = None) -> list[Any]:
        if vector is None:
            raise UsageError("milvus: searching needs a query vector; give the recipe an embedder")
        store = self._db()
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        metric = store.index_metric() or "COSINE"
        found = store.call(
            "searching",
            store.client.search,
            store.collection,
            data=[query.tolist()],
            anns_field=VECTOR,
            limit=k,
            filter=f"{NAMESPACE} == {literal(namespace)}" if namespace is not None else "",
            output_fields=[ID, TEXT, NAMESPACE, METADATA, VEXRUN, VECTOR],
            search_params={"metric_type": metric},
            consistency_level="Strong",
        )
        qnorm = float(np.linalg.norm(query)) or 1.0
        hits: list[Hit] = []
        for item in found[0] if found else []:
            entity = dict(item.get("entity") or {})
            entity.setdefault(ID, item.get("id"))
            rec = decode_row(entity)
            meta = dict(rec.metadata) if rec.metadata else None
            rid = str(meta.pop(ORIGINAL_ID)) if meta and ORIGINAL_ID in meta else rec.id
            vec = np.asarray(entity.get(VECTOR, ()), dtype=np.float32)
            cosine = None
            if vec.shape == query.shape:
                cosine = float(vec @ query) / ((float(np.linalg.norm(vec)) or 1.0) * qnorm)
            hits.append(
                Hit(
                    rank=len(hits) + 1,
                    id=rid,
                    score=float(item.get("distance", 0.0)),
                    text=rec.text,
                    namespace=rec.namespace,
                    metadata=meta or None,
                    created_at=rec.created_at,
                    cosine=cosine,
                    vector_rank=len(hits) + 1,
                )
            )
        return hits


def _metric_name(milvus_metric: str | None) -> str | None:
    if milvus_metric is None:
        return None
    return {v: k for k, v in METRICS.items()}.get(milvus_metric.upper(), milvus_metric.lower())
