"""A small Chrome DevTools Protocol client: headless Chromium driven over its WebSocket.

Playwright would download its own browser from the internet; these machines have
none, and Debian's `chromium` speaks the same protocol Playwright speaks to it.
The protocol is JSON messages over one WebSocket per target:

    -> {"id": 1, "method": "Page.navigate", "params": {"url": "http://127.0.0.1:4123/"}}
    <- {"id": 1, "result": {"frameId": "..."}}
    <- {"method": "Page.loadEventFired", "params": {"timestamp": 1234.5}}      (an event)

How the pieces are found:

1. `chromium --headless --remote-debugging-port=0 --user-data-dir=D about:blank`
   picks a free port and writes it, with the browser's WebSocket path, to
   D/DevToolsActivePort (two lines);
2. GET http://127.0.0.1:PORT/json/list names the page targets, each with its
   `webSocketDebuggerUrl`;
3. the client opens that WebSocket (RFC 6455: a masked client, frames from
   apiserver/httpapi/websocket.py, the framing the API server's exec uses) and
   sends commands; a reader task hands each answer to the waiting command and
   keeps every event in `events` (console messages, exceptions, CSP reports).

Everything is on loopback and in a temporary profile directory, removed on close.
`chromium_path()` is None where Debian's chromium is not installed; tests skip then.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from apiserver.httpapi.websocket import CLOSE, TEXT, encode_frame, read_frame

CANDIDATES = ("chromium", "chromium-browser")
MAX_MESSAGE = 64 * 1024 * 1024  # a full-page screenshot is a few MiB of base64


class CDPError(Exception):
    """A command the browser refused, or a browser that did not start."""


def chromium_path() -> str | None:
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


async def _http_json(port: int, path: str) -> Any:
    """GET a DevTools JSON document (the browser keeps the connection open: read by length)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        await writer.drain()
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        length = next(
            int(line.split(":", 1)[1])
            for line in head.split("\r\n")
            if line.startswith("content-length:")
        )
        return json.loads(await reader.readexactly(length))
    finally:
        writer.close()


class Browser:
    """One headless Chromium and a session on its first page."""

    def __init__(self, proc: subprocess.Popen[bytes], profile: Path) -> None:
        self.proc = proc
        self.profile = profile
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._task: asyncio.Task[None] | None = None
        self._loaded = asyncio.Event()

    @classmethod
    async def launch(cls, width: int = 1600, height: int = 1000, timeout: float = 30) -> Browser:
        binary = chromium_path()
        if binary is None:
            raise CDPError("chromium not found: apt-get install chromium")
        profile = Path(tempfile.mkdtemp(prefix="tinykube-chromium-"))
        argv = [
            binary,
            "--headless",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--hide-scrollbars",
            f"--window-size={width},{height}",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ]
        if os.geteuid() == 0:
            argv.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        with open(profile / "chromium.log", "wb") as log:  # chatty: a pipe could fill and stall it
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log)
        browser = cls(proc, profile)
        try:
            await browser._attach(timeout)
        except BaseException:
            await browser.close()
            raise
        return browser

    async def _attach(self, timeout: float) -> None:
        marker = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (marker.exists() and marker.read_text().count("\n") >= 1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = (self.profile / "chromium.log").read_text(errors="replace")
                raise CDPError(f"chromium did not start: {err[-2000:]}")
            await asyncio.sleep(0.1)
        port = int(marker.read_text().splitlines()[0])
        pages = [t for t in await _http_json(port, "/json/list") if t["type"] == "page"]
        if not pages:
            raise CDPError("chromium has no page target")
        url = urlsplit(pages[0]["webSocketDebuggerUrl"])
        await self._connect(url.hostname or "127.0.0.1", url.port or port, url.path)
        for domain in ("Page", "Runtime", "Log"):
            await self.send(f"{domain}.enable")

    async def _connect(self, host: str, port: int, path: str) -> None:
        self.reader, self.writer = await asyncio.open_connection(host, port, limit=MAX_MESSAGE)
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise CDPError(f"no WebSocket upgrade: {head[:200]!r}")
        self._task = asyncio.ensure_future(self._read_forever())

    async def _read_forever(self) -> None:
        assert self.reader is not None
        message = b""
        while True:
            frame = await read_frame(self.reader, masked=False, limit=MAX_MESSAGE)
            if frame.opcode == CLOSE:
                return
            message += frame.payload
            if not frame.fin:
                continue
            data, message = json.loads(message), b""
            future = self._waiting.pop(data.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(data)
            elif "method" in data:
                self.events.append((data["method"], data.get("params", {})))
                if data["method"] == "Page.loadEventFired":
                    self._loaded.set()

    async def send(self, method: str, timeout: float = 30, **params: Any) -> Any:
        """One command; its result, or CDPError with the browser's message."""
        assert self.writer is not None
        ident = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        body = json.dumps({"id": ident, "method": method, "params": params}).encode()
        self.writer.write(encode_frame(TEXT, body, key=os.urandom(4)))
        await self.writer.drain()
        answer = await asyncio.wait_for(future, timeout)
        if "error" in answer:
            raise CDPError(f"{method}: {answer['error'].get('message')}")
        return answer.get("result", {})

    async def navigate(self, url: str, timeout: float = 30) -> None:
        self._loaded.clear()
        result = await self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise CDPError(f"navigating to {url}: {result['errorText']}")
        await asyncio.wait_for(self._loaded.wait(), timeout)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise CDPError(f"{expression[:80]}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 10, interval: float = 0.05) -> Any:
        """Evaluate until the value is truthy; that value (CDPError on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise CDPError(f"timed out after {timeout} s waiting for: {expression}")
            await asyncio.sleep(interval)

    async def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page (beyond the window), written to `path`."""
        result = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(result["data"]))
        return path

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and CSP violations seen so far."""
        found = []
        for method, params in self.events:
            if method == "Runtime.exceptionThrown":
                found.append(str(params.get("exceptionDetails", {}).get("text")))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(str(params["entry"].get("text")))
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                found.append(" ".join(str(a.get("value")) for a in params.get("args", [])))
        return found

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        if self.writer is not None:
            with contextlib.suppress(OSError, RuntimeError):
                self.writer.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.profile, ignore_errors=True)
