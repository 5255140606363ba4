"""A small HTTPS client of the API port, and the objects the HTTP API tests send.

The client is Python's own http.client over an ssl context that presents
the admin's (or a node's) client certificate, or none and a bearer token;
it runs in a thread (asyncio.to_thread) so the server keeps serving on the
test's loop. `alpn` chooses the protocols the client offers, to see the
TLS front route by them.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apimachinery import kubeconfig
from apiserver.server import APIServer

TOKEN = "s3cret-token"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def data(self) -> Any:
        return json.loads(self.body)


@dataclass
class HTTPS:
    """An HTTPS client of the API port: one identity, one connection per request."""

    port: int
    ca: Path
    conf: Path | None = None  # a kubeconfig whose client certificate to present
    token: str = ""
    alpn: list[str] | None = field(default_factory=lambda: ["http/1.1"])

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        if self.alpn is not None:
            ctx.set_alpn_protocols(self.alpn)
        if self.conf is not None:
            config = kubeconfig.load(self.conf)
            pem = self.ca.parent / f"{self.conf.stem}-client.pem"
            pem.write_bytes((config.cert_pem or b"") + (config.key_pem or b""))
            ctx.load_cert_chain(str(pem))
        return ctx

    def connect(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=self.context(), timeout=10
        )

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    def _do(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Answer:
        conn = self.connect()
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    async def call(
        self,
        method: str,
        path: str,
        data: Any = None,
        *,
        content_type: str = "application/json",
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        body = raw if raw is not None else (None if data is None else json.dumps(data).encode())
        merged = self._headers(headers)
        if body is not None:
            merged["Content-Type"] = content_type
        return await asyncio.to_thread(self._do, method, path, body, merged)

    def _open(self, path: str, headers: dict[str, str] | None) -> Stream:
        conn = self.connect()
        conn.request("GET", path, headers=self._headers(headers))
        return Stream(conn, conn.getresponse())

    async def open_stream(self, path: str, headers: dict[str, str] | None = None) -> Stream:
        """A watch's response, its head read (in a thread: the server runs on this loop)."""
        return await asyncio.to_thread(self._open, path, headers)


@dataclass
class Stream:
    """A watch (or followed log) being read line by line."""

    conn: http.client.HTTPSConnection
    response: http.client.HTTPResponse

    async def line(self) -> bytes:
        return await asyncio.to_thread(self.response.readline)

    async def event(self) -> dict[str, Any]:
        line = await asyncio.wait_for(self.line(), 10)
        assert line, "the stream ended"
        data: dict[str, Any] = json.loads(line)
        return data

    def close(self) -> None:
        self.conn.close()


@dataclass
class Cluster:
    server: APIServer
    pki: Path
    port: int

    def client(self, conf: str | None = "admin.conf", **kwargs: Any) -> HTTPS:
        ca = self.pki / "pki" / "ca.crt"
        return HTTPS(self.port, ca, self.pki / conf if conf else None, **kwargs)


def deployment(name: str, replicas: int = 2, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": "nginx:latest"}]},
            },
        },
    }


def configmap(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def lines(text: bytes) -> Iterator[dict[str, Any]]:
    for line in text.splitlines():
        if line.strip():
            yield json.loads(line)


DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
PODS = "/api/v1/namespaces/default/pods"
