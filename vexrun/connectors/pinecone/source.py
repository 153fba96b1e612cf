"""Pinecone as a source: namespace by namespace (sorted; '' is the default namespace, read as records without
one), ids listed in pages (100 at most, in id order) and fetched 1,000 at a time.

The cursor is the namespace being read and the pagination token of the page after the last batch, so a
resumed export continues at that page; a namespace that disappeared meanwhile is skipped. List and fetch
requests are paced under Pinecone's per-index rates (200 and 100 per second). At the end the count read is
compared with ``describe_index_stats``; Pinecone's counts lag behind writes, so a difference is reported, not
an error.

For ``run.executor: ray`` the index is cut into runs of consecutive namespaces holding about equal numbers of
records (``namespaces A … B``); a batch never spans two namespaces, so the partitions' batches are the serial
read's. The list and fetch rates are per index: each of the ``k`` partitions that run at once (the run's workers,
``RunContext.parallel``) paces itself at a ``k``-th of them (``share`` in its cursor), so together they stay under
the index's limits."""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from ...prefetch import prefetch
from ...vmig.batch import Batch
from ..base import Cursor, RunContext, Source, group_ranges
from .client import Store
from .codec import to_batch
from .config import PineconeSourceConfig
from .pacing import Pacer
from .readback import Replies, decode_replies, fetch_replies

__all__ = ["LIST_PAGE", "PineconeSource"]

#: Pinecone's largest list page
LIST_PAGE = 100


class PineconeSource(Source):
    name = "pinecone"
    prefetch = True  # an HTTP client: the next batch is listed and fetched while the sinks write

    def __init__(self, config: PineconeSourceConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.cfg = config
        self.store = Store(config, ctx)
        self.lists = Pacer(config.lists_per_second)
        self.fetches = Pacer(config.fetches_per_second)
        self.read = 0
        self.expected: int | None = None

    def open(self) -> None:
        try:
            self.store.locate(must_exist=True)
        except BaseException:
            self.store.close()
            raise

    def identity(self) -> str:
        cfg = self.cfg
        name = cfg.index or urlsplit(cfg.host if cfg.host and "://" in cfg.host else f"https://{cfg.host}").hostname
        return f"pinecone:{name}" + (f"#{cfg.namespace}" if cfg.namespace is not None else "")

    def _spaces(self) -> list[str]:
        counts = self.store.counts()
        self.expected = counts.get(self.cfg.namespace, 0) if self.cfg.namespace is not None else sum(counts.values())
        return [self.cfg.namespace] if self.cfg.namespace is not None else sorted(counts)

    def estimate(self) -> int | None:
        self._spaces()
        return self.expected

    def _page(self, ns: str, limit: int, token: str | None) -> tuple[list[str], str | None]:
        store = self.store
        page = store.call(
            "listing record ids",
            store.index.list_paginated,
            namespace=ns,
            limit=limit,
            pagination_token=token,
            retries=self.cfg.retries,
            before=lambda: self.lists.acquire("list"),
            on_refused=lambda hint: self.lists.refused("list", hint),
        )
        ids = [item.id for item in page.vectors if item.id is not None]
        nxt = page.pagination.next if page.pagination is not None else None
        return ids, nxt or None

    def batches(self, cursor: Cursor | None, batch_size: int) -> Iterator[tuple[Batch, Cursor]]:
        """Batches of up to ``batch_size`` records; the last page of each batch is listed short so a batch ends
        on a page boundary, where its cursor (``{"ns", "token", "read"}``) resumes. The ids of the next batches
        are listed in a thread (two batches ahead), and the next batch is fetched in another while this one is
        decoded."""
        if cursor and cursor.get("done"):
            return
        part: list[str] | None = cursor.get("part") if cursor else None
        total = int(cursor.get("read", 0)) if cursor else 0
        listed = prefetch(self._listed(cursor, batch_size), depth=2)
        for ns, ids, after, replies in prefetch(self._fetched(listed), depth=1):
            found = decode_replies(self.store, replies, ns)
            rows = [found[key] for key in ids if key in found]
            total += len(rows)
            self.read += len(rows)
            after["read"] = total
            if rows:
                yield to_batch(rows, self.cfg.text_key), after
        self._verify(total, part)

    def _fetched(
        self, listed: Iterator[tuple[str, list[str], Cursor]]
    ) -> Iterator[tuple[str, list[str], Cursor, Replies]]:
        try:
            for ns, ids, after in listed:
                yield ns, ids, after, (fetch_replies(self.store, ids, ns, self.fetches) if ids else {})
        finally:
            close = getattr(listed, "close", None)
            if close is not None:
                close()

    def _listed(self, cursor: Cursor | None, batch_size: int) -> Iterator[tuple[str, list[str], Cursor]]:
        """(namespace, ids, the cursor after them but its ``read``) of each batch, page by page."""
        spaces = self._spaces()
        part: list[str] | None = cursor.get("part") if cursor else None
        if part is not None:
            spaces = [ns for ns in spaces if part[0] <= ns <= part[1]]
            share = max(1, int(cursor.get("share", 1)))  # type: ignore[union-attr]
            self.lists.set_rate(self.cfg.lists_per_second / share)
            self.fetches.set_rate(self.cfg.fetches_per_second / share)
        at_ns: str | None = cursor.get("ns") if cursor else None
        token: str | None = cursor.get("token") if cursor else None
        start = bisect.bisect_left(spaces, at_ns) if at_ns is not None else 0
        if at_ns is not None and (start >= len(spaces) or spaces[start] != at_ns):
            token = None  # that namespace is gone: go on with the next one
        for pos in range(start, len(spaces)):
            ns = spaces[pos]
            while True:
                ids: list[str] = []
                while len(ids) < batch_size:
                    got, token = self._page(ns, min(LIST_PAGE, batch_size - len(ids)), token)
                    ids += got
                    if not got:
                        token = None  # an empty page ends the namespace, whatever it says
                    if token is None:
                        break
                if token is not None:
                    after: Cursor = {"ns": ns, "token": token}
                elif pos + 1 < len(spaces):
                    after = {"ns": spaces[pos + 1], "token": None}
                else:
                    after = {"done": True}
                if part is not None:
                    after.update(part=part, share=cursor.get("share", 1))  # type: ignore[union-attr]
                yield ns, ids, after
                if token is None:
                    break

    def _verify(self, total: int, part: list[str] | None = None) -> None:
        where = ""
        if part is None:
            self._spaces()
            expected = self.expected
        else:  # one request for the index's counts, as for the whole index
            expected = sum(n for ns, n in self.store.counts().items() if part[0] <= ns <= part[1])
            where = f" in namespaces {part[0]!r} … {part[1]!r}"
        if expected is not None and expected != total:
            self.ctx.info(
                f"warning: {self.identity()} counts {expected:,} records{where} but {total:,} were read (Pinecone's "
                "counts lag behind recent writes; if nothing wrote to the index, run the export again with --fresh)"
            )

    def partitions(self, n: int, batch_size: int) -> list[tuple[str, Cursor | None]]:
        """Runs of consecutive namespaces holding about equal numbers of records (one partition for one
        namespace or an index with fewer than two), each paced at its share of the index's rates."""
        if n <= 1 or self.cfg.namespace is not None:
            return [("all", None)]
        counts = self.store.counts()
        spaces = sorted(counts)
        runs = group_ranges([counts[ns] for ns in spaces], n)
        if len(runs) < 2:
            return [("all", None)]
        share = min(max(1, self.ctx.parallel), len(runs))  # the partitions that read at once
        out: list[tuple[str, Cursor | None]] = []
        for a, b in runs:
            first, last = spaces[a], spaces[b - 1]
            name = f"namespace {first!r}" if a + 1 == b else f"namespaces {first!r} … {last!r}"
            out.append((name, {"ns": first, "token": None, "read": 0, "part": [first, last], "share": share}))
        return out

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {"read": self.read}
        if self.expected is not None:
            out["expected"] = self.expected
        if self.lists.throttled or self.fetches.throttled:
            out["throttled"] = self.lists.throttled + self.fetches.throttled
        return out

    def check(self) -> str:
        try:
            self.open()
            return f"{self.identity()} ({self.store.where}): readable, {self.estimate():,} records"
        finally:
            self.store.close()

    def close(self) -> None:
        self.store.close()
