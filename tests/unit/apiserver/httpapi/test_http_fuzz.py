"""Fuzzing the HTTP API: whatever arrives, a Status comes back and the store is left whole.

A real API server (TLS, the PKI of `pki init`'s code, SQLite) runs on a loop
in a thread of its own, so that hypothesis can drive it from the test's
thread with Python's http.client, as the admin. Each example is one request
built from parts kubectl and curl users get wrong: a method, a path (real
ones, and odd ones: `..`, `%00`, 300-character names, unicode), a query
string (every parameter the API reads, with nonsense values), a Content-Type
and a body (random bytes, random JSON, valid objects with one part replaced,
truncated JSON, YAML, JSON/merge/strategic patches, apply bodies, Kubernetes
protobuf envelopes around random bytes). What is asserted of every answer:

* it is never a 500 (a 500 is a bug: an exception the handlers did not turn
  into a Status) and, when it is an error, its body is a Kubernetes Status
  with the same code;
* after an error the store is exactly as before: every key at the same
  revision (no half-written object);
* after a success every stored object still decodes.

Watches and followed logs are left out (they answer by staying open; the
watch tests cover them), as are bodies past the 3 MiB limit except for two
explicit examples. The run is bounded (a few hundred examples, under a minute).
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import socket
import ssl
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from apiserver.httpapi.kubeproto import ROOTS
from tests.unit.apiserver.httpapi import kubepb
from tests.unit.apiserver.httpapi.client import HTTPS, Answer, configmap, deployment
from tests.unit.apiserver.httpapi.server_thread import ServerThread

NS = "/api/v1/namespaces/default"
APPS = "/apis/apps/v1/namespaces/default"
# Each path with the methods it serves: most examples pair them, a few mismatch them.
PATHS = {
    f"{NS}/configmaps": "GET POST DELETE",
    f"{NS}/configmaps/cm": "GET PUT PATCH DELETE",
    f"{NS}/configmaps/cm/status": "GET PUT",
    f"{NS}/pods": "GET POST DELETE",
    f"{NS}/pods/p": "GET PUT PATCH DELETE",
    f"{NS}/pods/p/status": "GET PUT PATCH",
    f"{NS}/pods/p/eviction": "POST",
    f"{NS}/pods/p/log": "GET",
    f"{NS}/pods/p/binding": "POST",
    f"{NS}/services": "GET POST",
    f"{NS}/secrets": "GET POST",
    f"{APPS}/deployments": "GET POST DELETE",
    f"{APPS}/deployments/web": "GET PUT PATCH DELETE",
    f"{APPS}/deployments/web/scale": "GET PUT PATCH",
    f"{APPS}/deployments/web/status": "GET PUT PATCH",
    "/api/v1/namespaces": "GET POST",
    "/api/v1/namespaces/default": "GET PATCH",
    "/api/v1/nodes": "GET POST",
    "/api/v1/configmaps": "GET",
    "/apis/rbac.authorization.k8s.io/v1/clusterroles": "GET POST",
    "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews": "POST",
    "/apis/authentication.k8s.io/v1/selfsubjectreviews": "POST",
    "/version": "GET",
    "/api": "GET",
    "/apis": "GET",
    "/apis/apps": "GET",
    "/openapi/v3": "GET",
    "/openapi/v3/apis/apps/v1": "GET",
    "/healthz": "GET",
}
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
SEGMENTS = [
    "api", "apis", "v1", "apps", "namespaces", "default", "pods", "configmaps", "p", "cm",
    "status", "scale", "log", "eviction", "..", ".", "%2e%2e", "", "%00", "%ff", "%",
    "x" * 300, "%C3%BCn%C3%AFc%C3%B6de", "Pods", "kube-system", "-", "a.b.c", "*",
]  # fmt: skip
PARAMS = [
    "labelSelector", "fieldSelector", "limit", "continue", "resourceVersion",
    "resourceVersionMatch", "timeoutSeconds", "dryRun", "fieldManager", "fieldValidation",
    "force", "propagationPolicy", "gracePeriodSeconds", "orphanDependents", "container",
    "tailLines", "previous", "limitBytes", "includeObject", "allowWatchBookmarks", "pretty",
    "sinceSeconds", "timestamps",
]  # fmt: skip
MEDIA = [
    "application/json",
    "application/yaml",
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
    kubepb.PROTOBUF,
    "text/plain",
    "application/json; charset=utf-16",
    "multipart/form-data; boundary=x",
    "",
    "garbage/\u00e9",
]
ACCEPT = ["application/json", "application/json;as=Table;v=v1;g=meta.k8s.io", "*/*", "text/html"]
VALID = [deployment("web"), configmap("cm", a="b"), deployment("new"), configmap("new")]
BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


def _deep_protobuf() -> bytes:
    nested = b""
    for _ in range(3000):  # an unknown field whose payload nests 3000 messages deep
        nested = kubepb.message(1, nested)
    return kubepb.envelope("v1", "ConfigMap", kubepb.message(99, nested))


DEEP_PROTOBUF = _deep_protobuf()
DEEP_TOKEN = base64.urlsafe_b64encode(b"[" * 20_000).decode()  # a continue token of JSON
# the bomb where strict decoding has to look at it: a ConfigMap's data value
BOMB_IN_DATA = BOMB + "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: z}\ndata: {x: *i}\n"
# the bomb where strict decoding has to look at it: a ConfigMap's data value
BOMB_IN_DATA = BOMB + "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: z}\ndata: {x: *i}\n"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid object with one part replaced, removed or added, as JSON."""
    obj: Any = json.loads(json.dumps(draw(st.sampled_from(VALID))))
    node = obj
    while isinstance(node, dict) and node and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(node)))
        if not isinstance(node[key], dict):
            break
        node = node[key]
    if isinstance(node, dict):
        key = draw(st.sampled_from([*sorted(node), "extra", "replicass"]))
        if draw(st.booleans()) and key in node:
            del node[key]
        else:
            node[key] = draw(json_values)
    return json.dumps(obj).encode()


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["bytes", "json", "mutated", "truncated", "yaml", "patch", "pb"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    if kind == "mutated":
        return draw(mutated())
    if kind == "truncated":
        whole = json.dumps(draw(st.sampled_from(VALID))).encode()
        return whole[: draw(st.integers(0, len(whole) - 1))]
    if kind == "yaml":
        return yaml.safe_dump(draw(json_values)).encode()
    if kind == "patch":
        op = st.fixed_dictionaries(
            {"op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "x"])},
            optional={
                "path": st.sampled_from(
                    ["/spec/replicas", "/data/a", "/metadata/name", "", "/a~2"]
                ),
                "from": st.sampled_from(["/data/a", "/spec", "/nope"]),
                "value": json_values,
            },
        )
        return json.dumps(draw(st.lists(op, max_size=3))).encode()
    if draw(st.booleans()):
        raw = draw(st.binary(max_size=200))
    else:  # a well-formed Deployment with one byte changed, or cut short
        good = bytearray(kubepb.deployment("pb"))
        at = draw(st.integers(0, len(good) - 1))
        good[at] = draw(st.integers(0, 255))
        raw = bytes(good[: draw(st.integers(at, len(good)))])
    root = draw(st.sampled_from([*sorted(ROOTS), "Job", ""]))
    return kubepb.envelope(draw(st.sampled_from(["v1", "apps/v1", "x"])), root, raw)


WRITES = {
    "POST": ["application/json", "application/yaml", kubepb.PROTOBUF],
    "PUT": ["application/json", "application/yaml", kubepb.PROTOBUF],
    "PATCH": [m for m in MEDIA if "patch" in m],
    "DELETE": ["application/json", kubepb.PROTOBUF],
}


@st.composite
def targets(draw: st.DrawFn) -> tuple[str, str, str]:
    """(method, path and query, Content-Type): mostly a real path, one of its methods (a
    write when it has one) and a media type that method takes; now and then anything."""
    path, methods, media = "", METHODS, MEDIA
    if draw(st.integers(0, 5)):
        path = draw(st.sampled_from(sorted(PATHS)))
        if draw(st.integers(0, 4)):
            served = PATHS[path].split()
            methods = [m for m in served if m in WRITES] or served
    else:
        path = "/" + "/".join(draw(st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=7)))
    method = draw(st.sampled_from(methods))
    if method in WRITES and draw(st.integers(0, 3)):
        media = WRITES[method]
    pairs = draw(
        st.lists(
            st.tuples(
                st.sampled_from([*PARAMS, "x"]),
                st.sampled_from(["", "1", "-1", "true", "All", "abc", "0", "99999999999999999999"])
                | st.text(max_size=12),
            ),
            max_size=3,
        )
    )
    query = urllib.parse.urlencode(pairs)
    return method, f"{path}?{query}" if query else path, draw(st.sampled_from(media))


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, HTTPS]]:
    server = ServerThread(tmp_path_factory.mktemp("fuzz"))
    try:
        admin = server.admin()
        seeds = [(f"{APPS}/deployments", deployment("web")), (f"{NS}/configmaps", configmap("cm"))]
        for path, obj in seeds:
            data = json.dumps(obj).encode()
            answer = admin._do("POST", path, data, {"Content-Type": "application/json"})
            assert answer.status == 201, answer.body
        yield server, admin
    finally:
        server.stop()


def _check(answer: Answer, method: str) -> None:
    assert answer.status != 500 and answer.status < 600, answer.body[:2000]
    if answer.status >= 400 and method != "HEAD":
        data = json.loads(answer.body)
        assert (data["kind"], data["status"], data["code"]) == ("Status", "Failure", answer.status)
        assert data["message"]


@settings(
    max_examples=800,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    target=targets(),
    accept=st.just("application/json") | st.sampled_from(ACCEPT),
    body=bodies(),
)
@example(("POST", f"{NS}/configmaps", "application/yaml"), "*/*", BOMB.encode())
@example(("POST", f"{NS}/configmaps", "application/yaml"), "*/*", BOMB_IN_DATA.encode())
@example(("PATCH", f"{NS}/configmaps/cm", "application/apply-patch+yaml"), "*/*", BOMB.encode())
@example(("POST", f"{NS}/configmaps", "application/json"), "*/*", b"[" * 100_000)
@example(("POST", f"{NS}/configmaps", "application/yaml"), "*/*", b"a: &a [*a]")
@example(("GET", f"{NS}/configmaps?limit=1&continue={DEEP_TOKEN}", ""), "*/*", b"")
@example(("GET", f"{NS}/configmaps?limit=99999999999999999999", ""), "*/*", b"")
@example(("PUT", f"{APPS}/deployments/web", "application/json"), "*/*", b" " * (3 * 2**20 + 1))
@example(("POST", f"{NS}/configmaps", kubepb.PROTOBUF), "*/*", DEEP_PROTOBUF)
def test_every_request_gets_a_status_and_errors_leave_no_trace(
    api: tuple[ServerThread, HTTPS], target: tuple[str, str, str], accept: str, body: bytes
) -> None:
    server, admin = api
    method, path, media = target
    before = server.snapshot()
    headers = {"Accept": accept}
    if media:
        headers["Content-Type"] = media
    # reads carry a body now and then too: it must be ignored or refused, never trip anything
    sent = body if method not in ("GET", "HEAD", "OPTIONS") or len(body) % 2 else None
    if media == "application/apply-patch+yaml" and "fieldManager" not in path:
        path += ("&" if "?" in path else "?") + "fieldManager=fuzz"
    answer = admin._do(method, path, sent, headers)
    event(f"{method} {answer.status}")  # --hypothesis-show-statistics: what was reached
    _check(answer, method)
    if answer.status >= 400:
        assert server.snapshot() == before, (method, path, answer.status, answer.body[:500])
    else:
        server.decode_all()


LINE_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "", "G E T", "GET\x00", "get", "BREW"]
TARGETS = [f"{NS}/configmaps", f"{NS}/configmaps/cm", "", "*", "http://x/api", "/%zz", "/?&&=&"]
VERSIONS = ["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1x", "", "HTTP/1.1 extra"]
HEADER_NAMES = [
    "Content-Length", "Transfer-Encoding", "Content-Type", "Expect", "Connection", "Host",
    "Accept", "Bad Name", "", "X-\u00e9", ":authority",
]  # fmt: skip
HEADER_VALUES = [
    "0", "-1", "10", "99999999999999999999", "many", "chunked", "gzip, chunked", "identity",
    "100-continue", "close", "application/json", "", " " * 10, "\x00", "a\rb",
]  # fmt: skip


@st.composite
def raw_requests(draw: st.DrawFn) -> bytes:
    """An HTTP/1.1 request with something wrong in its head or its framing, most of the time."""
    line = " ".join(
        [
            draw(st.sampled_from(LINE_METHODS)),
            draw(
                st.sampled_from(TARGETS)
                | st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30)
            ),
            draw(st.sampled_from(VERSIONS)),
        ]
    )
    headers = draw(
        st.lists(
            st.tuples(
                st.sampled_from(HEADER_NAMES)
                | st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=10),
                st.sampled_from(HEADER_VALUES) | st.text(max_size=20),
            ),
            max_size=5,
        )
    )
    head = line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    body = draw(
        st.binary(max_size=100)
        | st.sampled_from([b"5\r\nhello\r\n0\r\n\r\n", b"zz\r\nhello\r\n", b"ffffffffff\r\n"])
    )
    return head.encode("utf-8", "surrogateescape") + body


def _raw(admin: HTTPS, payload: bytes) -> bytes:
    """Send `payload` on a fresh TLS connection; what comes back within half a second."""
    plain = socket.create_connection(("127.0.0.1", admin.port), timeout=5)
    with admin.context().wrap_socket(plain, server_hostname="127.0.0.1") as sock:
        sock.sendall(payload)
        sock.settimeout(0.5)  # a request waiting for the rest of its body gets no answer
        chunks = []
        with contextlib.suppress(TimeoutError, ConnectionError, ssl.SSLError):
            while data := sock.recv(65536):
                chunks.append(data)
    return b"".join(chunks)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=raw_requests())
@example(payload=b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n")  # a head past 64 KiB
@example(
    payload=b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nContent-Length: 40\r\n\r\n{"
)
def test_malformed_http_never_gets_a_5xx_and_leaves_the_store_alone(
    api: tuple[ServerThread, HTTPS], payload: bytes
) -> None:
    server, admin = api
    before = server.snapshot()
    answer = _raw(admin, payload)
    if answer:
        status = answer.split(b"\r\n", 1)[0]
        assert re.fullmatch(rb"HTTP/1\.1 [1-4]\d\d [ -~]*", status), answer[:300]
        event(status.decode())
    if not answer.startswith(b"HTTP/1.1 2"):
        assert server.snapshot() == before
    assert admin._do("GET", "/healthz", None, {}).status == 200  # still serving


@pytest.mark.parametrize(
    ("path", "media", "body", "message"),
    [
        (
            f"{NS}/configmaps",
            "application/json",
            b"[" * 100_000,
            "couldn't get version/kind; json parse error: exceeded max depth (100)",
        ),
        (
            f"{NS}/configmaps",
            "application/json",
            b'{"data": {"x": ' + b"[" * 150 + b"]" * 150 + b"}}",
            "couldn't get version/kind; json parse error: exceeded max depth (100)",
        ),
        (
            f"{NS}/configmaps",
            "application/yaml",
            BOMB_IN_DATA.encode(),
            "yaml: document contains excessive aliasing",
        ),
        (
            f"{NS}/configmaps",
            "application/yaml",
            b"a: &a [*a]",
            "yaml: the document contains itself (a cyclic alias)",
        ),
        (
            f"{NS}/configmaps?limit=1&continue={DEEP_TOKEN}",
            None,
            None,
            "the request nests too deeply to be read",
        ),
        (  # past int64: protobuf's "Value out of range" was a 500
            f"{NS}/configmaps?limit=99999999999999999999",
            None,
            None,
            'limit: Invalid value: "99999999999999999999": must be a 64-bit integer',
        ),
        (
            f"{NS}/pods/p/log?tailLines=-99999999999999999999",
            None,
            None,
            'tailLines: Invalid value: "-99999999999999999999": must be a 64-bit integer',
        ),
    ],
)
def test_what_fuzzing_found(
    api: tuple[ServerThread, HTTPS], path: str, media: str | None, body: bytes | None, message: str
) -> None:
    """What fuzzing turned up (a RecursionError's 500; the server's loop stalled expanding a
    YAML bomb while strict decoding described the value) and their kin: each a 400 now."""
    server, admin = api
    before = server.snapshot()
    method = "POST" if body is not None else "GET"
    answer = admin._do(method, path, body, {"Content-Type": media} if media else {})
    data = json.loads(answer.body)
    assert (answer.status, data["reason"], data["message"]) == (400, "BadRequest", message)
    assert server.snapshot() == before
