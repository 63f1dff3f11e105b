"""agent.camera.prefetch: order, bounds, errors and early close of the worker thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from agent.camera.prefetch import Prefetcher
from tests.helpers import wait_for


def test_items_arrive_in_order_and_the_worker_ends() -> None:
    p = Prefetcher(iter(range(100)), depth=3)
    assert list(p) == list(range(100))
    p.close()
    assert not p._thread.is_alive()


def test_the_worker_stays_at_most_depth_items_ahead() -> None:
    made: list[int] = []
    blocked = threading.Event()

    def source() -> Iterator[int]:
        for i in range(50):
            made.append(i)
            if i == 3:
                blocked.set()
            yield i

    p = Prefetcher(source(), depth=2)
    it = iter(p)
    assert next(it) == 0
    assert blocked.wait(5)
    # 1 taken, 2 queued, 1 in the worker's hand waiting for room: the worker is stuck there.
    wait_for(p._queue.full, timeout=5, what="the queue to fill")
    assert len(made) == 4
    assert next(it) == 1  # room for one more: item 3 goes in, item 4 is made and waits
    wait_for(lambda: len(made) == 5 and p._queue.full(), timeout=5, what="the worker to refill")
    assert len(made) == 5
    p.close()


def test_a_source_error_is_raised_in_the_consumer() -> None:
    def source() -> Iterator[int]:
        yield 1
        raise OSError("disk gone")

    p = Prefetcher(source())
    got = []
    with pytest.raises(OSError, match="disk gone"):
        for item in p:
            got.append(item)
    assert got == [1]
    p.close()


def test_close_stops_an_endless_source_and_closes_it_in_the_worker() -> None:
    closed_in: list[str] = []

    def endless() -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed_in.append(threading.current_thread().name)

    p = Prefetcher(endless(), depth=2, name="decode-test")
    for item in p:
        if item == 10:
            break
    p.close()
    p.close()  # twice is harmless
    assert not p._thread.is_alive()
    assert closed_in == ["decode-test"]


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="depth 0"):
        Prefetcher(iter(()), depth=0)
