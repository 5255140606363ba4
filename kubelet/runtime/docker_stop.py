"""Stopping a Docker container with a grace period, without holding a thread for it.

CRI's StopContainer(timeout) is Docker's `POST /containers/<id>/stop?t=<timeout>`:
the daemon sends the image's StopSignal, waits, then SIGKILLs. But that
request blocks until the container is gone -- up to the whole grace period
(30 s by default) -- and every SDK call runs in asyncio's default thread
pool, which has min(32, CPUs + 4) threads: six on these 2-core machines.
Six pods deleted at once, each with a container that ignores SIGTERM,
would fill the pool for 30 s and stall every other runtime call of the
kubelet (PLEG relists, pod status, new pods).

So the adapter does what dockerd does, in short calls:

1. inspect: gone or not running -> done (stop is idempotent);
2. `POST /containers/<id>/kill?signal=<StopSignal>` (SIGTERM unless the
   image says otherwise -- SIGQUIT for nginx, which then finishes its
   requests and exits);
3. poll the state every 50 ms, doubling up to 0.5 s, until it has exited
   or the grace period is over;
4. `POST /containers/<id>/kill?signal=SIGKILL`, and poll until the state
   says exited, so the caller sees EXITED when stop returns.

A timeout of 0 goes straight to step 4. A kill answered with 409 (the
container exited between two calls) is success.

Worked example: `stop(nginx, 10)` sends SIGQUIT; nginx exits after ~0.1 s;
the polls at 0.05 s and 0.15 s see it running then exited: three short
calls instead of one held thread.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from kubelet.errors import ContainerRuntimeError, NotFoundError

# DockerRuntime._call: (what, fn, *args, **kwargs) -> fn's result, errors translated.
Call = Callable[..., Awaitable[Any]]


class ContainerAPI(Protocol):
    """The two calls of the Docker SDK's APIClient that stopping a container uses."""

    def inspect_container(self, container: str) -> dict[str, Any]: ...

    def kill(self, container: str, signal: str) -> None: ...


FIRST_POLL = 0.05
MAX_POLL = 0.5
KILL_WAIT = 10.0


async def running(call: Call, api: ContainerAPI, container_id: str) -> bool:
    try:
        attrs = await call(f"container {container_id}", api.inspect_container, container_id)
    except NotFoundError:
        return False
    return bool((attrs.get("State") or {}).get("Running"))


async def send_signal(call: Call, api: ContainerAPI, container_id: str, signal_name: str) -> bool:
    """POST /containers/<id>/kill; False when it is gone or no longer running."""
    try:
        await call(f"kill container {container_id}", api.kill, container_id, signal=signal_name)
    except NotFoundError:
        return False
    except ContainerRuntimeError:
        if not await running(call, api, container_id):
            return False  # 409: it exited meanwhile
        raise
    return True


async def stop(call: Call, api: ContainerAPI, container_id: str, timeout: float) -> None:
    """The steps of the module docstring; idempotent."""
    what = f"stop container {container_id}"
    seconds = max(0, math.ceil(timeout))
    try:
        attrs = await call(what, api.inspect_container, container_id)
    except NotFoundError:
        return
    if not (attrs.get("State") or {}).get("Running"):
        return
    stop_signal = str((attrs.get("Config") or {}).get("StopSignal") or "SIGTERM")
    if seconds > 0 and await send_signal(call, api, container_id, stop_signal):
        deadline = time.monotonic() + seconds
        delay = FIRST_POLL
        while time.monotonic() < deadline:
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            if not await running(call, api, container_id):
                return
            delay = min(delay * 2, MAX_POLL)
    if await send_signal(call, api, container_id, "SIGKILL"):
        deadline = time.monotonic() + KILL_WAIT
        while time.monotonic() < deadline:
            if not await running(call, api, container_id):
                return
            await asyncio.sleep(FIRST_POLL)
        raise ContainerRuntimeError(f"{what}: still running {KILL_WAIT:.0f}s after SIGKILL")
