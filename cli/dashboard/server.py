"""The dashboard's HTTP server: loopback only, every request behind this run's secret.

How it is secured, and why this way. Issue 20 allows the page to come from the
API server itself or from a small process beside it, behind the same
authentication. tinykube does the second, as `kubectl proxy` and the
Kubernetes Dashboard do, because:

* A browser cannot easily authenticate to the API server the way tinykube's
  clients do: its identities are client certificates from the cluster CA and
  bearer tokens. Importing a certificate into a browser is a chore for every
  student, and a token in the page's JavaScript is a token any script bug can
  leak. Here the user's kubeconfig stays in this process, as it does in every
  `tinykube` command, and every API call is made *as the user*: RBAC judges the
  dashboard as it judges `tinykube get` (a user who may not list nodes sees the
  server's "forbidden" sentence where the nodes would be).
* The API server stays an API: no page, no static files, no UI code in the
  component every request of the cluster goes through (Kubernetes keeps its
  Dashboard out of kube-apiserver for the same reason).

Unlike `kubectl proxy`, which answers anyone who reaches its port with the user's
full rights, this server requires a secret: cli/dashboard/auth.py explains the
flow (a printed URL with `?token=`, then an HttpOnly SameSite=Strict cookie;
every request without it is a 401; a foreign Host header is a 403). And it is
read-only: it serves GET and HEAD on a fixed set of routes and makes no write to
the API; anything else is 405.

Routes (all behind the gate):

    GET /                    the page (static/index.html)
    GET /static/NAME         the page's CSS, JavaScript and icon, with their content types
    GET /api/state           the newest document (cli/dashboard/view.py), JSON
    GET /api/events          server-sent events: that document on every change (live.py)
    GET /api/path?service=NS/NAME&port=P&from=NODE
                             the packet path of a Service request (netplugin/pathview.py)

Every answer carries `Cache-Control: no-store` and a Content-Security-Policy that
allows only this origin's own script and styles (no inline script, no framing).
The HTTP/1.1 itself is the API server's small asyncio implementation
(apiserver/httpapi/http.py): keep-alive, bounded heads and bodies, and streams that
end when the browser hangs up.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from importlib import resources
from typing import Any

from apiserver.httpapi.http import Request, Response, serve_connection
from cli.dashboard.auth import Gate, plain
from cli.dashboard.live import LiveCluster
from netplugin.pathview import PathError

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
SECURITY_HEADERS = [
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
]
MAX_BODY = 0  # the dashboard takes no request bodies


def load_static() -> dict[str, tuple[bytes, str]]:
    """Every file of cli/dashboard/static with a known type: name -> (bytes, content type)."""
    files: dict[str, tuple[bytes, str]] = {}
    for entry in resources.files("cli.dashboard").joinpath("static").iterdir():
        suffix = entry.name[entry.name.rfind(".") :] if "." in entry.name else ""
        if entry.is_file() and suffix in CONTENT_TYPES:
            files[entry.name] = (entry.read_bytes(), CONTENT_TYPES[suffix])
    if "index.html" not in files:
        raise RuntimeError(
            "the dashboard's page (cli/dashboard/static/index.html) is not installed: "
            "install tinykube with its package data (pip install -e, or package-data for "
            "cli.dashboard in pyproject.toml)"
        )
    return files


def check_loopback(address: str) -> str:
    """`address` if it is a loopback address; ValueError otherwise (the dashboard is local)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"--address {address!r} is not an IP address") from None
    if not ip.is_loopback:
        raise ValueError(
            f"--address {address}: the dashboard serves on a loopback address only "
            "(reach it from another machine through an SSH tunnel: ssh -L PORT:127.0.0.1:PORT)"
        )
    return address


def _json(status: int, data: Any) -> Response:
    return Response(status, json.dumps(data, separators=(",", ":")).encode())


class DashboardServer:
    """The listener, the gate and the routes; `live` supplies the data."""

    def __init__(self, live: LiveCluster, *, address: str = "127.0.0.1", port: int = 0) -> None:
        self.live = live
        self.address = check_loopback(address)
        self.requested_port = port
        self.static = load_static()
        self.gate: Gate | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    async def start(self, secret: str) -> str:
        """Listen; the URL to open (with the token)."""
        self._server = await asyncio.start_server(
            self._connection, self.address, self.requested_port, limit=64 * 1024
        )
        port = int(self._server.sockets[0].getsockname()[1])
        self.gate = Gate(secret, port)
        host = f"[{self.address}]" if ":" in self.address else self.address
        return self.gate.url(host)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await serve_connection(reader, writer, self.handle, self._too_large, max_body=MAX_BODY)
        except asyncio.CancelledError:
            pass
        finally:
            self._connections.discard(task)

    @staticmethod
    def _too_large() -> Response:
        return plain(413, b"413: the dashboard takes no request bodies\n")

    async def handle(self, request: Request) -> Response:
        """The gate, then the route; security headers on every answer."""
        assert self.gate is not None
        response = self.gate.check(request) or self.route(request)
        response.headers.extend(SECURITY_HEADERS)
        return response

    def route(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return plain(405, b"405: the dashboard is read-only\n", [("Allow", "GET, HEAD")])
        path = request.path
        if path == "/":
            return self._file("index.html")
        if path.startswith("/static/"):
            return self._file(path[len("/static/") :])
        if path == "/api/state":
            return Response(200, self.live.latest)
        if path == "/api/events":
            return Response(200, content_type="text/event-stream", stream=self.live.stream())
        if path == "/api/path":
            return self._path(request)
        return plain(404, b"404 page not found\n")

    def _file(self, name: str) -> Response:
        found = self.static.get(name)  # names only: "../x" is simply not among them
        if found is None:
            return plain(404, b"404 page not found\n")
        body, content_type = found
        return Response(200, body, content_type)

    def _path(self, request: Request) -> Response:
        try:
            found = self.live.path(
                request.param("service"), request.param("port"), request.param("from")
            )
        except PathError as err:
            return _json(404, {"error": str(err)})
        return _json(200, found)
