"""Running a command in a Docker container and waiting for it: CRI's ExecSync over the
Docker Engine API (dockershim's exec.go), with a timeout that leaves nothing behind.

Three calls make one exec, as `docker exec` does:

    POST /containers/<id>/exec     create the exec (the command, stdout/stderr wanted)
    POST /exec/<id>/start          run it; the response is the multiplexed output,
                                   which the SDK splits into stdout and stderr (demux)
    GET  /exec/<id>/json           its ExitCode once it has ended

The start call blocks until the command ends, so it runs in a worker thread
(docker_client.call). A probe's command may hang; waiting for it past its
timeout would hold that thread for good. So on timeout the command's
process is killed -- its host pid is in the exec's inspect (the kubelet
shares dockerd's pid namespace) -- which also ends the blocked start call,
and ExecTimeout is raised. A command that cannot be started is not an error:
Docker reports exit code 126 or 127 with its message, as `kubectl exec` shows.

Worked example: a liveness probe `cat /tmp/healthy` with timeoutSeconds 1
whose filesystem hangs: after 1 s the `cat` (host pid 4242 in the exec's
inspect) gets SIGKILL, the start call returns, and the prober records a
failure "command timed out".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from kubelet.errors import ContainerRuntimeError, ExecTimeout
from kubelet.runtime.interface import ExecResult

# DockerRuntime._call: (what, fn, *args, **kwargs) -> fn's result, errors translated.
Call = Callable[..., Awaitable[Any]]


class ExecAPI(Protocol):
    """The three calls of the Docker SDK's APIClient that an exec uses."""

    def exec_create(
        self, container: str, cmd: list[str], stdout: bool, stderr: bool
    ) -> dict[str, Any]: ...

    def exec_start(self, exec_id: str, demux: bool) -> tuple[bytes | None, bytes | None]: ...

    def exec_inspect(self, exec_id: str) -> dict[str, Any]: ...


async def exec_sync(
    call: Call, api: ExecAPI, container_id: str, command: Sequence[str], timeout: float
) -> ExecResult:
    """The three calls of the module docstring; ExecTimeout after `timeout` s (0: none)."""
    what = f"exec in {container_id}"
    created = await call(
        what, api.exec_create, container_id, list(command), stdout=True, stderr=True
    )
    exec_id = str(created["Id"])

    def run() -> ExecResult:
        out, err = api.exec_start(exec_id, demux=True)
        code = api.exec_inspect(exec_id).get("ExitCode")
        return ExecResult(int(code if code is not None else 126), out or b"", err or b"")

    task = asyncio.ensure_future(call(what, run))
    try:
        result: ExecResult = await asyncio.wait_for(
            asyncio.shield(task), timeout if timeout > 0 else None
        )
        return result
    except asyncio.TimeoutError:
        await kill_exec(call, api, exec_id)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)
        raise ExecTimeout(f"command {list(command)} timed out after {timeout}s") from None


async def kill_exec(call: Call, api: ExecAPI, exec_id: str) -> None:
    """SIGKILL the exec's process, if it still runs (its host pid from the exec's inspect)."""
    with contextlib.suppress(ContainerRuntimeError):
        info = await call("exec inspect", api.exec_inspect, exec_id)
        pid = int(info.get("Pid") or 0)
        if pid > 0 and info.get("Running"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
