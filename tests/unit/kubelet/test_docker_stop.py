"""docker_stop against a fake Docker API: stop signal, polling, SIGKILL at the deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from kubelet.errors import ContainerRuntimeError, NotFoundError
from kubelet.runtime import docker_stop


class FakeAPI:
    """One container; `dies_on` lists the signals it exits on."""

    def __init__(self, running: bool = True, dies_on: tuple[str, ...] = ("SIGKILL",)) -> None:
        self.running = running
        self.exists = True
        self.dies_on = dies_on
        self.stop_signal = "SIGQUIT"
        self.signals: list[str] = []
        self.exit_during_kill = False

    def inspect_container(self, cid: str) -> dict[str, Any]:
        if not self.exists:
            raise NotFoundError(f"no such container {cid}")
        return {"State": {"Running": self.running}, "Config": {"StopSignal": self.stop_signal}}

    def kill(self, cid: str, signal: str) -> None:
        if self.exit_during_kill:
            self.running = False
        if not self.running:
            raise ContainerRuntimeError(f"Container {cid} is not running")
        self.signals.append(signal)
        if signal in self.dies_on:
            self.running = False


async def call(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


async def test_exits_on_its_stop_signal() -> None:
    api = FakeAPI(dies_on=("SIGQUIT", "SIGKILL"))
    await docker_stop.stop(call, api, "c1", 10)
    assert api.signals == ["SIGQUIT"] and not api.running


async def test_killed_after_the_grace_period() -> None:
    api = FakeAPI()
    api.stop_signal = ""  # no StopSignal in the image: SIGTERM
    started = time.monotonic()
    await docker_stop.stop(call, api, "c1", 1)
    assert api.signals == ["SIGTERM", "SIGKILL"]
    assert time.monotonic() - started >= 0.9


async def test_zero_timeout_kills_at_once() -> None:
    api = FakeAPI()
    await docker_stop.stop(call, api, "c1", 0)
    assert api.signals == ["SIGKILL"]


@pytest.mark.parametrize("case", ["exited", "gone", "exits during kill"])
async def test_nothing_to_stop_is_success(case: str) -> None:
    api = FakeAPI(running=case != "exited")
    api.exists = case != "gone"
    api.exit_during_kill = case == "exits during kill"
    await docker_stop.stop(call, api, "c1", 5)
    assert api.signals == []


async def test_a_kill_that_fails_on_a_running_container_is_an_error() -> None:
    api = FakeAPI()

    def refuse(cid: str, signal: str) -> None:
        raise ContainerRuntimeError("permission denied")

    api.kill = refuse  # type: ignore[method-assign]
    with pytest.raises(ContainerRuntimeError, match="permission denied"):
        await docker_stop.stop(call, api, "c1", 0)
