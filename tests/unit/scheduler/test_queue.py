"""The scheduling queue: order, backoff, parking and reactivation, on the monotonic clock."""

from __future__ import annotations

import asyncio
import time

import pytest

from apimachinery.clock import FakeClock
from scheduler import queue as q
from scheduler.types import PodInfo

from .objects import pod


def _info(name: str, priority: int = 0) -> PodInfo:
    p = pod(name)
    if priority:
        p.spec.priority = priority
    return PodInfo.of(p)


async def test_active_queue_orders_by_priority_then_age() -> None:
    clock = FakeClock()
    queue = q.SchedulingQueue(clock=clock)
    queue.add(_info("old"))
    clock.step(1)
    queue.add(_info("vip", priority=100))
    clock.step(1)
    queue.add(_info("young"))
    queue.add(_info("old"))  # a duplicate add keeps its place
    order = [(await queue.pop()).pod_info.name for _ in range(3)]
    assert order == ["vip", "old", "young"]
    assert queue.pop_nowait() is None


def test_backoff_doubles_from_one_second_to_ten() -> None:
    queue = q.SchedulingQueue()
    assert [queue.backoff_duration(a) for a in range(1, 7)] == [1, 2, 4, 8, 10, 10]


async def test_unschedulable_pod_waits_for_a_cluster_event() -> None:
    clock = FakeClock()
    queue = q.SchedulingQueue(clock=clock)
    queue.add(_info("p"))
    qpi = await queue.pop()
    cycle = queue.scheduling_cycle
    queue.add_unschedulable_if_not_present(qpi, cycle, {"NodeResourcesFit"})
    assert queue.pending()["unschedulable"] == ["default/p"]
    clock.step(0.5)
    # a node is added while the pod's 1 s backoff is still running: to backoffQ
    assert queue.move_all_to_active_or_backoff(q.NODE_ADD) == 1
    assert queue.pending()["backoff"] == ["default/p"]
    assert queue.flush_backoff_completed() == 0
    clock.step(0.6)
    assert queue.flush_backoff_completed() == 1
    again = await queue.pop()
    assert again is qpi and again.attempts == 2


async def test_node_add_after_backoff_goes_straight_to_active() -> None:
    clock = FakeClock()
    queue = q.SchedulingQueue(clock=clock)
    queue.add(_info("p"))
    qpi = await queue.pop()
    queue.add_unschedulable_if_not_present(qpi, queue.scheduling_cycle)
    clock.step(5)
    queue.move_all_to_active_or_backoff(q.NODE_ADD)
    assert queue.pending()["active"] == ["default/p"]


async def test_failure_from_a_cycle_older_than_a_move_goes_to_backoff() -> None:
    clock = FakeClock()
    queue = q.SchedulingQueue(clock=clock)
    queue.add(_info("p"))
    qpi = await queue.pop()
    cycle = queue.scheduling_cycle
    queue.move_all_to_active_or_backoff(q.NODE_ADD)  # a node arrived mid-cycle
    queue.add_unschedulable_if_not_present(qpi, cycle)
    assert queue.pending()["backoff"] == ["default/p"]


async def test_left_over_unschedulable_pods_are_retried_eventually() -> None:
    clock = FakeClock()
    queue = q.SchedulingQueue(clock=clock, max_unschedulable_seconds=60)
    queue.add(_info("p"))
    queue.add_unschedulable_if_not_present(await queue.pop(), queue.scheduling_cycle)
    clock.step(30)
    assert queue.flush_unschedulable_left_over() == 0
    clock.step(31)
    assert queue.flush_unschedulable_left_over() == 1
    assert queue.pending()["active"] == ["default/p"]


async def test_update_and_delete() -> None:
    clock = FakeClock()
    queue = q.SchedulingQueue(clock=clock)
    queue.add(_info("p"))
    qpi = await queue.pop()
    queue.add_unschedulable_if_not_present(qpi, queue.scheduling_cycle)
    queue.update(_info("p"), spec_changed=False)  # e.g. our own status write
    assert queue.pending()["unschedulable"] == ["default/p"]
    clock.step(2)
    queue.update(_info("p"), spec_changed=True)
    assert queue.pending()["active"] == ["default/p"]
    queue.delete("default/p")
    assert len(queue) == 0 and queue.pop_nowait() is None


async def test_pop_waits_for_an_add() -> None:
    queue = q.SchedulingQueue()
    waiter = asyncio.ensure_future(queue.pop())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    queue.add(_info("late"))
    got = await asyncio.wait_for(waiter, 1)
    assert got.pod_info.name == "late"


async def _one_backing_off_one_parked(queue: q.SchedulingQueue) -> None:
    """p fails in a cycle a move overtook (backoffQ), then u fails after it (parked)."""
    queue.add(_info("p"))
    p = await queue.pop()
    cycle = queue.scheduling_cycle
    queue.move_all_to_active_or_backoff(q.NODE_ADD)  # a node arrived mid-cycle
    queue.add_unschedulable_if_not_present(p, cycle)
    queue.add(_info("u"))
    queue.add_unschedulable_if_not_present(await queue.pop(), queue.scheduling_cycle)
    assert queue.pending()["backoff"] == ["default/p"]
    assert queue.pending()["unschedulable"] == ["default/u"]


@pytest.mark.parametrize("jump", [300.0, -300.0], ids=["ahead", "back"])
async def test_a_wall_clock_jump_moves_no_backoff_nor_timeout(jump: float) -> None:
    clock = FakeClock()
    queue = q.SchedulingQueue(clock=clock, max_unschedulable_seconds=60)
    await _one_backing_off_one_parked(queue)
    clock.step(0.5)
    clock.jump(jump)
    assert queue.flush_backoff_completed() == 0  # 1 s backoff: half of it is left
    assert queue.flush_unschedulable_left_over() == 0
    clock.step(0.6)
    assert queue.flush_backoff_completed() == 1  # on time
    clock.step(59)
    assert queue.flush_unschedulable_left_over() == 1  # 60 s after it was parked: on time


async def test_the_default_clock_ignores_a_jump_of_time_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queue = q.SchedulingQueue(initial_backoff=5, max_backoff=5, max_unschedulable_seconds=5)
    await _one_backing_off_one_parked(queue)
    wall = time.time
    monkeypatch.setattr(time, "time", lambda: wall() + 300)  # `date -s`, as the process sees it
    assert queue.flush_backoff_completed() == 0
    assert queue.flush_unschedulable_left_over() == 0
    assert queue.pending()["backoff"] == ["default/p"]
