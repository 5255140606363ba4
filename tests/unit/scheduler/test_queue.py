"""The scheduling queue: order, backoff, parking and reactivation."""

from __future__ import annotations

import asyncio

from scheduler import queue as q
from scheduler.types import PodInfo

from .objects import pod


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _info(name: str, priority: int = 0) -> PodInfo:
    p = pod(name)
    if priority:
        p.spec.priority = priority
    return PodInfo.of(p)


async def test_active_queue_orders_by_priority_then_age() -> None:
    clock = Clock()
    queue = q.SchedulingQueue(clock=clock)
    queue.add(_info("old"))
    clock.now += 1
    queue.add(_info("vip", priority=100))
    clock.now += 1
    queue.add(_info("young"))
    queue.add(_info("old"))  # a duplicate add keeps its place
    order = [(await queue.pop()).pod_info.name for _ in range(3)]
    assert order == ["vip", "old", "young"]
    assert queue.pop_nowait() is None


def test_backoff_doubles_from_one_second_to_ten() -> None:
    queue = q.SchedulingQueue()
    assert [queue.backoff_duration(a) for a in range(1, 7)] == [1, 2, 4, 8, 10, 10]


async def test_unschedulable_pod_waits_for_a_cluster_event() -> None:
    clock = Clock()
    queue = q.SchedulingQueue(clock=clock)
    queue.add(_info("p"))
    qpi = await queue.pop()
    cycle = queue.scheduling_cycle
    queue.add_unschedulable_if_not_present(qpi, cycle, {"NodeResourcesFit"})
    assert queue.pending()["unschedulable"] == ["default/p"]
    clock.now += 0.5
    # a node is added while the pod's 1 s backoff is still running: to backoffQ
    assert queue.move_all_to_active_or_backoff(q.NODE_ADD) == 1
    assert queue.pending()["backoff"] == ["default/p"]
    assert queue.flush_backoff_completed() == 0
    clock.now += 0.6
    assert queue.flush_backoff_completed() == 1
    again = await queue.pop()
    assert again is qpi and again.attempts == 2


async def test_node_add_after_backoff_goes_straight_to_active() -> None:
    clock = Clock()
    queue = q.SchedulingQueue(clock=clock)
    queue.add(_info("p"))
    qpi = await queue.pop()
    queue.add_unschedulable_if_not_present(qpi, queue.scheduling_cycle)
    clock.now += 5
    queue.move_all_to_active_or_backoff(q.NODE_ADD)
    assert queue.pending()["active"] == ["default/p"]


async def test_failure_from_a_cycle_older_than_a_move_goes_to_backoff() -> None:
    clock = Clock()
    queue = q.SchedulingQueue(clock=clock)
    queue.add(_info("p"))
    qpi = await queue.pop()
    cycle = queue.scheduling_cycle
    queue.move_all_to_active_or_backoff(q.NODE_ADD)  # a node arrived mid-cycle
    queue.add_unschedulable_if_not_present(qpi, cycle)
    assert queue.pending()["backoff"] == ["default/p"]


async def test_left_over_unschedulable_pods_are_retried_eventually() -> None:
    clock = Clock()
    queue = q.SchedulingQueue(clock=clock, max_unschedulable_seconds=60)
    queue.add(_info("p"))
    queue.add_unschedulable_if_not_present(await queue.pop(), queue.scheduling_cycle)
    clock.now += 30
    assert queue.flush_unschedulable_left_over() == 0
    clock.now += 31
    assert queue.flush_unschedulable_left_over() == 1
    assert queue.pending()["active"] == ["default/p"]


async def test_update_and_delete() -> None:
    clock = Clock()
    queue = q.SchedulingQueue(clock=clock)
    queue.add(_info("p"))
    qpi = await queue.pop()
    queue.add_unschedulable_if_not_present(qpi, queue.scheduling_cycle)
    queue.update(_info("p"), spec_changed=False)  # e.g. our own status write
    assert queue.pending()["unschedulable"] == ["default/p"]
    clock.now += 2
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
