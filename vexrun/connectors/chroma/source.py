"""Chroma as a source: ``get(limit, offset)`` pages in the collection's stable (insertion) order; the cursor
is the number of records already read and the id of the last one. Each page re-reads the record before it to
check the offsets did not shift, and at the end the count read is checked against the collection's own
count: a paging that lost records fails loudly instead of exporting part of the collection."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ...errors import InvalidInput
from ...vmig.batch import Batch
from ..base import Cursor, RunContext, Source, page_ranges
from .client import Store, rows_to_batch
from .config import ChromaSourceConfig

__all__ = ["READ_PAGE", "ChromaSource"]

_INCLUDE = ["embeddings", "documents", "metadatas"]
#: Records per ``get``. From a server vexrun decodes the replies itself (no Python float per value), so pages
#: cost little memory: 100k × 384-d export (2 pages in flight) in 8.9 s / 178 MB with pages of 500, 7.7-8.2 s /
#: 188-198 MB with 1,000, 7.8 s / 242-258 MB with 2,000. (Through the client's decoding, at 30k × 384-d: pages of
#: 1,000 took 6.9 s / 310 MB, of 5,000 8.9 s / 596 MB.) A bigger run.batch_size gives batches of this size.
READ_PAGE = 1000
#: ``get`` requests in flight when reading from a server (Chroma serves them in parallel: 40k records by raw
#: requests of 1,000 took 2.20 s one at a time, 1.46 s two at a time)
IN_FLIGHT = 2


class ChromaSource(Source):
    name = "chroma"
    prefetch = True  # an HTTP client: the next page is read while the sinks write

    def __init__(self, config: ChromaSourceConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.cfg = config
        self.store = Store(config, ctx)
        self.read = 0
        self.expected: int | None = None

    def open(self) -> None:
        self.store.open(create_dir=False)
        if self.store.get_collection() is None:
            self.store.close()
            raise InvalidInput(f"chroma collection '{self.cfg.collection}' at {self.store.where} does not exist")

    def identity(self) -> str:
        ns = f"#{self.cfg.namespace}" if self.cfg.namespace is not None else ""
        return f"chroma:{self.cfg.collection}{ns}"

    def estimate(self) -> int | None:
        if self.cfg.namespace is not None:
            return None  # Chroma counts a whole collection only
        self.expected = int(self.store.call("counting", self.store.coll.count))
        return self.expected

    def batches(self, cursor: Cursor | None, batch_size: int) -> Iterator[tuple[Batch, Cursor]]:
        """Pages of ``batch_size`` by offset. Each page after the first also fetches the record before it and
        checks that it is still the last one read: records deleted behind the cursor would otherwise shift
        the offsets and silently skip records that were never read. From a server, the next pages are
        requested while this one is read (:data:`IN_FLIGHT` at a time: Chroma serves them in parallel) and their
        replies decoded by vexrun (:meth:`~.client.Store.raw_getter`)."""
        store = self.store
        offset = int(cursor.get("offset", 0)) if cursor else 0
        last: str | None = cursor.get("last") if cursor else None
        until: int | None = cursor.get("until") if cursor else None  # a partition's end (see partitions)
        where = store.where_namespace(self.cfg.namespace)
        page = max(1, min(batch_size, READ_PAGE))
        getter = store.raw_getter()
        get = getter if getter is not None else store.coll.get

        def fetch(at: int, limit: int, overlap: int) -> dict[str, Any]:
            got: dict[str, Any] = store.call(
                "reading records", get, limit=limit + overlap, offset=at - overlap, where=where, include=_INCLUDE
            )
            return got

        pool = ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="vexrun-chroma") if getter is not None else None
        ahead: deque[tuple[int, int, int, Future[dict[str, Any]] | None]] = deque()
        asked = offset  # where the next page to ask for starts

        def ask() -> bool:
            """Queue the next page (False past a partition's end)."""
            nonlocal asked
            limit = page if until is None else min(page, until - asked)
            if limit <= 0:
                return False
            overlap = 1 if asked > 0 and (asked > offset or last is not None) else 0
            future = pool.submit(fetch, asked, limit, overlap) if pool is not None else None
            ahead.append((asked, limit, overlap, future))
            asked += limit
            return True

        try:
            ask()
            while ahead:
                at, limit, overlap, future = ahead.popleft()
                while pool is not None and len(ahead) < IN_FLIGHT - 1 and ask():
                    pass
                got = future.result() if future is not None else fetch(at, limit, overlap)
                if overlap:
                    if not got["ids"] or got["ids"][0] != last:
                        raise InvalidInput(
                            f"chroma collection '{self.cfg.collection}' at {store.where} changed while it was read "
                            f"(the record at position {offset:,} is no longer '{last}')",
                            hint="run the export again with --fresh when nothing writes to the collection",
                        )
                    got = {k: (v[1:] if isinstance(v, list) or hasattr(v, "shape") else v) for k, v in got.items()}
                n = len(got["ids"])
                if n:
                    offset += n
                    last = str(got["ids"][-1])
                    self.read += n
                    at_cursor: Cursor = {"offset": offset, "last": last}
                    yield rows_to_batch(got, self.cfg), at_cursor if until is None else {**at_cursor, "until": until}
                if n < limit:
                    break
                if pool is None:
                    ask()
        finally:
            if pool is not None:
                for *_, pending in ahead:
                    if pending is not None:
                        pending.cancel()
                pool.shutdown(wait=True)
        if until is None:
            self._verify(offset)
        elif offset < until:
            raise InvalidInput(
                f"chroma collection '{self.cfg.collection}' at {store.where} ends at {offset:,} records, before the "
                f"partition's end at {until:,}",
                hint="the collection changed while it was read; run the export again with --fresh",
            )

    def partitions(self, n: int, batch_size: int) -> list[tuple[str, Cursor | None]]:
        """Ranges of positions in the collection's order, named ``records A-B``, each a whole number of the
        serial read's pages (so the batches are the same); the last range is checked against the collection's
        count as a serial read is. One partition for a namespace: Chroma counts whole collections only."""
        if n <= 1 or self.cfg.namespace is not None:
            return [("all", None)]
        total = int(self.store.call("counting", self.store.coll.count))
        ranges = page_ranges(total, max(1, min(batch_size, READ_PAGE)), n)
        if len(ranges) < 2:
            return [("all", None)]
        return [(f"records {a}-{b}", {"offset": a} if b == total else {"offset": a, "until": b}) for a, b in ranges]

    def _verify(self, total_read: int) -> None:
        """Compare what was read (over all resumed parts) with what the collection holds."""
        if self.cfg.namespace is not None:
            return
        holds = int(self.store.call("counting", self.store.coll.count))
        if holds != total_read:
            raise InvalidInput(
                f"chroma collection '{self.cfg.collection}' at {self.store.where} holds {holds:,} records but "
                f"{total_read:,} were read",
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
            n = self.estimate()
            what = f"{n:,} records" if n is not None else f"namespace '{self.cfg.namespace}'"
            return f"{self.identity()} at {self.store.where}: readable, {what}"
        finally:
            self.store.close()

    def close(self) -> None:
        self.store.close()
