"""Weaviate as a source: the client's cursor iterator (``collection.iterator(after=...)``: objects in UUID order,
a page of ``page`` objects per gRPC request), tenant after tenant in name order. The cursor is the tenant and the
UUID of the last object read, so a resumed export starts right after it; at the end the count read is checked
against the collection's own count.

Without tenants, reading one namespace walks the whole collection and keeps that namespace's objects (Weaviate's
cursor cannot be combined with a filter).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ...errors import InvalidInput
from ...vmig.batch import Batch
from ..base import Cursor, RunContext, Source
from . import readback
from .client import Store
from .config import WeaviateSourceConfig

__all__ = ["WeaviateSource"]


class WeaviateSource(Source):
    name = "weaviate"
    prefetch = True  # a gRPC channel: the next page is read while the sinks write

    def __init__(self, config: WeaviateSourceConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.cfg = config
        self.store = Store(config, ctx)
        self.read = 0
        self.expected: int | None = None

    def open(self) -> None:
        self.store.open()
        if not self.store.exists():
            self.store.close()
            raise InvalidInput(f"weaviate collection '{self.store.name}' at {self.store.where} does not exist")
        self.store.read_shape()

    def identity(self) -> str:
        ns = f"#{self.cfg.namespace}" if self.cfg.namespace is not None else ""
        return f"weaviate:{self.store.name}{ns}"

    def estimate(self) -> int | None:
        self.expected = readback.count(self.store, self.cfg, self.cfg.namespace)
        return self.expected

    def batches(self, cursor: Cursor | None, batch_size: int) -> Iterator[tuple[Batch, Cursor]]:
        """Batches of ``batch_size`` objects. The cursor holds the tenant and the UUID of the last object read in
        it (``after`` is exclusive), and how many were read in all."""
        store, cfg = self.store, self.cfg
        shape = store.read_shape()
        mt = shape.multi_tenant
        resume_tenant: str | None = cursor.get("tenant") if cursor else None
        after: str | None = cursor.get("after") if cursor else None
        total = int(cursor.get("read", 0)) if cursor else 0
        tenants = readback.shards(store, cfg, cfg.namespace)
        keep_ns = cfg.namespace if not mt else None
        for tenant in tenants:
            if resume_tenant is not None and tenant < resume_tenant:
                continue
            start = after if tenant == resume_tenant else None
            coll = store.collection(tenant or None)
            it = store.call(
                "reading objects", coll.iterator, include_vector=True, after=start, cache_size=min(cfg.page, 10_000)
            )
            buf: list[Any] = []
            last: str | None = start
            for obj in _walk(store, it):
                last = str(obj.uuid)
                if keep_ns is not None and (obj.properties or {}).get(cfg.namespace_key) != keep_ns:
                    continue
                buf.append(obj)
                if len(buf) >= batch_size:
                    total += len(buf)
                    self.read += len(buf)
                    yield readback.to_batch(buf, cfg, tenant, mt), {"tenant": tenant, "after": last, "read": total}
                    buf = []
            if buf:
                total += len(buf)
                self.read += len(buf)
                yield readback.to_batch(buf, cfg, tenant, mt), {"tenant": tenant, "after": last, "read": total}
        holds = readback.count(store, cfg, cfg.namespace)
        if holds != total:
            raise InvalidInput(
                f"weaviate collection '{store.name}' at {store.where} holds {holds:,} objects"
                + (f" in namespace '{cfg.namespace}'" if cfg.namespace is not None else "")
                + f" but {total:,} were read",
                hint="the collection changed while it was read; run the export again with --fresh",
            )

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {"read": self.read}
        if self.expected is not None:
            out["expected"] = self.expected
        return out

    def check(self) -> str:
        try:
            self.open()
            return f"{self.identity()} at {self.store.where}: readable, {self.estimate():,} objects"
        finally:
            self.store.close()

    def close(self) -> None:
        self.store.close()


def _walk(store: Store, it: Any) -> Iterator[Any]:
    """The iterator's objects, its failures as one clear line each."""
    walker = iter(it)
    while True:
        try:
            obj = next(walker)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - every SDK failure becomes one line
            store.fail(exc, "reading objects")
        yield obj
