"""HTTP/1.1, as much as the Kubernetes API needs: requests in, responses out, watches streamed.

Go's net/http serves kube-apiserver; tinykube has no HTTP dependency, so this
module is the server, on asyncio streams. The TLS front has already
terminated TLS and relays the plain bytes over a unix socket (tlsfront.py),
so what arrives here is a byte stream of HTTP/1.1 requests:

    GET /api/v1/namespaces/default/pods?limit=500 HTTP/1.1\\r\\n
    Host: 127.0.0.1:6443\\r\\n
    Accept: application/json;as=Table;v=v1;g=meta.k8s.io, application/json\\r\\n
    \\r\\n

What it does, and the limits that keep a bad client from hurting the server:

* Keep-alive: a connection carries requests one after another until the
  client says `Connection: close` or goes away (kubectl reuses one
  connection for a whole command).
* Bodies: `Content-Length` or a chunked request body, at most `max_body`
  bytes (3 MiB, as the gRPC side): a larger one is refused with 413 *before*
  it is decoded or stored; what the client still sends of it is read and
  dropped (up to 64 MiB), so it can read the answer, and the connection is
  closed. `Expect: 100-continue` (curl sends
  it for big uploads) is answered once the size is known to be fine.
* Heads: at most 64 KiB of request line and headers (Go's default is 1 MiB;
  nothing the API accepts needs more than a few hundred bytes).
* Responses: a body of known length, or a stream (`Response.stream`) sent
  with `Transfer-Encoding: chunked`, one chunk per item, flushed at once:
  that is how a watch delivers each event as it happens. While a stream runs
  the connection is also read, so a client that hangs up ends the stream
  (and with it the watch) at once rather than at the next event.
* Upgrades: a handler may answer `101 Switching Protocols` with
  `Response.upgrade` set (a WebSocket for `kubectl exec`, SPDY/3.1 for its
  fallback and for `kubectl port-forward`; streams.py). The 101's head goes
  out and the connection's reader and writer are handed to that function:
  from then on the bytes are the new protocol's, whose own module bounds
  them (frame and message sizes); when it returns, the connection closes.
  The request that asks for an upgrade went through every check above, and
  through authentication and authorization, as any other.

The handler (router.py) is one async function: Request -> Response. Every
error it meets becomes a Kubernetes Status there; this module only answers
malformed HTTP itself, with a plain 400.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs, unquote, urlsplit

from apimachinery import errors

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = errors.MAX_REQUEST_BYTES
# After a 413: how much of the refused body is read and dropped, and how long a pause ends it.
DISCARD_BYTES = 64 * 1024 * 1024
DISCARD_SECONDS = 2.0


@dataclass
class Request:
    """One parsed request; header names are lower case, repeated headers joined with ", "."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""
    peer: str = ""

    def param(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str) -> bool:
        """A boolean query parameter as Go's strconv.ParseBool reads it (`watch=1`, `=true`)."""
        return self.param(name).lower() in ("1", "t", "true")


# Takes over an upgraded connection (after a 101): its reader and writer.
Upgrade = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Response:
    """A status, headers and either a body or a stream of chunks (watch, follow logs), or,
    with status 101, the function that takes the upgraded connection over."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    stream: AsyncIterator[bytes] | None = None
    upgrade: Upgrade | None = None


Handler = Callable[[Request], Awaitable[Response]]
# What to answer a request whose body is too large (the router's Status).
TooLarge = Callable[[], Response]


class BadHTTP(Exception):
    """A request that is not HTTP/1.1 we can read: answered with a plain 400 and closed."""


class BodyTooLarge(Exception):
    """The request's body is larger than the limit: answered with 413 and closed."""


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise BadHTTP("undecodable request head") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadHTTP(f"malformed request line {lines[0][:80]!r}")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadHTTP(f"malformed header line {line[:80]!r}")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return method, target, version, headers


def parse_target(target: str) -> tuple[str, dict[str, list[str]]]:
    """The decoded path and the query parameters of a request target."""
    parts = urlsplit(target)
    return unquote(parts.path) or "/", parse_qs(parts.query, keep_blank_values=True)


async def _read_body(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    headers: dict[str, str],
    max_body: int,
) -> bytes:
    expect = headers.get("expect", "").lower() == "100-continue"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        if expect:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return await _read_chunked(reader, max_body)
    length_text = headers.get("content-length", "0") or "0"
    if not length_text.isdigit():
        raise BadHTTP(f"bad Content-Length {length_text[:20]!r}")
    length = int(length_text)
    if length > max_body:
        raise BodyTooLarge()
    if expect and length:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    return await reader.readexactly(length) if length else b""


async def _read_chunked(reader: asyncio.StreamReader, max_body: int) -> bytes:
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";")[0].strip(), 16)
        except ValueError:
            raise BadHTTP("bad chunk size") from None
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailers: read and ignored
            return bytes(body)
        if len(body) + size > max_body:
            raise BodyTooLarge()
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def _discard(reader: asyncio.StreamReader) -> None:
    """Read and drop what a refused client is still sending (a while, up to a cap), so that
    it reads the 413 instead of a reset connection; then the connection closes."""
    left = DISCARD_BYTES
    with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
        while left > 0:
            data = await asyncio.wait_for(reader.read(min(left, 256 * 1024)), DISCARD_SECONDS)
            if not data:
                return
            left -= len(data)


def _head(response: Response, *, chunked: bool, close: bool) -> bytes:
    try:
        reason = HTTPStatus(response.status).phrase
    except ValueError:
        reason = ""
    lines = [f"HTTP/1.1 {response.status} {reason}"]
    if response.upgrade is not None:  # a 101 has no body: only the protocol's own headers
        lines.extend(f"{k}: {v}" for k, v in response.headers)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
    lines.append(f"Content-Type: {response.content_type}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    else:
        lines.append(f"Content-Length: {len(response.body)}")
    if close:
        lines.append("Connection: close")
    lines.extend(f"{k}: {v}" for k, v in response.headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


async def _send_stream(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stream: AsyncIterator[bytes]
) -> None:
    """Each item as one chunk, flushed; stops when the stream ends or the client hangs up."""

    async def pump() -> None:
        async for data in stream:
            if data:
                writer.write(b"%x\r\n%s\r\n" % (len(data), data))
                await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    sender = asyncio.ensure_future(pump())
    hangup = asyncio.ensure_future(reader.read(1))  # EOF (b"") when the client goes away
    try:
        await asyncio.wait({sender, hangup}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sender, hangup):
            task.cancel()
        await asyncio.gather(sender, hangup, return_exceptions=True)
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
    if sender.done() and not sender.cancelled() and sender.exception() is not None:
        raise ConnectionResetError("stream failed") from sender.exception()


async def serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    handler: Handler,
    too_large: TooLarge,
    *,
    max_body: int = MAX_BODY_BYTES,
) -> None:
    """Serve requests on one connection until the client closes it (or asks to)."""
    peer = writer.get_extra_info("peername") or ""
    peer = f"unix:{peer}" if isinstance(peer, str) and peer else str(peer)
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.LimitOverrunError:
                raise BadHTTP("request head too large") from None
            except asyncio.IncompleteReadError:
                return  # the client closed between requests
            method, target, version, headers = _parse_head(head[:-4])
            close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
            try:
                body = await _read_body(reader, writer, headers, max_body)
            except BodyTooLarge:
                writer.write(_head(response := too_large(), chunked=False, close=True))
                writer.write(response.body)
                await writer.drain()
                await _discard(reader)
                return
            path, query = parse_target(target)
            request = Request(method, path, query, headers, body, peer)
            response = await handler(request)
            if response.upgrade is not None:
                writer.write(_head(response, chunked=False, close=False))
                await response.upgrade(reader, writer)
                return  # the new protocol ended: so does the connection
            streaming = response.stream is not None and method != "HEAD"
            writer.write(_head(response, chunked=streaming, close=close or streaming))
            if response.stream is not None and streaming:
                await _send_stream(reader, writer, response.stream)
                return  # a stream ends the connection: the hang-up reader consumed it
            if method != "HEAD":
                writer.write(response.body)
            await writer.drain()
            if close:
                return
    except BadHTTP as err:
        text = f"400 Bad Request: {err}".encode()
        with contextlib.suppress(OSError):
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n")
            writer.write(b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(text), text))
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()


class HTTPServer:
    """The HTTP API's listeners (unix sockets the TLS fronts relay to) and their connections."""

    def __init__(self, handler: Handler, too_large: TooLarge) -> None:
        self.handler = handler
        self.too_large = too_large
        self._servers: list[asyncio.Server] = []
        self._connections: set[asyncio.Task[None]] = set()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await serve_connection(reader, writer, self.handler, self.too_large)
        except asyncio.CancelledError:
            pass  # close() ends the connection: a normal end for this task
        finally:
            self._connections.discard(task)

    async def listen(self, path: str) -> None:
        """Serve on a unix socket at `path` (made 0600: only the front connects)."""
        server = await asyncio.start_unix_server(self._connection, path=path, limit=MAX_HEAD_BYTES)
        os.chmod(path, 0o600)
        self._servers.append(server)

    async def close(self) -> None:
        """Stop listening and end every open connection (watches included)."""
        for server in self._servers:
            server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._servers.clear()
