"""The read-ahead thread: order kept, errors raised in the consumer, early exits close the producer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from vexrun.prefetch import prefetch


def test_items_arrive_in_order_and_overlap() -> None:
    seen_threads: set[str] = set()

    def gen() -> Iterator[int]:
        for i in range(50):
            seen_threads.add(threading.current_thread().name)
            time.sleep(0.002)
            yield i

    start = time.perf_counter()
    out = []
    for item in prefetch(gen()):
        time.sleep(0.002)  # the consumer's own work, overlapping with the producer's
        out.append(item)
    assert out == list(range(50))
    assert seen_threads == {"vexrun-prefetch"}
    assert time.perf_counter() - start < 50 * 0.004 * 0.9


def test_errors_are_raised_in_the_consumer() -> None:
    def gen() -> Iterator[int]:
        yield 1
        raise ValueError("broken source")

    got = []
    with pytest.raises(ValueError, match="broken source"):
        for item in prefetch(gen()):
            got.append(item)
    assert got == [1]


def test_leaving_early_closes_the_producer() -> None:
    closed = threading.Event()

    def gen() -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    for item in prefetch(gen()):
        if item == 3:
            break
    assert closed.wait(2)
    assert not any(t.name == "vexrun-prefetch" for t in threading.enumerate())
