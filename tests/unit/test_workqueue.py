"""The work queue's invariants, as client-go's queue_test.go checks them.

Dedup, one worker per key, re-queue on done, per-key exponential backoff,
add_after ordering and deduplication, shutdown draining; and delays that a
step of the wall clock does not move (the monotonic clock, FakeClock seam).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from apimachinery.clock import FakeClock
from apimachinery.workqueue import (
    BucketRateLimiter,
    DelayingQueue,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    Queue,
    RateLimitingQueue,
    ShutDown,
    default_controller_rate_limiter,
)


async def test_duplicates_collapse_while_waiting() -> None:
    q: Queue[str] = Queue()
    for key in ["a", "b", "a", "a", "c", "b"]:
        q.add(key)
    assert len(q) == 3
    assert [await q.get() for _ in range(3)] == ["a", "b", "c"]
    assert len(q) == 0


async def test_item_added_while_processing_is_requeued_on_done() -> None:
    q: Queue[str] = Queue()
    q.add("a")
    assert await q.get() == "a"
    q.add("a")
    q.add("a")
    assert len(q) == 0  # parked in dirty, not queued while a worker holds it
    waiter = asyncio.ensure_future(q.get())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    q.done("a")
    assert await asyncio.wait_for(waiter, 1) == "a"
    q.done("a")
    assert len(q) == 0


async def test_done_without_readd_does_not_requeue() -> None:
    q: Queue[str] = Queue()
    q.add("a")
    await q.get()
    q.done("a")
    assert len(q) == 0
    q.add("a")
    assert len(q) == 1


async def test_no_key_is_processed_by_two_workers_at_once() -> None:
    q: Queue[int] = Queue()
    active: set[int] = set()
    overlaps: list[int] = []
    processed: list[int] = []

    async def worker() -> None:
        while True:
            try:
                key = await q.get()
            except ShutDown:
                return
            if key in active:
                overlaps.append(key)
            active.add(key)
            await asyncio.sleep(0.001)
            if len(processed) < 200 and key % 2 == 0:
                q.add(key)  # re-added while we still hold it
            processed.append(key)
            active.discard(key)
            q.done(key)

    workers = [asyncio.ensure_future(worker()) for _ in range(8)]
    for _ in range(20):
        for key in range(5):
            q.add(key)
        await asyncio.sleep(0.002)
    while len(q) or len(processed) < 200:
        await asyncio.sleep(0.01)
    q.shut_down()
    await asyncio.wait_for(asyncio.gather(*workers), 5)
    assert overlaps == []
    assert set(processed) == {0, 1, 2, 3, 4}


async def test_shutdown_drains_then_raises() -> None:
    q: Queue[str] = Queue()
    q.add("a")
    q.add("b")
    q.shut_down()
    q.add("c")  # ignored after shutdown
    assert q.shutting_down()
    assert await q.get() == "a"
    assert await q.get() == "b"
    with pytest.raises(ShutDown):
        await q.get()


async def test_shutdown_wakes_blocked_workers() -> None:
    q: Queue[str] = Queue()
    getters = [asyncio.ensure_future(q.get()) for _ in range(3)]
    await asyncio.sleep(0.01)
    q.shut_down()
    results = await asyncio.wait_for(asyncio.gather(*getters, return_exceptions=True), 1)
    assert all(isinstance(r, ShutDown) for r in results)


async def test_cancelled_getter_does_not_swallow_an_item() -> None:
    q: Queue[str] = Queue()
    first = asyncio.ensure_future(q.get())
    second = asyncio.ensure_future(q.get())
    await asyncio.sleep(0.01)
    q.add("a")  # wakes `first`...
    first.cancel()  # ...which is cancelled before it runs: `second` must get the item
    assert await asyncio.wait_for(second, 1) == "a"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_add_after_orders_by_ready_time() -> None:
    q: DelayingQueue[str] = DelayingQueue()
    q.add_after("late", 0.06)
    q.add_after("early", 0.02)
    q.add_after("middle", 0.04)
    q.add_after("now", 0)
    assert len(q) == 1
    assert q.waiting() == 3
    got = [await asyncio.wait_for(q.get(), 1) for _ in range(4)]
    assert got == ["now", "early", "middle", "late"]


async def test_add_after_keeps_the_earlier_time() -> None:
    q: DelayingQueue[str] = DelayingQueue()
    loop = asyncio.get_running_loop()
    start = loop.time()
    q.add_after("a", 10.0)
    q.add_after("a", 0.02)  # earlier wins
    q.add_after("a", 5.0)  # later is ignored
    assert q.waiting() == 1
    assert await asyncio.wait_for(q.get(), 1) == "a"
    assert loop.time() - start < 1.0
    q.done("a")
    await asyncio.sleep(0.05)
    assert len(q) == 0 and q.waiting() == 0  # the superseded entries never fire


async def test_add_after_shutdown_drops_waiting_items() -> None:
    q: DelayingQueue[str] = DelayingQueue()
    q.add_after("a", 0.01)
    q.shut_down()
    await asyncio.sleep(0.03)
    assert len(q) == 0
    with pytest.raises(ShutDown):
        await q.get()


def test_item_exponential_backoff_grows_and_caps() -> None:
    limiter: ItemExponentialFailureRateLimiter[str] = ItemExponentialFailureRateLimiter(
        0.005, 1000.0
    )
    delays = [limiter.when("a") for _ in range(5)]
    assert delays == pytest.approx([0.005, 0.01, 0.02, 0.04, 0.08])
    assert limiter.num_requeues("a") == 5
    assert limiter.when("b") == pytest.approx(0.005)  # per item
    for _ in range(100):
        last = limiter.when("a")
    assert last == 1000.0
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0
    assert limiter.when("a") == pytest.approx(0.005)


def test_bucket_limiter_allows_burst_then_spaces_out() -> None:
    bucket: BucketRateLimiter[str] = BucketRateLimiter(qps=10.0, burst=3)
    first = [bucket.when("x") for _ in range(3)]
    assert first == [0.0, 0.0, 0.0]
    fourth, fifth = bucket.when("x"), bucket.when("x")
    assert 0.05 < fourth <= 0.1
    assert 0.15 < fifth <= 0.2


def test_bucket_limiter_is_not_refilled_nor_drained_by_a_wall_clock_jump() -> None:
    clock = FakeClock()
    bucket: BucketRateLimiter[str] = BucketRateLimiter(qps=1.0, burst=1, clock=clock)
    assert bucket.when("x") == 0.0  # the one token
    clock.jump(300)  # on wall time: 300 s of refill, a full bucket again
    assert bucket.when("x") == pytest.approx(1.0)
    clock.jump(-600)  # on wall time: -600 s of refill, a ten-minute wait
    assert bucket.when("x") == pytest.approx(2.0)
    clock.step(3)  # three seconds do pass: three tokens, one kept (burst 1)
    assert bucket.when("x") == 0.0


async def test_add_after_waits_out_its_delay_whatever_time_time_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    q: DelayingQueue[str] = DelayingQueue()
    loop = asyncio.get_running_loop()
    start = loop.time()
    q.add_after("a", 0.1)
    wall = time.time
    monkeypatch.setattr(time, "time", lambda: wall() + 300)  # `date -s`, as the process sees it
    await asyncio.sleep(0.02)
    assert len(q) == 0 and q.waiting() == 1  # not released by the jump
    assert await asyncio.wait_for(q.get(), 1) == "a"
    assert loop.time() - start >= 0.09


def test_max_of_takes_the_longest_delay() -> None:
    limiter: MaxOfRateLimiter[str] = MaxOfRateLimiter(
        ItemExponentialFailureRateLimiter(0.001, 1.0), BucketRateLimiter(qps=1.0, burst=1)
    )
    assert limiter.when("a") == pytest.approx(0.001)  # bucket had a token
    assert limiter.when("a") > 0.9  # bucket empty: about a second
    assert limiter.num_requeues("a") == 2
    default: MaxOfRateLimiter[str] = default_controller_rate_limiter()
    assert default.when("k") == pytest.approx(0.005)


async def test_rate_limited_requeue_backs_off_and_forget_resets() -> None:
    q: RateLimitingQueue[str] = RateLimitingQueue(
        ItemExponentialFailureRateLimiter(0.01, 1.0), name="test"
    )
    loop = asyncio.get_running_loop()
    gaps = []
    q.add("k")
    key = await q.get()
    for _ in range(4):
        start = loop.time()
        q.add_rate_limited(key)
        q.done(key)
        key = await asyncio.wait_for(q.get(), 2)
        gaps.append(loop.time() - start)
    assert q.num_requeues("k") == 4
    # 10, 20, 40, 80 ms: each wait at least its delay, and they grow
    for gap, expected in zip(gaps, [0.01, 0.02, 0.04, 0.08], strict=True):
        assert gap >= expected * 0.9
    assert gaps[3] > gaps[0]
    q.forget("k")
    assert q.num_requeues("k") == 0
    q.done(key)
