"""Weaviate as a source: the requests of the client's cursor iterator (``collection.iterator(after=...)``:
objects in UUID order, a page of ``page`` objects per gRPC request; the replies read by :mod:`.wire`), tenant
after tenant in name order. The cursor is the tenant and the UUID of the last object read, so a resumed export
starts right after it; at the end the count read is checked against the collection's own count.

Without tenants, reading one namespace walks the whole collection and keeps that namespace's objects (Weaviate's
cursor cannot be combined with a filter).

For ``run.executor: ray`` a multi-tenant collection is cut into runs of consecutive tenants of about equal numbers of
objects (``tenants A … B``); a batch never spans two tenants, so the partitions' batches are the serial read's.
Each partition's cursor carries its tenants (``part``) and checks their count at its end.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ...errors import InvalidInput
from ...vmig.batch import Batch
from ..base import Cursor, RunContext, Source, group_ranges
from . import readback, wire
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
        part: list[str] | None = cursor.get("part") if cursor else None
        tenants = readback.shards(store, cfg, cfg.namespace)
        if part is not None:
            tenants = [t for t in tenants if part[0] <= t <= part[1]]
        keep_ns = cfg.namespace if not mt else None
        for tenant in tenants:
            if resume_tenant is not None and tenant < resume_tenant:
                continue
            start = after if tenant == resume_tenant else None
            coll = store.collection(tenant or None)
            buf: list[wire.Item] = []
            last: str | None = start
            for item in _walk(store, coll, start, min(cfg.page, 10_000), cfg.vector_name):
                last = item[0]
                if keep_ns is not None and item[1].get(cfg.namespace_key) != keep_ns:
                    continue
                buf.append(item)
                if len(buf) >= batch_size:
                    total += len(buf)
                    self.read += len(buf)
                    yield readback.batch_of(buf, cfg, tenant, mt), _cursor(tenant, last, total, part)
                    buf = []
            if buf:
                total += len(buf)
                self.read += len(buf)
                yield readback.batch_of(buf, cfg, tenant, mt), _cursor(tenant, last, total, part)
        if part is not None:
            holds = sum(readback.total(store, t) for t in tenants)
            where = f" in tenants {part[0]!r} … {part[1]!r}"
        else:
            holds = readback.count(store, cfg, cfg.namespace)
            where = f" in namespace '{cfg.namespace}'" if cfg.namespace is not None else ""
        if holds != total:
            raise InvalidInput(
                f"weaviate collection '{store.name}' at {store.where} holds {holds:,} objects{where} but {total:,} "
                "were read",
                hint="the collection changed while it was read; run the export again with --fresh",
            )

    def partitions(self, n: int, batch_size: int) -> list[tuple[str, Cursor | None]]:
        """Runs of consecutive tenants holding about equal numbers of objects (one partition without tenants,
        for one namespace, or with fewer than two tenants)."""
        store, cfg = self.store, self.cfg
        if n <= 1 or cfg.namespace is not None or not store.read_shape().multi_tenant:
            return [("all", None)]
        tenants = readback.shards(store, cfg, None)
        runs = group_ranges([readback.total(store, t) for t in tenants], n)
        if len(runs) < 2:
            return [("all", None)]
        out: list[tuple[str, Cursor | None]] = []
        for a, b in runs:
            first, last = tenants[a], tenants[b - 1]
            name = f"tenant {first}" if a + 1 == b else f"tenants {first} … {last}"
            out.append((name, {"tenant": first, "after": None, "read": 0, "part": [first, last]}))
        return out

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


def _cursor(tenant: str, after: str | None, read: int, part: list[str] | None) -> Cursor:
    cur: Cursor = {"tenant": tenant, "after": after, "read": read}
    if part is not None:
        cur["part"] = part
    return cur


def _walk(store: Store, coll: Any, after: str | None, page: int, vector_name: str) -> Iterator[wire.Item]:
    """The objects after ``after`` in UUID order, a page per request, as the client's iterator pages them
    (:func:`wire.fetch`); a page holding property kinds :func:`wire.page` does not read is fetched again through
    the client, and every page is when the client's internals are not what :mod:`.wire` expects. Failures are one
    clear line each."""
    raw = wire.readable(coll)
    while True:
        try:
            got = wire.page(wire.fetch(coll, page, after), vector_name) if raw else None
            if got is None:
                res = coll.query.fetch_objects(limit=page, after=after, include_vector=True)
                got = wire.items(list(res.objects), vector_name)
        except Exception as exc:  # noqa: BLE001 - every SDK failure becomes one line
            store.fail(exc, "reading objects")
        if not got:
            return
        yield from got
        after = got[-1][0]
