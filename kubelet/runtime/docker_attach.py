"""Streaming exec on Docker: the Engine API's exec with its connection hijacked (dockershim's).

`docker exec -i` and dockershim's streaming exec both do this: create the
exec, then start it on an HTTP request that the daemon upgrades into a raw
duplex socket -- stdin goes up it, the process's output comes down:

    POST /v1.41/containers/<id>/exec   {"Cmd": [...], "AttachStdin": true, "Tty": false, ...}
        -> {"Id": "<exec id>"}                     (the SDK's exec_create)
    POST /v1.41/exec/<exec id>/start   {"Detach": false, "Tty": false}
    Connection: Upgrade, Upgrade: tcp
        -> HTTP/1.1 101 UPGRADED, then the socket is the process's:
           we write stdin; shutting our write side down closes its stdin
           we read its output; without a TTY multiplexed in frames
              | stream (1 byte: 1 stdout, 2 stderr) | 0 0 0 | size (4 bytes, big-endian) | data
           with a TTY the terminal's bytes as they are
    POST /exec/<exec id>/resize?h=24&w=80          (the SDK's exec_resize)
    GET  /exec/<exec id>/json -> ExitCode          once the output has ended

A command that cannot be started ends the same way: Docker writes its
"OCI runtime exec failed ... executable file not found" on the stream (in
a stdout frame, "\r\n"-terminated) and reports exit code 126 or 127; the
session passes that line on as stderr, where the other runtimes put it,
and answers the exit code (as exec_sync does). The start request itself is written here over the
daemon's unix socket with asyncio: the SDK's hijacked socket would tie up a
worker thread for the life of the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from kubelet.errors import ContainerRuntimeError, NotFoundError
from kubelet.runtime.docker_client import API_VERSION
from kubelet.runtime.streaming import STDERR, STDOUT, ExecOptions, ExecSession

Call = Callable[..., Awaitable[Any]]
_STREAMS = {1: STDOUT, 2: STDERR}
_EXIT_WAIT = 10.0
# How the daemon reports, on the exec's stdout, a process it could not start.
NOT_STARTED = b"OCI runtime exec failed"


def socket_path(endpoint: str) -> str:
    """The daemon's unix socket from `unix:///var/run/docker.sock` or a bare path."""
    if endpoint.startswith("unix://"):
        return endpoint.removeprefix("unix://")
    if endpoint.startswith("/"):
        return endpoint
    raise ContainerRuntimeError(f"streaming exec needs a unix socket endpoint, not {endpoint}")


async def _upgrade(
    endpoint: str, exec_id: str, tty: bool
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """POST /exec/ID/start with Upgrade: tcp; the hijacked socket's streams."""
    path = socket_path(endpoint)
    try:
        reader, writer = await asyncio.open_unix_connection(path)
    except OSError as exc:
        raise ContainerRuntimeError(
            f"Cannot connect to the Docker daemon at unix://{path}. "
            f"Is the docker daemon running? ({exc.strerror})"
        ) from None
    body = json.dumps({"Detach": False, "Tty": tty}).encode()
    head = (
        f"POST /v{API_VERSION}/exec/{exec_id}/start HTTP/1.1\r\nHost: docker\r\n"
        f"Content-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode() + body)
    try:
        response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError):
        writer.close()
        raise ContainerRuntimeError(f"exec {exec_id}: the daemon did not start it") from None
    status = response.split(b"\r\n", 1)[0].decode(errors="replace")
    code = status.split(" ")[1] if status.count(" ") >= 1 else ""
    if code not in ("101", "200"):
        message = await _message(reader)
        writer.close()
        error = NotFoundError if code == "404" else ContainerRuntimeError
        raise error(f"exec {exec_id}: {message or status}")
    return reader, writer


async def _message(reader: asyncio.StreamReader) -> str:
    """The daemon's {"message": ...} of a refusal, as far as it arrives quickly."""
    with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
        raw = await asyncio.wait_for(reader.read(4096), 2)
        start = raw.find(b"{")
        if start >= 0:
            with contextlib.suppress(ValueError):
                return str(json.loads(raw[start : raw.rfind(b"}") + 1]).get("message", ""))
        return raw.decode(errors="replace").strip()
    return ""


class AttachAPI(Protocol):
    """The calls of the Docker SDK's APIClient an attached exec uses (the start is our own)."""

    def exec_create(
        self, container: str, cmd: list[str], stdout: bool, stderr: bool, stdin: bool, tty: bool
    ) -> dict[str, Any]: ...

    def exec_resize(self, exec_id: str, height: int, width: int) -> None: ...

    def exec_inspect(self, exec_id: str) -> dict[str, Any]: ...


class DockerExecSession(ExecSession):
    """An exec whose start call's connection is the process's stdin and output."""

    def __init__(
        self,
        call: Call,
        api: AttachAPI,
        exec_id: str,
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        options: ExecOptions,
    ) -> None:
        self._call, self._api, self.exec_id = call, api, exec_id
        self._reader, self._writer = connection
        self._options = options
        self._stdin_closed = not options.stdin

    @classmethod
    async def start(
        cls, call: Call, api: AttachAPI, endpoint: str, container_id: str, options: ExecOptions
    ) -> DockerExecSession:
        created = await call(
            f"exec in {container_id}",
            api.exec_create,
            container_id,
            list(options.command),
            stdout=options.stdout,
            stderr=options.stderr,
            stdin=options.stdin,
            tty=options.tty,
        )
        exec_id = str(created["Id"])
        connection = await _upgrade(endpoint, exec_id, options.tty)
        return cls(call, api, exec_id, connection, options)

    async def write_stdin(self, data: bytes) -> None:
        if self._stdin_closed or not data:
            return
        try:
            self._writer.write(data)
            await self._writer.drain()
        except ConnectionError as exc:
            raise ContainerRuntimeError(f"exec {self.exec_id}: stdin: {exc}") from None

    async def close_stdin(self) -> None:
        if self._stdin_closed:
            return
        self._stdin_closed = True
        with contextlib.suppress(ConnectionError, OSError):
            if self._writer.can_write_eof():
                self._writer.write_eof()

    async def resize(self, width: int, height: int) -> None:
        if self._options.tty:
            await self._call(
                "exec resize", self._api.exec_resize, self.exec_id, height=height, width=width
            )

    async def output(self) -> AsyncIterator[tuple[str, bytes]]:
        try:
            if self._options.tty:
                while data := await self._reader.read(32 * 1024):
                    yield STDOUT, data
                return
            while True:
                try:
                    head = await self._reader.readexactly(8)
                except asyncio.IncompleteReadError:
                    return
                kind, size = head[0], struct.unpack(">I", head[4:])[0]
                data = await self._reader.readexactly(size)
                if kind == 1 and data.startswith(NOT_STARTED):
                    yield STDERR, data.rstrip(b"\r\n") + b"\n"  # the daemon's, not the process's
                elif kind in _STREAMS and data:
                    yield _STREAMS[kind], data
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            raise ContainerRuntimeError(f"exec {self.exec_id}: output: {exc}") from None

    async def exit_code(self) -> int:
        """GET /exec/ID/json: ExitCode, once Docker has seen the process end."""
        deadline = asyncio.get_running_loop().time() + _EXIT_WAIT
        while True:
            info = await self._call("exec inspect", self._api.exec_inspect, self.exec_id)
            code = info.get("ExitCode")
            if not info.get("Running") and code is not None:
                return int(code)
            if asyncio.get_running_loop().time() > deadline:
                raise ContainerRuntimeError(f"exec {self.exec_id}: no exit code from the daemon")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
