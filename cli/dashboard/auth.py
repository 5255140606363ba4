"""Who may read the dashboard: the holder of this run's secret, and nobody else.

The dashboard server listens on loopback only, and loopback is not a boundary: every
local user, and every web page the browser has open (through fetch, an <img>, a
form), can send requests to 127.0.0.1. `kubectl proxy` answers them all with the
user's credentials. This server does not: each run makes a random secret (32
bytes from `secrets`, URL-safe) and prints it once, in the address to open:

    http://127.0.0.1:41233/?token=3q2-7w...

The flow, request by request (cli/dashboard/server.py calls `Gate.check` before
routing, so no route is reachable without it):

    GET /?token=SECRET           303 to /, Set-Cookie: tinykube-dashboard-41233=SECRET;
                                 HttpOnly; SameSite=Strict; Path=/ (the token leaves the
                                 address bar and the history at once)
    GET /  + that cookie         the page; its script, styles and event stream go with
                                 the cookie too (same origin)
    anything without it          401, whatever the path (the static files as well)
    a wrong token, a wrong cookie  401
    a Host that is not 127.0.0.1:PORT or localhost:PORT   403 (DNS rebinding: a
                                 page of evil.example resolved to 127.0.0.1 would
                                 reach this port under its own name)

Why a cookie, and why these attributes: the page's own script never sees the
secret (HttpOnly: a bug in the page cannot leak it), the browser sends it only to
requests the dashboard's own pages make (SameSite=Strict: another site's link or
form arrives without it), and EventSource, which cannot set headers, still sends
it. The name carries the port because cookies are not separated by port: two
dashboards on one machine keep their own. Comparisons are constant-time
(hmac.compare_digest), so response times say nothing about the secret.

What it does not protect against: a process of the same user can read the printed
line, as it could read the kubeconfig; and a browser sends a loopback cookie to
every port of 127.0.0.1, so another server on this machine that the browser
visits could see it (the secret dies with the run).
"""

from __future__ import annotations

import hmac
import secrets

from apiserver.httpapi.http import Request, Response

COOKIE_PREFIX = "tinykube-dashboard-"
UNAUTHORIZED = (
    b"401 Unauthorized: open the address `tinykube dashboard` printed"
    b" (it carries this run's token)\n"
)


def new_secret() -> str:
    """A fresh secret: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def cookies(header: str) -> dict[str, str]:
    """`a=1; b=2` -> {"a": "1", "b": "2"}; malformed parts (other apps' cookies) skipped."""
    found: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name:
            found.setdefault(name, value.strip().strip('"'))
    return found


def _same(given: str, secret: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), secret.encode())


def plain(status: int, body: bytes, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, body, "text/plain; charset=utf-8", headers or [])


class Gate:
    """The checks every request passes before any route sees it."""

    def __init__(self, secret: str, port: int) -> None:
        if len(secret) < 32:
            raise ValueError("the dashboard's secret must be at least 32 characters")
        self.secret = secret
        self.port = port
        self.cookie = f"{COOKIE_PREFIX}{port}"
        self.hosts = {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}

    def url(self, host: str = "127.0.0.1") -> str:
        """The address to print: opening it logs the browser in."""
        return f"http://{host}:{self.port}/?token={self.secret}"

    def check(self, request: Request) -> Response | None:
        """None when the request may go on; otherwise the answer (303 login, 401, 403)."""
        host = request.headers.get("host", "")
        if host not in self.hosts:
            return plain(403, b"403 Forbidden: this server answers to 127.0.0.1 only\n")
        token = request.query.get("token")
        if token is not None and request.path == "/":
            if len(token) == 1 and _same(token[0], self.secret):
                return self.login()
            return plain(401, UNAUTHORIZED)
        given = cookies(request.headers.get("cookie", "")).get(self.cookie, "")
        if given and _same(given, self.secret):
            return None
        return plain(401, UNAUTHORIZED)

    def login(self) -> Response:
        cookie = f"{self.cookie}={self.secret}; HttpOnly; SameSite=Strict; Path=/"
        return plain(303, b"", [("Location", "/"), ("Set-Cookie", cookie)])
