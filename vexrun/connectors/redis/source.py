"""Redis as a source: SCAN of the key prefix (``MATCH prefix* TYPE hash``, or ``ReJSON-RL``), then the records
of each page in one round trip (pipelined HGETALL, or JSON.MGET). The cursor is SCAN's own, so a resumed export
continues where the last committed batch ended; no index is needed.

SCAN returns every key that exists for the whole scan, and may return a key twice while Redis resizes its
table: the source drops keys it has already read in this process (a set of the keys, about 100 bytes each),
and at the end compares what it read with a count of the keys, so a scan that saw the collection change fails
instead of exporting a different set. (An FT.AGGREGATE … WITHCURSOR export was not chosen: its cursor lives on
the server, expires when idle, and cannot be resumed by a new process.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ...errors import InvalidInput
from ...vmig.batch import Batch
from ..base import Cursor, RunContext, Source
from .client import Store
from .codec import Layout, to_batch
from .config import RedisSourceConfig

__all__ = ["RedisSource"]

#: The smallest COUNT hint given to SCAN.
_MIN_SCAN = 10


class RedisSource(Source):
    name = "redis"
    prefetch = True  # a socket client: the next page is read while the sinks write

    def __init__(self, config: RedisSourceConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.cfg = config
        self.store = Store(config, ctx)
        self.layout = Layout(config)
        self.read = 0
        self.expected: int | None = None

    def open(self) -> None:
        store = self.store
        store.open()
        info, meta = store.index_info(), store.read_meta()
        store.adopt(info, meta)
        if info is None and not meta and not any(True for _ in store.scan_all()):
            store.close()
            raise InvalidInput(
                f"redis at {store.where} holds no index '{self.cfg.collection}' and no keys under '{store.key_prefix}'",
                hint="check collection and prefix",
            )

    def identity(self) -> str:
        ns = f"#{self.cfg.namespace}" if self.cfg.namespace is not None else ""
        return f"redis:{self.cfg.collection}{ns}"

    def estimate(self) -> int | None:
        if self.cfg.namespace is not None:
            return None
        info = self.store.index_info()
        if info is None or info.indexing or info.prefixes != [self.store.key_prefix]:
            return None
        self.expected = info.num_docs
        return self.expected

    def batches(self, cursor: Cursor | None, batch_size: int) -> Iterator[tuple[Batch, Cursor]]:
        """Batches of about ``batch_size`` records (whole SCAN pages: a batch ends where a SCAN call ended, so
        the next one resumes from SCAN's cursor). The cursor is ``{"scan": n, "read": total}``, and
        ``{"done": true, "read": total}`` after the last batch."""
        if cursor and cursor.get("done"):
            return
        store, ns = self.store, self.cfg.namespace
        scan = int(cursor.get("scan", 0)) if cursor else 0
        total = int(cursor.get("read", 0)) if cursor else 0
        seen: set[bytes] = set()
        count = max(batch_size, _MIN_SCAN)
        while True:
            keys: list[bytes] = []
            while len(keys) < batch_size:
                scan, page = store.scan(scan, count)
                for key in page:
                    if key not in seen:
                        seen.add(key)
                        keys.append(key)
                if scan == 0:
                    break
            items = [
                item
                for item in store.read(keys, self.layout)
                if item is not None and (ns is None or item[0].namespace == ns)
            ]
            total += len(items)
            self.read += len(items)
            after: Cursor = {"done": True, "read": total} if scan == 0 else {"scan": scan, "read": total}
            if items:
                yield to_batch(items, store.where), after
            if scan == 0:
                break
        self._verify(total)

    def _verify(self, total: int) -> None:
        """Compare what was read (over all resumed parts) with the keys the prefix holds now."""
        if self.cfg.namespace is not None:
            return
        holds = sum(len(keys) for keys in self.store.scan_all())
        if holds != total:
            raise InvalidInput(
                f"redis at {self.store.where} holds {holds:,} keys under '{self.store.key_prefix}' but {total:,} "
                "records were read",
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
            what = f"{n:,} records" if n is not None else f"keys under '{self.store.key_prefix}'"
            return f"{self.identity()} at {self.store.where}: readable, {what}"
        finally:
            self.store.close()

    def close(self) -> None:
        self.store.close()
