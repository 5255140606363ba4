"""The in-flight limiter by itself: its two pools, what it never counts, and its flags.

Each request here is an asyncio task in its own `request_scope()`, as the
servicer's `_call` and the HTTP API's `handle` open one per request; it takes
its slot and holds it until its `release` event is set. Through a real server
and real identities: test_inflight_server.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner

from apimachinery import errors
from apiserver.auth.authorizer import (
    AUTHENTICATED,
    CONTROLLER_MANAGER,
    SCHEDULER,
    SYSTEM_MASTERS,
    SYSTEM_NODES,
    UserInfo,
)
from apiserver.inflight import (
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
ADMIN = UserInfo("kubernetes-admin", (SYSTEM_MASTERS, AUTHENTICATED))


class Requests:
    """Requests in flight against one limiter: each holds its slot until released."""

    def __init__(self, limiter: InflightLimiter) -> None:
        self.limiter = limiter
        self.release = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self, user: UserInfo, verb: str, subresource: str = "") -> None:
        """A request that passed admission and now waits; raises what admit raised."""
        admitted = asyncio.get_running_loop().create_future()

        async def request() -> None:
            with request_scope():
                try:
                    self.limiter.admit(user, verb, subresource)
                    self.limiter.admit(user, verb, subresource)  # a second check: no second slot
                except errors.StatusError as err:
                    admitted.set_exception(err)
                    return
                admitted.set_result(None)
                await self.release.wait()

        self.tasks.append(asyncio.ensure_future(request()))
        await admitted

    async def finish(self) -> None:
        self.release.set()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def test_the_next_mutating_request_is_refused_and_a_read_still_served() -> None:
    limiter = InflightLimiter(
        InflightLimits(max_requests_inflight=1, max_mutating_requests_inflight=2)
    )
    reqs = Requests(limiter)
    try:
        await reqs.start(BOB, "create")
        await reqs.start(BOB, "update", "status")
        assert limiter.in_flight == {READ_ONLY: 0, MUTATING: 2}
        with pytest.raises(errors.TooManyRequests) as refused:
            await reqs.start(BOB, "patch")
        assert refused.value.message == "Too many requests, please try again later."
        assert refused.value.retry_after_seconds == 1
        assert limiter.dropped == {READ_ONLY: 0, MUTATING: 1}
        await reqs.start(BOB, "list")  # the other pool
        with pytest.raises(errors.TooManyRequests):
            await reqs.start(BOB, "get")
        assert limiter.dropped == {READ_ONLY: 1, MUTATING: 1}
    finally:
        await reqs.finish()
    assert limiter.in_flight == {READ_ONLY: 0, MUTATING: 0}


async def test_long_running_requests_are_never_counted() -> None:
    limiter = InflightLimiter(
        InflightLimits(max_requests_inflight=1, max_mutating_requests_inflight=1)
    )
    reqs = Requests(limiter)
    try:
        for verb, sub in [("watch", ""), ("get", "log"), ("create", "exec"), ("create", "attach")]:
            await reqs.start(BOB, verb, sub)
        await reqs.start(BOB, "create", "portforward")
        assert limiter.in_flight == {READ_ONLY: 0, MUTATING: 0}
        await reqs.start(BOB, "get")
        await reqs.start(BOB, "delete")
        assert limiter.in_flight == {READ_ONLY: 1, MUTATING: 1}
    finally:
        await reqs.finish()


async def test_system_masters_are_served_when_the_pool_is_full() -> None:
    limiter = InflightLimiter(
        InflightLimits(max_requests_inflight=1, max_mutating_requests_inflight=1)
    )
    reqs = Requests(limiter)
    try:
        await reqs.start(ADMIN, "create")  # a free slot: the admin takes it
        with pytest.raises(errors.TooManyRequests):
            await reqs.start(BOB, "create")
        for _ in range(5):
            await reqs.start(ADMIN, "update")  # full: served without a slot
        assert limiter.in_flight[MUTATING] == 1
        assert limiter.dropped[MUTATING] == 1
    finally:
        await reqs.finish()
    assert limiter.in_flight[MUTATING] == 0


async def test_a_limit_of_zero_is_no_limit() -> None:
    limiter = InflightLimiter(
        InflightLimits(max_requests_inflight=0, max_mutating_requests_inflight=0)
    )
    reqs = Requests(limiter)
    try:
        for i in range(50):
            await reqs.start(BOB, "create" if i % 2 else "list")
        assert limiter.dropped == {READ_ONLY: 0, MUTATING: 0}
    finally:
        await reqs.finish()


async def test_a_slot_is_freed_when_the_request_fails_or_is_cancelled() -> None:
    limiter = InflightLimiter(
        InflightLimits(max_requests_inflight=1, max_mutating_requests_inflight=1)
    )

    async def failing() -> None:
        with request_scope():
            limiter.admit(BOB, "create")
            raise errors.Invalid("bad")

    with pytest.raises(errors.Invalid):
        await failing()
    assert limiter.in_flight[MUTATING] == 0

    reqs = Requests(limiter)
    await reqs.start(BOB, "create")
    assert limiter.in_flight[MUTATING] == 1
    reqs.tasks[0].cancel()  # the client went away mid-request
    await asyncio.gather(*reqs.tasks, return_exceptions=True)
    assert limiter.in_flight[MUTATING] == 0
    await reqs.start(BOB, "create")
    await reqs.finish()
    assert limiter.in_flight[MUTATING] == 0


def test_a_check_outside_a_request_scope_takes_nothing() -> None:
    limiter = InflightLimiter(
        InflightLimits(max_requests_inflight=1, max_mutating_requests_inflight=1)
    )
    for _ in range(3):
        limiter.admit(BOB, "create")
    assert limiter.in_flight[MUTATING] == 0


def test_limits_must_be_non_negative_integers() -> None:
    assert InflightLimits() == InflightLimits(400, 200)  # Kubernetes' defaults
    with pytest.raises(ValueError, match="--max-requests-inflight must be a non-negative integer"):
        InflightLimits(max_requests_inflight=-1)
    with pytest.raises(ValueError, match="--max-mutating-requests-inflight"):
        InflightLimits(max_mutating_requests_inflight=-5)


@pytest.mark.parametrize("flag", ["--max-requests-inflight", "--max-mutating-requests-inflight"])
@pytest.mark.parametrize(
    ("value", "words"),
    [("-1", "-1 is not in the range x>=0"), ("many", "'many' is not a valid integer")],
)
def test_the_flags_are_validated_before_anything_starts(
    tmp_path: Path, flag: str, value: str, words: str
) -> None:
    result = CliRunner().invoke(cli, ["apiserver", "--data-dir", str(tmp_path), flag, value])
    no_traceback(result)
    assert result.exit_code == 2
    assert flag in result.output and words in result.output
    assert not (tmp_path / "tinykube.db").exists()


class Lagging(LoopLagMonitor):
    """A monitor that reports the lag it is given, never started."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def lag(self) -> float:
        return self.seconds


@pytest.mark.parametrize(
    "user",
    [
        UserInfo("system:node:node1", (SYSTEM_NODES, AUTHENTICATED)),
        UserInfo(SCHEDULER, (AUTHENTICATED,)),
        UserInfo(CONTROLLER_MANAGER, (AUTHENTICATED,)),
        ADMIN,
    ],
    ids=["node", "scheduler", "controller-manager", "admin"],
)
async def test_the_clusters_own_components_write_while_the_loop_lags(user: UserInfo) -> None:
    limiter = InflightLimiter(loop_lag=Lagging(0.5))  # 500 ms, over the default 100
    requests = Requests(limiter)
    try:
        await requests.start(user, "update", "status")  # a node's status, a lease renewal
        await requests.start(user, "create")
        with pytest.raises(errors.TooManyRequests):
            await requests.start(BOB, "create")  # a user's write is what lag refuses
        assert limiter.dropped == {READ_ONLY: 0, MUTATING: 1}
    finally:
        await requests.finish()


async def test_a_lag_exempt_node_still_takes_a_slot_of_its_pool() -> None:
    node = UserInfo("system:node:node1", (SYSTEM_NODES, AUTHENTICATED))
    limiter = InflightLimiter(InflightLimits(max_mutating_requests_inflight=1), Lagging(0.5))
    requests = Requests(limiter)
    try:
        await requests.start(node, "create")
        with pytest.raises(errors.TooManyRequests):  # lag-exempt is not pool-exempt
            await requests.start(node, "create")
    finally:
        await requests.finish()
