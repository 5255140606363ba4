"""Where the API server listens, and how each listener proves who is calling.

TCP is TLS only, and every request has an identity (auth/authenticator.py):

    --listen HOST:PORT         the API port (6443): TLS; a client certificate signed
                               by --client-ca-file is verified if given, and a
                               caller without one may bring a bearer token
    --token-listen HOST:PORT   a token port (6444): TLS for bearer tokens only,
                               kept for the joining nodes' bootstrap kubeconfigs
    --listen unix:PATH         a unix socket: whoever may open it is the admin;
                               made 0660, owned by root and --unix-socket-group

Kubernetes asks a TLS client for a certificate and verifies it *if one is
given* (Go's VerifyClientCertIfGiven): certificates and tokens share port
6443, and a caller with neither gets `401 Unauthorized`. gRPC's Python
server can only require a verified certificate or not ask for one, so the
TLS of each API port is terminated by apimachinery/tlsfront.py, which does
ask-and-verify-if-given and tells the server, per connection, what it
verified; the gRPC server itself listens only on private unix sockets.

The serving certificate is sent with its CA appended, so a node joining by
token can read the CA from the handshake and compare it with its pin
(`--discovery-token-ca-cert-hash`) before it sends the token.

Each TLS port serves two protocols: gRPC (tinykube's clients) and
Kubernetes' HTTP API (kubectl, client-go, the Python client). The front
tells them apart by the protocol the handshake negotiated (ALPN: h2 for
gRPC, http/1.1 or none for HTTP, see tlsfront.py) and relays each to its
own private socket beside the gRPC backend: `backend.sock` for gRPC,
`http.sock` for the HTTP API (apiserver/httpapi), both fed from the same
per-connection path, so both know the same verified certificate.

A TCP listener without the TLS files is refused at start, naming what is
missing: there is no plain-text TCP port and no flag to have one.
"""

from __future__ import annotations

import grp
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass

import grpc

from apimachinery import certs
from apimachinery.tlsfront import FrontConfig, TLSFront, private_dir

SOCKET_MODE = 0o660


@dataclass(frozen=True)
class ServingOptions:
    """The listeners and the files that secure them (`tinykube apiserver` flags)."""

    listen: tuple[str, ...]
    token_listen: tuple[str, ...] = ()
    tls_cert_file: str = ""
    tls_private_key_file: str = ""
    client_ca_file: str = ""
    unix_socket_group: str = ""

    @property
    def tcp(self) -> tuple[str, ...]:
        return tuple(a for a in self.listen if not a.startswith("unix:"))

    @property
    def unix(self) -> tuple[str, ...]:
        return tuple(a for a in self.listen if a.startswith("unix:"))

    def check(self) -> None:
        """Refuse a configuration that would serve TCP without TLS, naming what is missing."""
        missing = []
        if self.tcp or self.token_listen:
            if not self.tls_cert_file:
                missing.append("--tls-cert-file")
            if not self.tls_private_key_file:
                missing.append("--tls-private-key-file")
        if self.tcp and not self.client_ca_file:
            missing.append("--client-ca-file")
        if missing:
            where = ", ".join([*self.tcp, *self.token_listen])
            raise ValueError(
                f"listening on {where} needs {', '.join(missing)}: "
                "the API is served over TLS only on TCP (a unix: address needs none)"
            )


def _chain(opts: ServingOptions) -> tuple[bytes, bytes]:
    """(key, serving certificate followed by its CA when the CA file is its issuer)."""
    key = _read(opts.tls_private_key_file)
    chain = _read(opts.tls_cert_file)
    if opts.client_ca_file:
        ca_pem = _read(opts.client_ca_file)
        leaf = certs.load_cert_pem(chain)
        ca = certs.load_cert_pem(ca_pem)
        if leaf.issuer == ca.subject and ca_pem.strip() not in chain:
            chain = chain.rstrip(b"\n") + b"\n" + ca_pem
    return key, chain


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        raise ValueError(f"{path}: {err.strerror}") from None


class Listeners:
    """Every listener of one server: unix sockets, token ports, and a TLS front per TCP port."""

    def __init__(self, opts: ServingOptions, run_dir: str = "") -> None:
        opts.check()
        self.opts = opts
        self.fronts: list[TLSFront] = []
        self.ports: list[int] = []
        self._key = self._chain = b""
        if opts.tcp or opts.token_listen:
            self._key, self._chain = _chain(opts)
        for n, address in enumerate(opts.tcp):
            host, _, port = address.rpartition(":")
            where = private_dir(run_dir, f"tls{n}")
            backend = os.path.join(where, "backend.sock")
            config = FrontConfig(
                host=host.strip("[]") or "0.0.0.0",
                port=int(port),
                backend=backend,
                cert_pem=self._chain,
                key_pem=self._key,
                client_ca_pem=_read(opts.client_ca_file),
                http_backend=os.path.join(where, "http.sock"),
            )
            self.fronts.append(TLSFront(config, where))

    def bind(self, server: grpc.aio.Server) -> None:
        """Before the server starts: unix sockets, token ports, each front's backend socket."""
        token = None
        if self.opts.token_listen:
            token = grpc.ssl_server_credentials([(self._key, self._chain)])
        fronts = iter(self.fronts)
        for address in self.opts.listen:
            if address.startswith("unix:"):
                self.ports.append(_bound(server.add_insecure_port(address), address))
            else:
                front = next(fronts)
                backend = f"unix:{front.config.backend}"
                _bound(server.add_insecure_port(backend), backend)
                self.ports.append(0)  # known once the front listens
        for address in self.opts.token_listen:
            assert token is not None
            self.ports.append(_bound(server.add_secure_port(address, token), address))

    def start_fronts(self) -> None:
        """After the server started: the TLS fronts listen; their ports fill `ports`."""
        fronts = iter(self.fronts)
        for i, address in enumerate(self.opts.listen):
            if not address.startswith("unix:"):
                front = next(fronts)
                os.chmod(front.config.backend, 0o600)
                self.ports[i] = front.start()

    @property
    def http_backends(self) -> list[str]:
        """The HTTP API's sockets, one per TLS front (served before the fronts start)."""
        return [front.config.http_backend for front in self.fronts if front.config.http_backend]

    def stop(self) -> None:
        for front in self.fronts:
            front.stop()
            shutil.rmtree(os.path.dirname(front.config.backend), ignore_errors=True)

    def identity_of(self, peer: str) -> tuple[bool, certs.Identity | None]:
        """(came through a TLS front, the client certificate's identity if one was sent)."""
        for front in self.fronts:
            through, identity = front.identity_of(peer)
            if through:
                return True, identity
        return False, None


def _bound(port: int, address: str) -> int:
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return port


def secure_unix_sockets(addresses: Sequence[str], group: str = "") -> None:
    """Once bound: each socket 0660, group `group` (a name or a gid) when given."""
    gid = -1
    if group:
        gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    for address in addresses:
        path = address.removeprefix("unix:")
        if os.path.exists(path):
            os.chmod(path, SOCKET_MODE)
            if gid >= 0:
                os.chown(path, -1, gid)
