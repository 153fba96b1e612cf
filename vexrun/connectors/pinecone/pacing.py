"""Keeping under Pinecone's request rates, and retrying what it refused anyway.

A serverless index allows 100 upsert requests per second per namespace (and 100 fetch, 200 list requests per
second per index). The sink takes a token from a bucket of that rate before each request, so it runs at the
limit without being refused; the bucket holds a tenth of a second of requests, so bursts stay far below what
the server's own bucket absorbs. A 429 that comes anyway (another writer on the same namespace, a lower limit)
empties the bucket and lowers its rate for a while, so every thread of that namespace slows down, and the
request is retried after an exponential backoff with jitter (or the server's ``Retry-After``). 5xx answers and
lost connections are retried the same way; anything else is raised at once. (The SDK retries 429s and 5xx three
times itself before the sink sees them.)
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["Pacer", "TokenBucket", "retrying"]

T = TypeVar("T")

#: Statuses worth another attempt (and a request that got no answer at all: None).
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class TokenBucket:
    """``rate`` tokens a second, holding at most ``capacity`` (a tenth of a second's worth, at least one).

    A refusal (:meth:`drain`) also lowers the rate by a fifth (to a tenth of the nominal rate at least), and each
    token taken gives back a hundredth of the nominal rate: a server whose limit is lower than configured, or
    shared with another writer, is met at about its own pace instead of being refused again and again."""

    def __init__(self, rate: float, capacity: float | None = None) -> None:
        self.nominal = rate
        self.rate = rate
        self.capacity = capacity if capacity is not None else max(1.0, rate / 10.0)
        self.level = self.capacity
        self.t = time.monotonic()
        self.lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, waiting for it; returns the seconds waited."""
        waited = 0.0
        while True:
            with self.lock:
                now = time.monotonic()
                self.level = min(self.capacity, self.level + (now - self.t) * self.rate)
                self.t = now
                if self.level >= 1.0:
                    self.level -= 1.0
                    if self.rate < self.nominal:
                        self.rate = min(self.nominal, self.rate + self.nominal / 100.0)
                    return waited
                pause = (1.0 - self.level) / self.rate
            time.sleep(pause)
            waited += pause

    def drain(self, seconds: float = 0.0) -> None:
        """Empty the bucket (and owe ``seconds`` of refill): the server said we went too fast."""
        with self.lock:
            now = time.monotonic()
            self.level = min(0.0, self.level) - seconds * self.rate
            self.t = now
            self.rate = max(self.nominal / 10.0, self.rate * 0.8)


class Pacer:
    """One bucket per key (a namespace, or an operation), made on first use."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()
        #: seconds spent waiting for tokens, and 429s seen, for the run report
        self.waited = 0.0
        self.throttled = 0

    def set_rate(self, rate: float) -> None:
        """Pace at ``rate`` from now on (buckets made afresh)."""
        with self._lock:
            self.rate = rate
            self._buckets.clear()

    def bucket(self, key: str) -> TokenBucket:
        with self._lock:
            found = self._buckets.get(key)
            if found is None:
                found = self._buckets[key] = TokenBucket(self.rate)
            return found

    def acquire(self, key: str) -> None:
        waited = self.bucket(key).acquire()
        if waited:
            with self._lock:
                self.waited += waited

    def refused(self, key: str, retry_after: float | None) -> None:
        with self._lock:
            self.throttled += 1
        self.bucket(key).drain(retry_after or 0.0)


def backoff(attempt: int, retry_after: float | None, *, base: float = 0.5, cap: float = 30.0) -> float:
    """Seconds before attempt ``attempt + 1``: the server's hint plus a little jitter, or full-jitter
    exponential backoff from ``base`` up to ``cap``."""
    if retry_after is not None and retry_after >= 0:
        return min(cap, retry_after + random.uniform(0, 0.1 * retry_after + 0.05))
    step = min(cap, base * 2.0**attempt)
    return step / 2 + random.uniform(0, step / 2)


def retrying(
    call: Callable[[], T],
    *,
    retries: int,
    status_of: Callable[[BaseException], int | None],
    retry_after_of: Callable[[BaseException], float | None],
    on_refused: Callable[[float | None], None] | None = None,
    before: Callable[[], None] | None = None,
    unanswered: bool = True,
) -> T:
    """Run ``call`` (after ``before``, e.g. taking a token), retrying it up to ``retries`` times when it fails
    with a status in :data:`RETRY_STATUSES` or, when ``unanswered``, with no answer (``status_of`` returns 0
    for that: the SDK has already retried the connection three times); anything else is raised at once, and
    the last failure after the retries."""
    attempt = 0
    while True:
        if before is not None:
            before()
        try:
            return call()
        except Exception as exc:
            status = status_of(exc)
            retried = status in RETRY_STATUSES or (status == 0 and unanswered)
            if not retried or attempt >= retries:
                raise
            hint = retry_after_of(exc)
            if status == 429 and on_refused is not None:
                on_refused(hint)
            time.sleep(backoff(attempt, hint))
            attempt += 1
