"""The shared worker loop (apimachinery/worker.py): forget on success, back off on failure,
done always, an orderly stop."""

from __future__ import annotations

import asyncio
import logging

import pytest

from apimachinery.worker import WorkLoop
from apimachinery.workqueue import ItemExponentialFailureRateLimiter, RateLimitingQueue


def queue() -> RateLimitingQueue[str]:
    return RateLimitingQueue(ItemExponentialFailureRateLimiter(0.001, 1.0), name="test")


async def test_success_forgets_failure_requeues_with_backoff() -> None:
    q = queue()
    calls: list[str] = []
    errors: list[tuple[str, str]] = []

    async def sync(key: str) -> None:
        calls.append(key)
        if len(calls) <= 2:
            raise ValueError(f"attempt {len(calls)}")

    loop = WorkLoop(q, sync, on_error=lambda key, exc: errors.append((key, str(exc))))
    q.add("a")
    assert await loop.process_next_work_item()
    assert q.num_requeues("a") == 1 and len(q) == 0  # waiting out its backoff, not queued
    assert await asyncio.wait_for(loop.process_next_work_item(), 1)
    assert q.num_requeues("a") == 2
    assert await asyncio.wait_for(loop.process_next_work_item(), 1)
    assert q.num_requeues("a") == 0  # the success reset the backoff
    assert calls == ["a", "a", "a"]
    assert errors == [("a", "attempt 1"), ("a", "attempt 2")]


async def test_a_key_added_during_its_failed_sync_runs_once_more_after_done() -> None:
    q = queue()
    seen: list[str] = []

    async def sync(key: str) -> None:
        seen.append(key)
        if len(seen) == 1:
            q.add(key)  # a new event while the sync runs: parked, not handed to a second worker
            raise RuntimeError("boom")

    loop = WorkLoop(q, sync, on_error=lambda key, exc: None)
    q.add("a")
    assert await loop.process_next_work_item()
    assert len(q) == 1  # done() re-queued it at once; the backoff entry merges with it
    assert await loop.process_next_work_item()
    assert seen == ["a", "a"]


async def test_default_error_report_is_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    q = queue()

    async def sync(key: str) -> None:
        raise RuntimeError("no")

    q.add("ns/x")
    with caplog.at_level(logging.WARNING, logger="apimachinery.worker"):
        assert await WorkLoop(q, sync).process_next_work_item()
    [record] = caplog.records
    assert record.getMessage() == "sync failed; requeued"
    assert record.__dict__["key"] == "ns/x" and record.__dict__["error"] == "RuntimeError('no')"


async def test_shut_down_drains_and_every_worker_returns() -> None:
    q = queue()
    done: list[str] = []

    async def sync(key: str) -> None:
        await asyncio.sleep(0)
        done.append(key)

    for key in "abc":
        q.add(key)
    q.shut_down()
    await asyncio.wait_for(WorkLoop(q, sync).run(workers=3), 1)
    assert sorted(done) == ["a", "b", "c"]


async def test_cancelling_run_stops_the_workers_and_the_queue() -> None:
    q = queue()
    started = asyncio.Event()
    errors: list[Exception] = []

    async def sync(key: str) -> None:
        started.set()
        await asyncio.sleep(3600)

    q.add("a")
    task = asyncio.ensure_future(WorkLoop(q, sync, on_error=lambda k, e: errors.append(e)).run(2))
    await asyncio.wait_for(started.wait(), 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert q.shutting_down()
    assert errors == []  # cancellation is not a failed sync
    q.add("b")
    assert len(q) == 0  # adds after shutdown are ignored
