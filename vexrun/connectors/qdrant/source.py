"""Qdrant as a source: ``scroll`` in point-id order, with the next point id as the resumable cursor."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ...errors import InvalidInput
from ...vmig.batch import Batch
from ..base import Cursor, RunContext, Source
from .client import Store, points_to_batch
from .config import QdrantSourceConfig

__all__ = ["LOCAL_PAGE", "QdrantSource"]

#: Points per scroll call in local mode (each call sorts every id of the collection in Python).
LOCAL_PAGE = 8192


class QdrantSource(Source):
    name = "qdrant"

    def __init__(self, config: QdrantSourceConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.cfg = config
        self.store = Store(config, ctx)
        self.read = 0
        self.expected: int | None = None

    def open(self) -> None:
        self.store.open(create_dir=False)
        if not self.store.exists():
            self.store.close()
            raise InvalidInput(f"qdrant collection '{self.cfg.collection}' at {self.store.where} does not exist")

    def identity(self) -> str:
        ns = f"#{self.cfg.namespace}" if self.cfg.namespace is not None else ""
        return f"qdrant:{self.cfg.collection}{ns}"

    def estimate(self) -> int | None:
        self.expected = self.store.count(self.cfg.namespace)
        return self.expected

    def batches(self, cursor: Cursor | None, batch_size: int) -> Iterator[tuple[Batch, Cursor]]:
        """Batches of ``batch_size`` points in id order. The cursor holds the id of the next point to read
        (Qdrant's ``offset`` is inclusive), so a resumed read starts exactly there; ``{"done": true}`` after
        the last batch. Local mode sorts every id on each scroll call, so it scrolls pages of at least
        :data:`LOCAL_PAGE` points and cuts them into batches."""
        if cursor and cursor.get("done"):
            return
        store = self.store
        offset: Any = cursor.get("offset") if cursor else None
        total = int(cursor.get("read", 0)) if cursor else 0
        flt = store.namespace_filter(self.cfg.namespace)
        page = max(batch_size, LOCAL_PAGE) if store.local else batch_size
        while True:
            points, next_offset = store.call(
                "scrolling points",
                store.api.scroll,
                store.name,
                scroll_filter=flt,
                limit=page,
                offset=offset,
                with_payload=True,
                with_vectors=[self.cfg.vector_name] if self.cfg.vector_name else True,
            )
            if not points:
                break
            for start in range(0, len(points), batch_size):
                part = points[start : start + batch_size]
                self.read += len(part)
                total += len(part)
                end = start + batch_size
                after = points[end].id if end < len(points) else next_offset
                if after is None:
                    yield points_to_batch(part, self.cfg), {"done": True, "read": total}
                else:
                    yield points_to_batch(part, self.cfg), {"offset": after, "read": total}
            if next_offset is None:
                break
            offset = next_offset
        holds = store.count(self.cfg.namespace)
        if holds != total:
            raise InvalidInput(
                f"qdrant collection '{self.cfg.collection}' at {store.where} holds {holds:,} points"
                + (f" in namespace '{self.cfg.namespace}'" if self.cfg.namespace is not None else "")
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
            return f"{self.identity()} at {self.store.where}: readable, {self.estimate():,} points"
        finally:
            self.store.close()

    def close(self) -> None:
        self.store.close()
