"""The limits a fake Pinecone index enforces, its request-rate buckets and its counters.

Defaults are Pinecone's documented serverless limits (docs.pinecone.io, "Database limits"): 100 upsert, query
and delete requests per second per namespace; 100 fetch, 200 list and 100 describe-index-stats requests per
second per index; upserts of at most 1,000 records and 2 MB; fetches and deletes of at most 1,000 ids; list
pages of at most 100 ids; 40 KB of metadata per record; ``top_k`` up to 10,000 (1,000 with values or
metadata). Each rate is a token bucket holding ``burst_seconds`` worth of requests, refilled continuously; a
request that finds it empty is answered 429 and costs nothing. Pinecone sends no ``Retry-After``; set
``retry_after`` to add one.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

__all__ = ["Limits", "RateLimiter", "Stats"]

#: The operations with a request rate, and whether their bucket is per namespace (else per index).
PER_NAMESPACE = {"upsert": True, "query": True, "delete": True, "fetch": False, "list": False, "stats": False}


@dataclass
class Limits:
    """What the fake enforces; a rate of None is unlimited. Change fields while it runs to re-shape it."""

    upserts_per_second: float | None = 100.0
    queries_per_second: float | None = 100.0
    deletes_per_second: float | None = 100.0
    fetches_per_second: float | None = 100.0
    lists_per_second: float | None = 200.0
    stats_per_second: float | None = 100.0
    #: a bucket holds this many seconds of its rate (at least one request)
    burst_seconds: float = 1.0
    #: seconds to send as ``Retry-After`` with a 429 (the real service sends none)
    retry_after: float | None = None
    max_upsert_records: int = 1000
    max_request_bytes: int = 2 * 1024 * 1024
    max_metadata_bytes: int = 40960
    max_fetch_ids: int = 1000
    max_delete_ids: int = 1000
    max_list_limit: int = 100
    max_top_k: int = 10_000
    max_top_k_with_data: int = 1000

    def rate(self, op: str) -> float | None:
        return {
            "upsert": self.upserts_per_second,
            "query": self.queries_per_second,
            "delete": self.deletes_per_second,
            "fetch": self.fetches_per_second,
            "list": self.lists_per_second,
            "stats": self.stats_per_second,
        }[op]


class _Bucket:
    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.level = capacity
        self.t = now

    def take(self, now: float) -> bool:
        if now > self.t:
            self.level = min(self.capacity, self.level + (now - self.t) * self.rate)
            self.t = now
        if self.level >= 1.0:
            self.level -= 1.0
            return True
        return False


class RateLimiter:
    """One bucket per (operation, index, namespace-or-None), created on first use with the current limits."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str, str | None], _Bucket] = {}

    def allow(self, op: str, index: str, namespace: str) -> bool:
        rate = self.limits.rate(op)
        if rate is None:
            return True
        key = (op, index, namespace if PER_NAMESPACE[op] else None)
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None or bucket.rate != rate:
                bucket = self._buckets[key] = _Bucket(rate, max(1.0, rate * self.limits.burst_seconds), now)
            return bucket.take(now)

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()


class Stats:
    """Counters, updated under a lock: requests by route and status, 429s by operation, records upserted,
    and the most requests in progress at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.by_route: Counter[str] = Counter()
        self.by_status: Counter[int] = Counter()
        self.throttled: Counter[str] = Counter()
        self.upserted = 0
        self.upsert_requests = 0
        self.bytes_in = 0
        self.in_flight = 0
        self.max_in_flight = 0

    def begin(self, route: str, size: int) -> None:
        with self.lock:
            self.requests += 1
            self.by_route[route] += 1
            self.bytes_in += size
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def end(self, status: int) -> None:
        with self.lock:
            self.in_flight -= 1
            self.by_status[status] += 1

    def add(self, *, throttled: str | None = None, upserted: int = 0) -> None:
        with self.lock:
            if throttled is not None:
                self.throttled[throttled] += 1
            if upserted:
                self.upserted += upserted
                self.upsert_requests += 1

    def snapshot(self) -> dict[str, Any]:
        """The counters as plain JSON-able data (``throttled_total`` sums the 429s)."""
        with self.lock:
            return {
                "requests": self.requests,
                "by_route": dict(self.by_route),
                "by_status": {str(k): v for k, v in self.by_status.items()},
                "throttled": dict(self.throttled),
                "throttled_total": sum(self.throttled.values()),
                "upserted": self.upserted,
                "upsert_requests": self.upsert_requests,
                "bytes_in": self.bytes_in,
                "max_in_flight": self.max_in_flight,
            }

    def reset(self) -> None:
        with self.lock:
            self.requests = self.upserted = self.upsert_requests = self.bytes_in = self.max_in_flight = 0
            self.by_route.clear()
            self.by_status.clear()
            self.throttled.clear()
