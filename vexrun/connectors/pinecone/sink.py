"""Pinecone as a sink: idempotent upserts, each record in the Pinecone namespace of its vexrun namespace.

A write is cut into requests by their real JSON size (at most 1,000 records and ``max_request_bytes``), and
the requests go out ``parallel`` at a time, each after a token of its namespace's bucket
(``upserts_per_second``: Pinecone allows 100 per second per namespace), so a run keeps the rate limit busy
without being refused; what is refused anyway (429) or fails on the server's side is retried with backoff
(:mod:`.pacing`). ``write`` returns when every request was acknowledged. A request Pinecone refuses as invalid
(400, 413) is split in halves until the records it refuses are found; those are rejected with its reason, the
others written. Records Pinecone cannot hold are rejected before sending: no vector, a vector of zeros (Pinecone
refuses them), non-finite values, more than 40 KB of metadata and text.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from ...errors import InvalidInput
from ...vmig.batch import Batch
from ...vmig.model import Record
from ..base import Hit, RunContext, Sink, WriteResult
from . import readback
from .client import Store, display_url, retry_after_of, sdk_major, status_of
from .codec import WireRecord, chunks, item_size, record_metadata, store_key, wire_values
from .config import PineconeSinkConfig
from .pacing import Pacer, retrying

__all__ = ["PineconeSink"]

MAX_RECORDS = 1000
#: statuses of a request Pinecone refuses for what it carries (split it to find the records at fault)
_REFUSED = frozenset({400, 413, 422})


class PineconeSink(Sink):
    name = "pinecone"
    concurrent_writers = True
    io_bound = True

    def __init__(self, config: PineconeSinkConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.cfg = config
        self.store = Store(config, ctx)
        self.pacer = Pacer(config.upserts_per_second)
        self.records = 0
        self.requests = 0
        self.dims: int | None = None
        self.metric = "cosine"
        self.pool: ThreadPoolExecutor | None = None
        #: records encoded at a time (about one request's worth, learned from the first ones)
        self.slice = 256
        #: values go to the SDK as pre-encoded JSON (see :class:`~.codec.JSONRow`): checked with pinecone 10
        self.fragments = sdk_major() == 10

    def identity(self) -> str:
        cfg = self.cfg
        name = cfg.index or urlsplit(cfg.host if cfg.host and "://" in cfg.host else f"https://{cfg.host}").hostname
        return f"pinecone:{name}" + (f" at {display_url(cfg.host)}" if cfg.host else "")

    # -- lifecycle ---------------------------------------------------------------------------------------
    def open(self, state: dict[str, Any] | None) -> None:
        self.records = int((state or {}).get("records", 0))
        try:
            if self.store.locate(must_exist=False):
                self.dims, self.metric = self.store.dims, self.store.metric or self.metric
        except BaseException:
            self.store.close()
            raise

    def prepare(self, dims: int | None, model: str | None, metric: str = "cosine") -> None:
        store, cfg = self.store, self.cfg
        create = cfg.create
        wanted = (create.metric if create is not None else None) or metric
        if wanted not in ("cosine", "dot", "l2"):
            raise InvalidInput(f"pinecone has no metric {wanted!r} (it has cosine, dot, l2)")
        if store.host is None and not store.describe():
            if create is None or cfg.index is None:
                raise InvalidInput(
                    f"pinecone {store.where}: the index does not exist",
                    hint="add `create: {cloud: aws, region: us-east-1}` to the target to create it",
                )
            size = create.dimension or dims
            if create.dimension is not None and dims is not None and create.dimension != dims:
                raise InvalidInput(
                    f"pinecone {store.where}: create.dimension is {create.dimension}, this run writes {dims}-d vectors"
                )
            if size is None:
                raise InvalidInput(f"pinecone {store.where} needs vectors: this run has none (add an embed step)")
            store.create(size, wanted, create.cloud, create.region)
            store.locate(must_exist=True)
        elif store.dims is None:
            store.locate(must_exist=True)
        if dims is not None and store.dims is not None and store.dims != dims:
            raise InvalidInput(
                f"pinecone {store.where} holds {store.dims}-d vectors, this run writes {dims}-d vectors",
                hint="choose another index, or embed with a model of that size",
            )
        if create is not None and create.metric and store.metric and store.metric != create.metric:
            raise InvalidInput(f"pinecone {store.where} ranks by {store.metric}, the target asks for {create.metric}")
        self.dims = store.dims or dims
        self.metric = store.metric or wanted

    # -- writing ------------------------------------------------------------------------------------------
    def write(self, batch: Batch) -> WriteResult:
        cfg = self.cfg
        records = batch.records
        mat = None if batch.vectors is None else np.ascontiguousarray(batch.vectors, dtype=np.float32)
        if mat is None:
            return WriteResult(0, {rec.id: "no vector (pinecone stores records with vectors)" for rec in records})
        if self.dims is not None and mat.shape[1] != self.dims:
            reason = f"vector has {mat.shape[1]} dims, the index holds {self.dims}-d vectors"
            return WriteResult(0, {rec.id: reason for rec in records})
        rejected: dict[str, str] = {}
        has = np.ones(len(records), bool) if batch.has_vector is None else np.asarray(batch.has_vector, bool)
        ok = has & np.asarray(np.isfinite(mat).all(axis=1) & mat.any(axis=1), dtype=bool)
        good = np.flatnonzero(ok)
        for i in np.flatnonzero(~ok).tolist():
            if not has[i]:
                rejected[records[i].id] = "no vector (pinecone stores records with vectors)"
            elif not np.isfinite(mat[i]).all():
                rejected[records[i].id] = "vector has non-finite values"
            else:
                rejected[records[i].id] = "vector of zeros (Pinecone refuses dense vectors without a non-zero value)"
        groups: dict[str, dict[str, int]] = {}
        duplicates = 0
        for i in good.tolist():
            rec = records[i]
            key = store_key(rec.id)
            group = groups.setdefault(rec.namespace if rec.namespace is not None else (cfg.namespace or ""), {})
            if group.pop(key, None) is not None:
                duplicates += 1  # the same id twice: the last one wins, as a later upsert would
            group[key] = i
        futures: list[Future[list[tuple[list[int], str]]]] = []
        refused: list[tuple[list[int], str]] = []
        todo = {ns: list(group.items()) for ns, group in groups.items()}
        done = dict.fromkeys(todo, 0)
        while done:  # slices of each namespace in turn: a slice's requests go out while the next is encoded
            for ns in list(done):
                rows = todo[ns][done[ns] : done[ns] + self.slice]
                done[ns] += len(rows)
                if done[ns] >= len(todo[ns]):
                    del done[ns]
                for part in chunks(self._encode(rows, mat, records, rejected), MAX_RECORDS, cfg.max_request_bytes, ns):
                    if self.cfg.parallel == 1:
                        refused += self._send(ns, part)
                    else:
                        futures.append(self._pool().submit(self._send, ns, part))
        for future in futures:
            refused += future.result()
        for rows_, reason in refused:
            for row in rows_:
                rejected[records[row].id] = reason
        written = len(records) - len(rejected)
        self.records += written
        return WriteResult(written=written, rejected=rejected, duplicates=duplicates)

    def _encode(
        self, rows: list[tuple[str, int]], mat: np.ndarray, records: list[Record], rejected: dict[str, str]
    ) -> list[WireRecord]:
        """The records of these (key, row) pairs as they go into a request; those Pinecone cannot hold go to
        ``rejected``. Learns the size of a record, so the next slice fills about one request."""
        if not rows:
            return []
        values, sizes = wire_values(mat[[i for _, i in rows]], fragments=self.fragments)
        out: list[WireRecord] = []
        for (key, i), vals, row_bytes in zip(rows, values, sizes, strict=True):
            rec = records[i]
            got = record_metadata(rec, key, self.cfg.text_key)
            if isinstance(got, str):
                rejected[rec.id] = got
                continue
            meta, meta_bytes = got
            item: dict[str, Any] = {"id": key, "values": vals}
            if meta is not None:
                item["metadata"] = meta
            out.append(WireRecord(item, item_size(key, row_bytes, meta_bytes), i))
        if out:
            per_record = sum(w.size for w in out) / len(out)
            self.slice = max(8, min(MAX_RECORDS, int(0.95 * self.cfg.max_request_bytes / per_record)))
        return out

    def _pool(self) -> ThreadPoolExecutor:
        if self.pool is None:
            self.pool = ThreadPoolExecutor(max_workers=self.cfg.parallel, thread_name_prefix="vexrun-pinecone")
        return self.pool

    def _send(self, ns: str, part: list[WireRecord]) -> list[tuple[list[int], str]]:
        """Upsert one request's records; returns (rows, reason) of the records Pinecone refused."""
        store = self.store
        try:
            retrying(
                lambda: store.index.upsert(vectors=[w.item for w in part], namespace=ns),
                retries=self.cfg.retries,
                status_of=status_of,
                retry_after_of=retry_after_of,
                on_refused=lambda hint: self.pacer.refused(ns, hint),
                before=lambda: self.pacer.acquire(ns),
            )
        except Exception as exc:  # noqa: BLE001 - refused records are found, the rest is one clear line
            status = status_of(exc)
            client_side = status is None and type(exc).__name__ in ("PineconeValueError", "PineconeTypeError")
            if status not in _REFUSED and not client_side:
                store.fail(exc, f"upserting records into namespace '{ns}'")
            if len(part) == 1:
                message = " ".join(str(getattr(exc, "message", None) or exc).split())[:300]
                return [([part[0].row], f"pinecone refused the record: {message}")]
            half = len(part) // 2
            return self._send(ns, part[:half]) + self._send(ns, part[half:])
        self.requests += 1
        return []

    def state(self) -> dict[str, Any]:
        return {"records": self.records}

    def check(self) -> str:
        store = self.store
        try:
            if not store.locate(must_exist=False):
                what = "a run creates it" if self.cfg.create is not None else "add `create:` to the target to create it"
                return f"{self.identity()}: reachable; the index does not exist yet ({what})"
            n = sum(store.counts().values())
            return f"{self.identity()}: reachable, {n:,} records, {store.dims}-d {store.metric or ''}".rstrip()
        finally:
            store.close()

    def finalize(self) -> None:
        if self.pacer.throttled:
            self.ctx.info(
                f"{self.identity()}: {self.requests:,} upsert requests, {self.pacer.throttled:,} refused for the rate "
                "limit (429) and retried"
            )

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None
        self.store.close()

    # -- reading back and search (see .readback) --------------------------------------------------------------
    def connect(self) -> None:
        try:
            self.store.locate(must_exist=True)
        except BaseException:
            self.store.close()
            raise
        self.dims, self.metric = self.store.dims, self.store.metric or self.metric

    def _reading(self) -> None:
        if self.store.host is None or self.store.dims is None:
            self.connect()

    def fetch(self, ids: Sequence[str], namespace: str | None = None) -> Batch:
        self._reading()
        return readback.fetch(self.store, self.cfg, ids, namespace)

    def delete(self, ids: Sequence[str], namespace: str | None = None) -> int:
        self._reading()
        return readback.delete(self.store, ids, namespace)

    def namespaces(self) -> list[str]:
        self._reading()
        return readback.namespaces(self.store)

    def count(self, namespace: str | None = None) -> int:
        self._reading()
        return readback.count(self.store, namespace)

    def search(self, vector: Any, text: str, k: int, namespace: str | None = None) -> list[Hit]:
        self._reading()
        return readback.search(self.store, self.cfg, vector, k, namespace)
