"""The kubelet's waits are durations: a step of the wall clock neither ends nor stretches them.

Each test drives a FakeClock (apimachinery/clock.py) by hand: `step(s)` is
time passing, `jump(s)` is an operator's `date -s`. The setting is a 5-minute
CrashLoopBackOff, a 5-minute image pull backoff and a 5-minute probe
initialDelaySeconds; two minutes in, the wall clock jumps by +5 or -5
minutes. Measured on wall time, +5 would end each wait at once and -5 would
add five minutes to it; on the monotonic clock 3 minutes are left either way.
The last test patches `time.time` itself, as a real jump looks to the
process, to show the production wiring (the default Clock) is immune too.
"""

from __future__ import annotations

import time

import pytest

from apimachinery.clock import FakeClock
from kubelet import errors
from kubelet.backoff import Backoff
from kubelet.image_manager import ImageManager
from kubelet.kuberuntime_container import RestartDecision, restart_decision
from kubelet.prober.prober import ProbeOutcome, ProbeTarget, Result
from kubelet.prober.worker import ProbeKind, ProbeWorker
from kubelet.runtime.fake import FakeRuntime
from kubelet.runtime.interface import Container, ContainerState
from protos import core_pb2
from tests.unit.kubelet.conftest import pod

FIVE_MINUTES = 300.0
JUMPS = pytest.mark.parametrize("jump", [+FIVE_MINUTES, -FIVE_MINUTES], ids=["ahead", "back"])


def _exited(finished: float, attempt: int) -> Container:
    return Container(
        id=f"c{attempt}",
        sandbox_id="sb",
        name="web",
        attempt=attempt,
        image="busybox",
        image_ref="busybox@sha256:x",
        state=ContainerState.EXITED,
        created_at=finished - 1,
        finished_at=finished,
        exit_code=1,
    )


def _crash_looping(clock: FakeClock) -> tuple[core_pb2.Pod, Backoff, Container]:
    """A pod whose container has crashed twice: the second exit waits 5 minutes."""
    backoff = Backoff(FIVE_MINUTES, FIVE_MINUTES, clock=clock)
    p = pod("web", "node1", "web")
    p.metadata.uid = "uid1"
    assert restart_decision(p, _exited(clock.time(), 0), backoff).restart  # the first: at once
    clock.step(1.0)
    second = _exited(clock.time(), 1)  # stamped by the runtime in wall time
    decision = restart_decision(p, second, backoff)
    assert not decision.restart and decision.retry_after == pytest.approx(FIVE_MINUTES)
    return p, backoff, second


def _waiting(decision: RestartDecision) -> str:
    assert not decision.restart and decision.waiting is not None
    return decision.waiting.reason


@JUMPS
def test_crash_loop_backoff_is_not_moved_by_a_wall_clock_jump(jump: float) -> None:
    clock = FakeClock()
    p, backoff, exited = _crash_looping(clock)
    clock.step(120)
    clock.jump(jump)
    decision = restart_decision(p, exited, backoff)  # the next resync
    assert _waiting(decision) == "CrashLoopBackOff"
    assert decision.retry_after == pytest.approx(180)  # not 0 (+5 min), not 480 (-5 min)
    clock.step(179)
    assert _waiting(restart_decision(p, exited, backoff)) == "CrashLoopBackOff"
    clock.step(1.5)  # 5 minutes and half a second after the exit: on time
    assert restart_decision(p, exited, backoff).restart


@JUMPS
def test_a_jump_before_the_exit_is_stamped_changes_nothing(jump: float) -> None:
    clock = FakeClock()
    clock.jump(jump)  # the runtime stamps finishedAt with the new wall time
    p, backoff, exited = _crash_looping(clock)
    clock.step(FIVE_MINUTES - 1)
    assert _waiting(restart_decision(p, exited, backoff)) == "CrashLoopBackOff"
    clock.step(1.5)
    assert restart_decision(p, exited, backoff).restart


@JUMPS
async def test_image_pull_backoff_is_not_moved_by_a_wall_clock_jump(jump: float) -> None:
    clock = FakeClock()
    runtime = FakeRuntime()
    runtime.image_errors["nginx:missing"] = "manifest unknown"
    events: list[str] = []
    images = ImageManager(
        runtime,
        Backoff(FIVE_MINUTES, FIVE_MINUTES, clock=clock),
        lambda pod, kind, reason, message: events.append(reason),
    )
    p = pod("web", "node1")
    p.metadata.uid = "uid1"
    spec = p.spec.containers[0]
    spec.image = "nginx:missing"
    with pytest.raises(errors.ImagePullError):
        await images.ensure_image_exists(p, spec)  # ErrImagePull: the backoff starts
    clock.step(120)
    clock.jump(jump)
    with pytest.raises(errors.ImagePullBackOff):
        await images.ensure_image_exists(p, spec)
    assert images.retry_after(p, spec) == pytest.approx(180)
    clock.step(181)
    with pytest.raises(errors.ImagePullError):  # pulled again, on time
        await images.ensure_image_exists(p, spec)
    pulls = [c for c in runtime.calls if c[0] == "pull_image"]
    assert pulls == [("pull_image", "nginx:missing")] * 2
    assert events == ["Pulling", "Failed", "BackOff", "Pulling", "Failed"]


@JUMPS
async def test_probe_initial_delay_is_not_moved_by_a_wall_clock_jump(jump: float) -> None:
    clock = FakeClock()
    probe = core_pb2.Probe(initial_delay_seconds=int(FIVE_MINUTES))
    probe.exec.command.append("true")
    p = pod("web", "node1", "web")
    probed: list[str] = []

    async def run_probe(_: core_pb2.Probe, target: ProbeTarget) -> ProbeOutcome:
        probed.append(target.container_id)
        return ProbeOutcome(Result.SUCCESS)

    worker = ProbeWorker(
        ProbeKind.READINESS,
        p,
        p.spec.containers[0],
        probe,
        run_probe=run_probe,
        may_probe=lambda w: True,
        on_result=lambda w, o: None,
        on_change=lambda w: None,
        clock=clock,
    )
    worker.set_container("c1", clock.time(), "10.0.0.2")  # startedAt, in wall time
    clock.step(120)
    clock.jump(jump)
    assert not await worker.probe_once()
    clock.step(179)
    assert not await worker.probe_once()
    clock.step(1)
    assert await worker.probe_once() and probed == ["c1"]


@JUMPS
def test_the_kubelets_default_clock_ignores_a_jump_of_time_time(
    jump: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    backoff = Backoff(FIVE_MINUTES, FIVE_MINUTES)  # as the kubelet builds it: the real clocks
    p = pod("web", "node1", "web")
    p.metadata.uid = "uid1"
    assert restart_decision(p, _exited(time.time(), 0), backoff).restart
    exited = _exited(time.time(), 1)
    first = restart_decision(p, exited, backoff)
    assert _waiting(first) == "CrashLoopBackOff"
    wall = time.time
    monkeypatch.setattr(time, "time", lambda: wall() + jump)  # `date -s`, as the process sees it
    after = restart_decision(p, exited, backoff)
    assert _waiting(after) == "CrashLoopBackOff"
    assert first.retry_after is not None and after.retry_after is not None
    assert first.retry_after - 5 < after.retry_after <= first.retry_after
