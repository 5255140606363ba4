"""A dashboard on the test's loop, and a raw HTTP/1.1 client to knock on its door.

The dashboard under test is the real one (cli/dashboard): informers on a real
API server through the real client, the real gate and routes on a loopback port.
The client here is deliberately raw (asyncio streams, bytes we write ourselves),
so a test can send what a browser would not: no cookie, a wrong one, a foreign
Host header, a POST. `events` reads the server-sent event stream through its
chunked framing, one event at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

from apimachinery.client import Client
from cli.dashboard.auth import new_secret
from cli.dashboard.live import LiveCluster
from cli.dashboard.server import DashboardServer
from cli.dashboard.traces import TraceFeed


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def data(self) -> Any:
        return json.loads(self.body)


@dataclass
class Dashboard:
    live: LiveCluster
    server: DashboardServer
    url: str
    secret: str

    @property
    def port(self) -> int:
        assert self.server.gate is not None
        return self.server.gate.port

    @property
    def cookie(self) -> str:
        """The Cookie header a logged-in browser sends."""
        assert self.server.gate is not None
        return f"{self.server.gate.cookie}={self.secret}"


@contextlib.asynccontextmanager
async def running_dashboard(
    client: Client, namespace: str = "default", min_interval: float = 0.05, traces: bool = False
) -> AsyncIterator[Dashboard]:
    feed = TraceFeed(client, interval=0.2) if traces else None
    live = LiveCluster(client, namespace, min_interval=min_interval, heartbeat=1.0, traces=feed)
    server = DashboardServer(live)
    try:
        await live.start(sync_timeout=10)
        secret = new_secret()
        url = await server.start(secret)
        yield Dashboard(live, server, url, secret)
    finally:
        await server.close()
        await live.stop()


def _head(method: str, path: str, port: int, host: str | None, cookie: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host or f'127.0.0.1:{port}'}"]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _parse_head(raw: bytes) -> tuple[int, dict[str, str]]:
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return status, headers


async def request(
    port: int, path: str, *, cookie: str = "", host: str | None = None, method: str = "GET"
) -> Answer:
    """One request on a fresh connection; the whole answer (not for streams)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(_head(method, path, port, host, cookie))
        await writer.drain()
        status, headers = _parse_head((await reader.readuntil(b"\r\n\r\n"))[:-4])
        body = await reader.read() if method != "HEAD" else b""
        return Answer(status, headers, body)
    finally:
        writer.close()


async def events(port: int, cookie: str) -> AsyncGenerator[tuple[str, str], None]:
    """(event, data) pairs from /api/events, as an EventSource would see them."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(_head("GET", "/api/events", port, None, cookie))
        await writer.drain()
        status, headers = _parse_head((await reader.readuntil(b"\r\n\r\n"))[:-4])
        assert status == 200, status
        assert headers["content-type"] == "text/event-stream"
        assert headers["transfer-encoding"] == "chunked"
        buffer = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            if size == 0:
                return
            buffer += (await reader.readexactly(size + 2))[:-2]
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                fields: dict[str, str] = {}
                for line in block.decode().split("\n"):
                    name, _, value = line.partition(":")
                    fields[name or "comment"] = value.lstrip()
                yield fields.get("event", ""), fields.get("data", "")
    finally:
        writer.close()


async def next_state(stream: AsyncIterator[tuple[str, str]], timeout: float = 5.0) -> Any:
    """The next `state` event's document (heartbeats and the retry line skipped)."""

    async def read() -> Any:
        async for event, data in stream:
            if event == "state":
                return json.loads(data)
        raise AssertionError("the event stream ended")

    return await asyncio.wait_for(read(), timeout)
