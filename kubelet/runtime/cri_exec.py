"""CRI Exec with streams: the URL containerd answers with, spoken to as client-go speaks it.

Kubernetes' kubelet gets a URL from the runtime (CRI Exec) and the API server
connects `kubectl exec -i` straight to it. tinykube's kubelet is that client
itself, with the remote command protocol v4.channel.k8s.io over SPDY/3.1
(spdy.py says why SPDY and not WebSocket):

    kubelet --CRI Exec{container_id, cmd, tty, stdin, stdout, stderr}--> containerd
            <-- url "http://127.0.0.1:40213/exec/Xx8hQ2Ao"   (one-time; containerd's
                                                             stream_server_address)
    kubelet --POST url, Upgrade: SPDY/3.1--> the streaming server, then one stream each:
        streamtype=error                 the server writes the exit status here, last
        streamtype=stdin   (if asked)    our bytes; FIN = stdin's end
        streamtype=stdout  (if asked)    the process's output
        streamtype=stderr  (if asked, never with a TTY)
        streamtype=resize  (with a TTY)  {"Width":80,"Height":24} per change

The server starts the process once every expected stream is open, copies
until the process exits and its output is drained, then writes a v4 status
on the error stream and closes the connection:

    {"status":"Success"}                                              -> exit 0
    {"status":"Failure","reason":"NonZeroExitCode",
     "details":{"causes":[{"reason":"ExitCode","message":"3"}]}}       -> exit 3
    {"status":"Failure","message":"... executable file not found ..."} -> exit 127, the
                                                   message on stderr (as ExecSync answers)
    any other Failure                                                 -> ContainerRuntimeError

containerd runs in the node's network namespace and its streaming server
listens on 127.0.0.1 (localcluster/containerd.py), which is where the
kubelet, on the same node, dials it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from kubelet.errors import ContainerRuntimeError
from kubelet.runtime.spdy import SpdyClient, SpdyError, Stream
from kubelet.runtime.streaming import STDERR, STDOUT, ExecOptions, ExecSession, not_started

V4 = "v4.channel.k8s.io"
# What we offer; only v4 carries the exit code as a structured status.
PROTOCOLS = (V4,)


def exit_status(raw: bytes) -> tuple[int, str]:
    """(exit code, message) of a v4 status; message set when the process never ran."""
    if not raw.strip():
        raise ContainerRuntimeError("the streaming server ended without an exit status")
    try:
        status: dict[str, Any] = json.loads(raw)
    except ValueError:
        raise ContainerRuntimeError(f"an unreadable exec status: {raw[:200]!r}") from None
    if status.get("status") == "Success":
        return 0, ""
    message = str(status.get("message") or "the command failed")
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                with contextlib.suppress(ValueError, TypeError):
                    return int(cause.get("message")), ""
    code = not_started(message)
    if code is None:
        raise ContainerRuntimeError(message)
    return code, message


class CRIExecSession(ExecSession):
    """A process started by containerd's streaming server, spoken to over SPDY."""

    def __init__(self, client: SpdyClient, streams: dict[str, Stream], tty: bool) -> None:
        self._client = client
        self._streams = streams
        self._tty = tty
        self._stdin_closed = False
        self._code: int | None = None

    @classmethod
    async def start(cls, url: str, options: ExecOptions) -> CRIExecSession:
        client = await SpdyClient.connect(url, PROTOCOLS)
        try:
            if client.protocol != V4:
                raise SpdyError(
                    f"the streaming server chose protocol {client.protocol!r}, not {V4}"
                )
            wanted = ["error"]
            wanted += ["stdin"] if options.stdin else []
            wanted += ["stdout"] if options.stdout else []
            wanted += ["stderr"] if options.stderr and not options.tty else []
            wanted += ["resize"] if options.tty else []
            streams = {kind: await client.open_stream({"streamType": kind}) for kind in wanted}
        except BaseException:
            await client.close()
            raise
        return cls(client, streams, options.tty)

    async def write_stdin(self, data: bytes) -> None:
        stream = self._streams.get("stdin")
        if stream is not None and not self._stdin_closed and data:
            await stream.write(data)

    async def close_stdin(self) -> None:
        stream = self._streams.get("stdin")
        if stream is not None and not self._stdin_closed:
            self._stdin_closed = True
            with contextlib.suppress(SpdyError):
                await stream.close_write()

    async def resize(self, width: int, height: int) -> None:
        stream = self._streams.get("resize")
        if stream is not None:
            await stream.write(json.dumps({"Width": width, "Height": height}).encode())

    async def output(self) -> AsyncIterator[tuple[str, bytes]]:
        queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()
        readers = [
            asyncio.ensure_future(_drain(self._streams[kind], kind, queue))
            for kind in (STDOUT, STDERR)
            if kind in self._streams
        ]
        try:
            ended = 0
            while ended < len(readers):
                item = await queue.get()
                if item is None:
                    ended += 1
                else:
                    yield item
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
        raw = b""
        while chunk := await self._streams["error"].read():
            raw += chunk
        self._code, message = exit_status(raw)
        if message:
            yield (STDOUT if self._tty else STDERR), (message + "\n").encode()

    async def exit_code(self) -> int:
        if self._code is None:
            raise ContainerRuntimeError("the exec's output was not read to its end")
        return self._code

    async def close(self) -> None:
        await self._client.close()


async def _drain(stream: Stream, kind: str, queue: asyncio.Queue[tuple[str, bytes] | None]) -> None:
    try:
        while data := await stream.read():
            queue.put_nowait((kind, data))
    finally:
        queue.put_nowait(None)
