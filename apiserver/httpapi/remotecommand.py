"""pods/exec's streams: stdin, stdout, stderr, the error channel and resizes, to and from the relay.

Kubernetes' kubelet serves exec with its streaming server
(pkg/kubelet/cri/streaming/remotecommand) and kube-apiserver proxies the
upgraded connection there. tinykube's API server speaks the same protocols to
kubectl itself and relays each stream over gRPC to the kubelet's ExecStream
(apiserver/proxy_streams.py: `servicer.open_exec_stream(user, start)`). The
protocol versions (apimachinery's util/remotecommand) differ in a few ways:

    version                channels                               the error channel carries
    v2.channel.k8s.io      error stdin stdout stderr              the error's text
    v3.channel.k8s.io      + resize (JSON {"Width": 80, "Height": 24}, one after another)
    v4.channel.k8s.io      the same                               a metav1.Status (JSON)
    v5.channel.k8s.io      + a close signal for stdin (WebSocket only: [255, 0])

Over a WebSocket each binary message is one channel's: its first byte is
the channel (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize, 255 close) and
the rest its data; over SPDY each channel is a stream the client opens with
the header `streamtype: error|stdin|stdout|stderr|resize` (its FIN is
stdin's EOF). Either way the end is the same: once the process has exited,
its exit status goes on the error channel, then every stream closes:

    {"metadata":{},"status":"Success"}
    {"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: ...",
     "reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}

and client-go turns the second into its CodeExitError, which kubectl prints
as `command terminated with exit code 3` and exits with 3. Another failure
mid-stream (the kubelet went away) is that error's Status, which kubectl
prints as `error: <message>`.

`relay()` is the part both transports share: it merges stdin and resizes
into the relay's requests (stdin's end ends them, or with a TTY becomes
`stdin_close`), writes the
kubelet's stdout and stderr to their channels (with a TTY there is no
stderr: the terminal merges them, so stderr goes to stdout), and ends with
the status. The transports (`Channels`) are in execstreams.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from apimachinery import errors
from apiserver.httpapi.status import status_object
from protos import kubelet_pb2

V2, V3, V4, V5 = (f"v{n}.channel.k8s.io" for n in (2, 3, 4, 5))
PROTOCOLS = [V5, V4, V3, V2]  # what this server serves, newest first
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
NON_ZERO_EXIT = "NonZeroExitCode"
EXIT_CODE_CAUSE = "ExitCode"


@dataclass(frozen=True)
class ExecOptions:
    """Kubernetes' PodExecOptions, as the query parameters give them."""

    command: tuple[str, ...]
    container: str = ""
    stdin: bool = False
    stdout: bool = False
    stderr: bool = False
    tty: bool = False

    def start(self, namespace: str, pod: str) -> kubelet_pb2.ExecStart:
        return kubelet_pb2.ExecStart(
            namespace=namespace,
            pod=pod,
            container=self.container,
            command=list(self.command),
            stdin=self.stdin,
            stdout=self.stdout,
            stderr=self.stderr,
            tty=self.tty,
        )


def exit_status(code: int, command: tuple[str, ...]) -> dict[str, Any]:
    """The Status a process's exit code puts on the error channel."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": "command terminated with non-zero exit code: "
        f"command '{' '.join(command)}' exited with {code}",
        "reason": NON_ZERO_EXIT,
        "details": {"causes": [{"reason": EXIT_CODE_CAUSE, "message": str(code)}]},
    }


def error_status(err: errors.StatusError) -> dict[str, Any]:
    return status_object(err)


def encode_status(status: dict[str, Any], protocol: str) -> bytes:
    """What the error channel carries: the Status (v4, v5), or the error's text (v2, v3)
    and nothing at all for success."""
    if protocol in (V4, V5):
        return json.dumps(status, separators=(",", ":")).encode()
    if status.get("status") == "Success":
        return b""
    return str(status.get("message", "")).encode()


class Channels(Protocol):
    """One transport's channels for an exec (execstreams.py: WebSocket, SPDY)."""

    def stdin(self) -> AsyncIterator[bytes]: ...  # the data; ends at the client's EOF

    def resizes(self) -> AsyncIterator[bytes]: ...  # the resize channel's raw bytes

    async def output(self, channel: int, data: bytes) -> None: ...


def sizes(raw: AsyncIterator[bytes]) -> AsyncIterator[kubelet_pb2.TerminalSize]:
    """The JSON objects on a resize channel, as they complete (a value may span reads)."""

    async def decode() -> AsyncIterator[kubelet_pb2.TerminalSize]:
        decoder, text = json.JSONDecoder(), ""
        async for chunk in raw:
            text += chunk.decode(errors="replace")
            while text.strip():
                try:
                    value, end = decoder.raw_decode(text.lstrip())
                except json.JSONDecodeError:
                    break  # incomplete: wait for more
                text = text.lstrip()[end:]
                if isinstance(value, dict):
                    width, height = value.get("Width", 0), value.get("Height", 0)
                    if isinstance(width, int) and isinstance(height, int):
                        yield kubelet_pb2.TerminalSize(width=max(width, 0), height=max(height, 0))
            if len(text) > 4096:
                return  # not JSON objects: stop listening to this channel

    return decode()


async def _merge(
    sources: list[AsyncIterator[kubelet_pb2.ExecStreamRequest]],
) -> AsyncIterator[kubelet_pb2.ExecStreamRequest]:
    """The messages of several sources as they come; ends when all have ended."""
    queue: asyncio.Queue[kubelet_pb2.ExecStreamRequest | None] = asyncio.Queue(16)

    async def drain(source: AsyncIterator[kubelet_pb2.ExecStreamRequest]) -> None:
        try:
            async for item in source:
                await queue.put(item)
        finally:
            await queue.put(None)

    tasks = [asyncio.ensure_future(drain(s)) for s in sources]
    try:
        live = len(tasks)
        while live:
            item = await queue.get()
            if item is None:
                live -= 1
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def requests(
    channels: Channels, options: ExecOptions
) -> AsyncIterator[kubelet_pb2.ExecStreamRequest]:
    """stdin and resizes, as the relay's requests. stdin's end is the end of the requests
    (the relay half-closes the call, which the kubelet reads as stdin's EOF) unless resizes
    may still follow (a TTY): then it is a `stdin_close` message. Ending the call rather
    than writing one more message matters: a message written to a call the kubelet has
    just finished makes gRPC report the call as failed (INTERNAL), and the process's last
    output and exit code, not yet read, would be lost; a half-close cannot fail that way."""

    async def stdin() -> AsyncIterator[kubelet_pb2.ExecStreamRequest]:
        async for data in channels.stdin():
            yield kubelet_pb2.ExecStreamRequest(stdin=data)
        if options.tty:
            yield kubelet_pb2.ExecStreamRequest(stdin_close=True)

    async def resizes() -> AsyncIterator[kubelet_pb2.ExecStreamRequest]:
        async for size in sizes(channels.resizes()):
            yield kubelet_pb2.ExecStreamRequest(resize=size)

    sources = []
    if options.stdin:
        sources.append(stdin())
    if options.tty:
        sources.append(resizes())
    return _merge(sources)


class ExecStream(Protocol):
    """What the relay gives (proxy_streams.KubeletStream): responses for our requests."""

    def relay(self, requests: AsyncIterator[Any]) -> AsyncIterator[Any]: ...

    async def aclose(self) -> None: ...


async def relay(
    stream: ExecStream,
    channels: Channels,
    options: ExecOptions,
    finish: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    """Run the exec to its end and hand its Status to `finish` (which writes the error
    channel and closes the streams).

    The exit code is the kubelet's last message; a failure reported after it (stdin's end
    sent to a call the kubelet had just finished makes gRPC report INTERNAL for that call)
    does not replace it: the process has exited, and with that code."""
    status: dict[str, Any] | None = None
    try:
        async for response in stream.relay(requests(channels, options)):
            kind = response.WhichOneof("payload")
            if kind == "stdout" and options.stdout:
                await channels.output(STDOUT, response.stdout)
            elif kind == "stderr" and (options.stderr or options.tty):
                await channels.output(STDOUT if options.tty else STDERR, response.stderr)
            elif kind == "exit_code":
                status = exit_status(response.exit_code, options.command)
    except errors.StatusError as err:
        if status is None:  # the exit code, once read, is the answer (see relay's docstring)
            status = error_status(err)
    finally:
        await stream.aclose()
    if status is None:
        status = error_status(
            errors.InternalError("error executing command in container: the stream ended early")
        )
    await finish(status)
