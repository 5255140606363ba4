"""The client side of pods/exec with streams and pods/portforward: what `exec -i`, `cp` and
`port-forward` send and read (client-go's remotecommand and portforward packages).

kubectl upgrades an HTTP request to SPDY or WebSocket and multiplexes
stdin, stdout, stderr, the terminal's size and the exit status over it.
tinykube's API speaks the same operations as two bidirectional gRPC streams
of the Resources service (apiserver/proxy_streams.py), so a CLI session is:

    exec_session(client, start, stdin, out, err)
        -> PodExecStream: ExecStreamRequest(start); then, while they come,
           stdin chunks, stdin_close at stdin's end, resize on SIGWINCH;
        <- stdout / stderr chunks as the process writes them, and last its
           exit code, which `exec` makes its own ("command terminated with
           exit code 3" on stderr, as kubectl says)
    forward_connection(client, start, reader, writer)
        -> PodPortForward: PortForwardRequest(start), then the local socket's
           bytes as `data`, its end as close_write
        <- the pod's bytes, written to the local socket; their end closes it

The last message the server sends -- the exit code, or for a forward an
empty `data` (the pod closed its side) -- is answered by our half-close, and
nothing is written after it: the server ends the call only then (see
kubelet/streams.py, "Ending"), so a write never races the server's status.
Nothing but the start is sent before the API server's response headers
arrive -- they mean the process runs (the port is connected) -- so a refusal
(Forbidden, NotFound, a container not running) is read as the call's
status, not raced by stdin. Errors come back as the API's status errors (the
caller prints them as every verb does, cli/context.py); a stream that ends without an exit code
is a CommandError. Cancelling a session (Ctrl-C) cancels the call, which the
API server passes on to the kubelet.

`stdin_chunks()` reads the process's own stdin in a daemon thread (a
blocked read must not keep the process alive once the command has ended),
and `RawTerminal` puts a terminal in raw mode for `-t`, restoring it after.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import termios
import threading
import tty
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio

from cli.context import CommandError
from protos import kubelet_pb2

if TYPE_CHECKING:
    from apimachinery.client import Client

ExecReq = kubelet_pb2.ExecStreamRequest
PFReq = kubelet_pb2.PortForwardRequest
CHUNK = 32 * 1024


def _stub(client: Client) -> Any:
    return client._resources()  # the Resources service stub the client's verbs use


def _error(client: Client, exc: grpc.aio.AioRpcError) -> Exception:
    return client._connection.error(exc)


class _Sender:
    """Our side of a stream: writes one at a time, and none once we have half-closed."""

    def __init__(self, call: Any) -> None:
        self.call = call
        self.lock = asyncio.Lock()
        self.closed = False

    async def send(self, message: Any) -> bool:
        async with self.lock:
            if self.closed or self.call.done():
                return False
            try:
                await self.call.write(message)
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                self.closed = True
                return False
            return True

    async def close(self) -> None:
        """Half-close (once): the server may now end the call."""
        async with self.lock:
            if self.closed or self.call.done():
                self.closed = True
                return
            self.closed = True
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                await self.call.done_writing()


async def exec_session(
    client: Client,
    start: kubelet_pb2.ExecStart,
    stdin: AsyncIterator[bytes] | None,
    out: Callable[[bytes], object],
    err: Callable[[bytes], object],
    resizes: asyncio.Queue[tuple[int, int]] | None = None,
) -> int:
    """Run one PodExecStream to its end; the command's exit code."""
    call = _stub(client).PodExecStream()
    sender = _Sender(call)
    feeder: asyncio.Future[None] | None = None
    try:
        await call.write(ExecReq(start=start))
        await _opened(call)
        feeder = asyncio.ensure_future(_feed(sender, stdin, resizes))
        code: int | None = None
        async for response in call:
            kind = response.WhichOneof("payload")
            if kind == "stdout":
                out(response.stdout)
            elif kind == "stderr":
                err(response.stderr)
            elif kind == "exit_code":
                code = response.exit_code
                await sender.close()  # the last message: we close, then the server ends
                feeder.cancel()
        if code is None:
            raise CommandError("the exec stream ended without the command's exit code")
        return code
    except grpc.aio.AioRpcError as exc:
        raise _error(client, exc) from None
    finally:
        if feeder is not None:
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
        call.cancel()


async def _opened(call: Any) -> None:
    """Wait for the API server's response headers: the process runs (or the port is
    connected). A refusal instead ends the call, and reading it raises the refusal."""
    await call.initial_metadata()
    if call.done():
        await call.read()  # the call's error (or EOF, for a call that ended cleanly)


async def _feed(
    sender: _Sender,
    stdin: AsyncIterator[bytes] | None,
    resizes: asyncio.Queue[tuple[int, int]] | None,
) -> None:
    sizes = asyncio.ensure_future(_sizes(sender, resizes)) if resizes is not None else None
    try:
        if stdin is not None:
            async for chunk in stdin:
                if not await sender.send(ExecReq(stdin=chunk)):
                    return
            await sender.send(ExecReq(stdin_close=True))
        if sizes is None:
            await sender.close()
        else:
            await sizes  # a terminal's size may change until the command ends
    finally:
        if sizes is not None:
            sizes.cancel()


async def _sizes(sender: _Sender, resizes: asyncio.Queue[tuple[int, int]]) -> None:
    while True:
        width, height = await resizes.get()
        size = kubelet_pb2.TerminalSize(width=width, height=height)
        if not await sender.send(ExecReq(resize=size)):
            return


async def stdin_chunks(source: Any = None) -> AsyncIterator[bytes]:
    """The bytes of our stdin as they arrive (a daemon thread reads), until its end."""
    stream = source if source is not None else sys.stdin.buffer
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    # A real descriptor is read with os.read: a daemon thread blocked inside a buffered
    # reader's lock at exit is a fatal error for the interpreter; a raw read is not.
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        fd = -1

    def read(size: int) -> bytes:
        if fd >= 0:
            return os.read(fd, size)
        chunk: bytes = getattr(stream, "read1", stream.read)(size)
        return chunk

    def pump() -> None:
        with contextlib.suppress(OSError, ValueError, RuntimeError):  # RuntimeError: no loop
            while chunk := read(CHUNK):
                loop.call_soon_threadsafe(queue.put_nowait, bytes(chunk))
        with contextlib.suppress(RuntimeError):  # the loop may be gone already
            loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=pump, name="stdin", daemon=True).start()
    while (chunk := await queue.get()) is not None:
        yield chunk


async def forward_connection(
    client: Client,
    start: kubelet_pb2.PortForwardStart,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    """Join one accepted local connection to the pod's port, until the pod's side ends."""
    call = _stub(client).PodPortForward()
    sender = _Sender(call)
    feeder: asyncio.Future[None] | None = None
    try:
        await call.write(PFReq(start=start))
        await _opened(call)
        feeder = asyncio.ensure_future(_feed_port(sender, reader))
        async for response in call:
            if not response.data:  # the pod closed its side: the forward is over
                await sender.close()
                feeder.cancel()
                continue
            writer.write(response.data)
            await writer.drain()
    except grpc.aio.AioRpcError as exc:
        raise _error(client, exc) from None
    finally:
        if feeder is not None:
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
        call.cancel()
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()
            await writer.wait_closed()


async def _feed_port(sender: _Sender, reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(CHUNK):
            if not await sender.send(PFReq(data=data)):
                return
    await sender.send(PFReq(close_write=True))
    await sender.close()


class RawTerminal:
    """stdin's terminal in raw mode (keys go to the container as typed), restored at exit;
    its size now and on every SIGWINCH into `resizes`."""

    def __init__(self) -> None:
        self.resizes: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
        self._saved: Any = None

    def __enter__(self) -> RawTerminal:
        fd = sys.stdin.fileno()
        self._saved = termios.tcgetattr(fd)
        tty.setraw(fd)
        self._push_size()
        with contextlib.suppress(RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGWINCH, self._push_size)
        return self

    def _push_size(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            columns, lines = os.get_terminal_size(sys.stdout.fileno())
            self.resizes.put_nowait((columns, lines))

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGWINCH)
        termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self._saved)
