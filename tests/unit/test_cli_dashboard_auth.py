"""The dashboard's door: no request gets anything without this run's secret.

A real API server (a child process, tests/unit/cli_apiserver.py) and the real
dashboard on a loopback port; the requests are raw HTTP, so each test can send
exactly what an attacker's page or another local user would.
"""

from __future__ import annotations

import pytest

from apimachinery.client import Client
from cli.dashboard.auth import Gate
from cli.dashboard.server import check_loopback
from tests.unit.cli_apiserver import ApiServerProcess, no_traceback
from tests.unit.cli_apiserver import apiserver as apiserver  # the module's server
from tests.unit.dashboard_http import request, running_dashboard

ROUTES = [
    "/",
    "/static/dashboard.js",
    "/static/dashboard.css",
    "/static/index.html",
    "/api/state",
    "/api/events",
    "/api/path?service=default/web&from=node1",
    "/no/such/page",
]


async def test_every_route_refuses_a_request_without_the_secret(
    apiserver: ApiServerProcess,
) -> None:
    async with Client(apiserver.address) as client, running_dashboard(client) as dash:
        other_port = f"tinykube-dashboard-{dash.port + 1}={dash.secret}"
        for path in ROUTES:
            wrong = dash.cookie.split("=")[0] + "=wrong"
            for cookie in ("", wrong, other_port):
                answer = await request(dash.port, path, cookie=cookie)
                assert answer.status == 401, (path, cookie, answer.status)
                assert b"open the address `tinykube dashboard` printed" in answer.body
                assert dash.secret.encode() not in answer.body
        for token in ("", "wrong", dash.secret[:-1], dash.secret + "x"):
            answer = await request(dash.port, f"/?token={token}")
            assert answer.status == 401 and "set-cookie" not in answer.headers, token
        twice = await request(dash.port, f"/?token={dash.secret}&token={dash.secret}")
        assert twice.status == 401


async def test_the_printed_url_logs_in_with_an_httponly_samesite_strict_cookie(
    apiserver: ApiServerProcess,
) -> None:
    async with Client(apiserver.address) as client, running_dashboard(client) as dash:
        assert dash.url == f"http://127.0.0.1:{dash.port}/?token={dash.secret}"
        login = await request(dash.port, f"/?token={dash.secret}")
        assert login.status == 303
        assert login.headers["location"] == "/"
        cookie = login.headers["set-cookie"]
        assert cookie.startswith(f"tinykube-dashboard-{dash.port}={dash.secret};")
        attributes = {part.strip() for part in cookie.split(";")[1:]}
        assert attributes == {"HttpOnly", "SameSite=Strict", "Path=/"}
        page = await request(dash.port, "/", cookie=cookie.split(";")[0])
        assert page.status == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert b'<script src="/static/dashboard.js" defer></script>' in page.body


async def test_static_files_carry_their_content_types_and_the_security_headers(
    apiserver: ApiServerProcess,
) -> None:
    async with Client(apiserver.address) as client, running_dashboard(client) as dash:
        want = {
            "/static/dashboard.js": "text/javascript; charset=utf-8",
            "/static/dashboard.css": "text/css; charset=utf-8",
            "/static/favicon.svg": "image/svg+xml",
            "/api/state": "application/json",
        }
        for path, content_type in want.items():
            answer = await request(dash.port, path, cookie=dash.cookie)
            assert answer.status == 200, path
            assert answer.headers["content-type"] == content_type
            assert answer.headers["cache-control"] == "no-store"
            assert answer.headers["x-content-type-options"] == "nosniff"
            csp = answer.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert "unsafe" not in csp
        for path in ("/static/../auth.py", "/static/%2e%2e/auth.py", "/static/server.py", "/x.js"):
            assert (await request(dash.port, path, cookie=dash.cookie)).status == 404, path


async def test_a_foreign_host_header_is_refused_even_with_the_cookie(
    apiserver: ApiServerProcess,
) -> None:
    async with Client(apiserver.address) as client, running_dashboard(client) as dash:
        for host in (f"evil.example:{dash.port}", "127.0.0.1", f"127.0.0.1:{dash.port + 1}"):
            answer = await request(dash.port, "/api/state", cookie=dash.cookie, host=host)
            assert answer.status == 403, host
        ok = await request(
            dash.port, "/api/state", cookie=dash.cookie, host=f"localhost:{dash.port}"
        )
        assert ok.status == 200


async def test_the_dashboard_is_read_only(apiserver: ApiServerProcess) -> None:
    async with Client(apiserver.address) as client, running_dashboard(client) as dash:
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            answer = await request(dash.port, "/api/state", cookie=dash.cookie, method=method)
            assert answer.status == 405 and answer.headers["allow"] == "GET, HEAD", method
        head = await request(dash.port, "/", cookie=dash.cookie, method="HEAD")
        assert head.status == 200 and head.body == b""


def test_the_secret_is_long_and_the_address_loopback() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        Gate("short", 8000)
    assert check_loopback("127.0.0.1") == "127.0.0.1" and check_loopback("::1") == "::1"
    for address, message in (("0.0.0.0", "loopback address only"), ("example", "not an IP")):
        with pytest.raises(ValueError, match=message):
            check_loopback(address)


def test_a_public_address_is_refused_by_the_command(apiserver: ApiServerProcess) -> None:
    result = apiserver.tk("dashboard", "--address", "0.0.0.0")
    no_traceback(result)
    assert result.exit_code == 1
    assert "error: --address 0.0.0.0: the dashboard serves on a loopback address only" in (
        result.output
    )
