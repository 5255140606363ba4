"""The loop-lag trigger: the monitor's figures, the limiter's refusals for lag, and the flag.

The monitor is driven two ways: by a fake clock and a fake sleep that wakes
as late as the test says (its arithmetic, exactly), and on the real loop
blocked by a `time.sleep` (what it is for). The limiter is given a monitor
whose lag the test sets; each request is one `request_scope()`, as the
servicer's `_call` opens one. Through a real server: test_inflight_server.py.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from apimachinery import errors
from apiserver.auth.authorizer import AUTHENTICATED, SYSTEM_MASTERS, UserInfo
from apiserver.inflight import (
    DEFAULT_MAX_LOOP_LAG_MS,
    MUTATING,
    READ_ONLY,
    InflightLimiter,
    InflightLimits,
    request_scope,
)
from apiserver.looplag import LoopLagMonitor
from cli.main import cli
from tests.unit.cli_apiserver import no_traceback

BOB = UserInfo("bob", ("developers", AUTHENTICATED))
NODE = UserInfo("system:node:n1", ("system:nodes", AUTHENTICATED))
ADMIN = UserInfo("kubernetes-admin", (SYSTEM_MASTERS, AUTHENTICATED))


class FakeTime:
    """A clock that only the fake sleep moves: each sleep ends as late as `lateness` says.
    Each sleep first notes the monitor's average so far; with no lateness left, it waits
    to be cancelled and sets `done`."""

    def __init__(self, lateness: list[float]) -> None:
        self.now = 1000.0
        self.lateness = lateness
        self.averages: list[float] = []
        self.monitor: LoopLagMonitor | None = None
        self.done = asyncio.Event()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert self.monitor is not None
        if self.monitor.samples:
            self.averages.append(round(self.monitor.smoothed * 1000, 1))
        if not self.lateness:
            self.done.set()
            await asyncio.Event().wait()
        self.now += seconds + self.lateness.pop(0)


async def test_the_monitor_smooths_late_wakes_by_the_time_they_cover() -> None:
    # The module docstring's worked example: 20 ms sleeps, wakes 0.3, 30, 80, 150 ms late,
    # then the loop drains: 60, 20, 5 ms.
    fake = FakeTime([0.0003, 0.030, 0.080, 0.150, 0.060, 0.020, 0.005])
    monitor = fake.monitor = LoopLagMonitor(0.020, 0.100, clock=fake.clock, sleep=fake.sleep)
    monitor.start()
    await asyncio.wait_for(fake.done.wait(), 5)
    assert monitor.lag() == monitor.smoothed  # the pending wake is not due yet
    fake.now += 0.250  # the loop is stuck past the pending wake's due time
    assert monitor.lag() == pytest.approx(0.230)  # overdue: seen before the wake
    await monitor.stop()
    assert fake.averages == [0.1, 11.8, 54.9, 132.6, 92.6, 68.7, 54.6]
    assert monitor.samples == 7
    assert monitor.last == pytest.approx(0.005)
    assert monitor.lag() == monitor.smoothed  # stopped: nothing is pending


async def test_a_blocked_loop_is_seen_at_once_and_then_in_the_average() -> None:
    monitor = LoopLagMonitor()  # the real clock and sleep, 20 ms
    monitor.start()
    try:
        await asyncio.sleep(0.05)
        assert monitor.samples >= 1
        assert monitor.lag() < 0.1  # an idle loop is not behind
        samples = monitor.samples
        time.sleep(0.3)  # a callback holding the loop for 300 ms
        assert monitor.lag() >= 0.25  # the pending wake is overdue: behind now
        for _ in range(10):
            await asyncio.sleep(0)
            if monitor.samples > samples:
                break
        assert monitor.samples == samples + 1  # the late wake, recorded
        assert monitor.last >= 0.25
        assert monitor.smoothed >= 0.2  # one sample covering 300 ms weighs 95 %
        for _ in range(100):
            if monitor.lag() < 0.05:
                break
            await asyncio.sleep(0.05)
        assert monitor.lag() < 0.05  # and falls once the loop keeps up again
    finally:
        await monitor.stop()
        await monitor.stop()  # idempotent
    with pytest.raises(ValueError, match="interval and tau must be positive"):
        LoopLagMonitor(interval=0)


class SetLag(LoopLagMonitor):
    """A monitor whose lag the test sets (seconds)."""

    value = 0.0

    def lag(self) -> float:
        return self.value


def admit(limiter: InflightLimiter, user: UserInfo, verb: str, subresource: str = "") -> None:
    """One request, decided and finished (its slot, if any, given back)."""
    with request_scope():
        limiter.admit(user, verb, subresource)


def lagging_limiter(**limits: Any) -> tuple[InflightLimiter, SetLag]:
    monitor = SetLag()
    return InflightLimiter(InflightLimits(**limits), loop_lag=monitor), monitor


def test_a_write_is_refused_while_the_loop_lags_and_admitted_when_it_catches_up() -> None:
    limiter, monitor = lagging_limiter(max_loop_lag_ms=100)
    monitor.value = 0.150
    for user, verb, sub in [(BOB, "create", ""), (BOB, "update", "status"), (BOB, "delete", "")]:
        with pytest.raises(errors.TooManyRequests) as refused:
            admit(limiter, user, verb, sub)
        assert refused.value.message == "Too many requests, please try again later."
        assert refused.value.retry_after_seconds == 1
    assert limiter.dropped == {READ_ONLY: 0, MUTATING: 3}  # the pool's own counter
    assert limiter.in_flight == {READ_ONLY: 0, MUTATING: 0}  # no slot was taken
    admit(limiter, NODE, "update", "status")  # a node's writes are not refused for lag
    monitor.value = 0.100  # at the threshold is not over it
    admit(limiter, BOB, "create")
    monitor.value = 0.002
    admit(limiter, BOB, "update", "status")
    assert limiter.dropped[MUTATING] == 3


def test_reads_watches_long_running_requests_and_masters_are_never_refused_for_lag() -> None:
    limiter, monitor = lagging_limiter(max_loop_lag_ms=50)
    monitor.value = 5.0
    for verb, sub in [("get", ""), ("list", ""), ("watch", ""), ("get", "log")]:
        admit(limiter, BOB, verb, sub)
    for verb, sub in [("create", "exec"), ("create", "attach"), ("create", "portforward")]:
        admit(limiter, BOB, verb, sub)
    for verb in ("create", "update", "patch", "delete"):
        admit(limiter, ADMIN, verb)
    assert limiter.dropped == {READ_ONLY: 0, MUTATING: 0}
    limiter.admit(BOB, "create")  # outside a request scope: not counted, not refused
    with pytest.raises(errors.TooManyRequests):
        admit(limiter, BOB, "create")


def test_lag_refuses_even_with_free_slots_or_no_pool_limit() -> None:
    limiter, monitor = lagging_limiter(max_requests_inflight=0, max_mutating_requests_inflight=0)
    monitor.value = 0.5  # the default threshold, 100 ms
    with pytest.raises(errors.TooManyRequests):
        admit(limiter, BOB, "create")
    assert limiter.dropped[MUTATING] == 1


def test_a_threshold_of_zero_turns_the_trigger_off() -> None:
    limiter, monitor = lagging_limiter(max_loop_lag_ms=0)
    monitor.value = 10.0
    for _ in range(5):
        admit(limiter, BOB, "create")
    assert limiter.dropped == {READ_ONLY: 0, MUTATING: 0}
    assert not limiter.lagging()
    assert InflightLimiter(InflightLimits(max_loop_lag_ms=0)).loop_lag is None  # not measured


async def test_the_limiter_starts_and_stops_its_monitor() -> None:
    limiter = InflightLimiter(InflightLimits(max_loop_lag_ms=100))
    monitor = limiter.loop_lag
    assert isinstance(monitor, LoopLagMonitor)
    limiter.start()
    await asyncio.sleep(0.05)
    assert monitor.samples >= 1
    await limiter.stop()
    samples = monitor.samples
    await asyncio.sleep(0.03)
    assert monitor.samples == samples


def test_the_threshold_is_a_non_negative_integer() -> None:
    assert InflightLimits().max_loop_lag_ms == DEFAULT_MAX_LOOP_LAG_MS == 100
    with pytest.raises(ValueError, match="--max-loop-lag-ms must be a non-negative integer"):
        InflightLimits(max_loop_lag_ms=-1)
    with pytest.raises(ValueError, match="--max-loop-lag-ms"):
        InflightLimits(max_loop_lag_ms=0.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "words"),
    [("-1", "-1 is not in the range x>=0"), ("soon", "'soon' is not a valid integer")],
)
def test_the_flag_is_validated_before_anything_starts(
    tmp_path: Path, value: str, words: str
) -> None:
    args = ["apiserver", "--data-dir", str(tmp_path), "--max-loop-lag-ms", value]
    result = CliRunner().invoke(cli, args)
    no_traceback(result)
    assert result.exit_code == 2
    assert "--max-loop-lag-ms" in result.output and words in result.output
    assert not (tmp_path / "tinykube.db").exists()


@pytest.mark.parametrize(("given", "expected"), [([], DEFAULT_MAX_LOOP_LAG_MS), (["0"], 0)])
def test_the_flag_reaches_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: list[str], expected: int
) -> None:
    seen: dict[str, InflightLimits] = {}

    def serve_control_plane(*args: object, inflight: InflightLimits, **kwargs: object) -> None:
        seen["inflight"] = inflight
        raise RuntimeError("stop here")

    monkeypatch.setattr("controlplane.serve_control_plane", serve_control_plane)
    flag = ["--max-loop-lag-ms", *given] if given else []
    listen = ["--listen", f"unix:{tmp_path}/api.sock"]
    result = CliRunner().invoke(cli, ["apiserver", "--data-dir", str(tmp_path), *listen, *flag])
    assert result.exit_code == 1, result.output
    assert seen["inflight"] == InflightLimits(400, 200, expected)
