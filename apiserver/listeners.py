"""Where the API server listens, and how each listener proves who is calling.

TCP is TLS only, and every request has an identity (auth/authenticator.py):

    --listen HOST:PORT         the certificate port (6443): TLS that REQUIRES a
                               client certificate signed by --client-ca-file
    --token-listen HOST:PORT   the token port (6444): TLS without a client
                               certificate; each call carries a bearer token
    --listen unix:PATH         a unix socket: whoever may open it is the admin;
                               made 0660, owned by root and --unix-socket-group

Why two TLS ports, where Kubernetes has one: Kubernetes asks for a client
certificate and verifies it *if one is given* (Go's VerifyClientCertIfGiven),
so certificates and tokens share port 6443. gRPC's Python server offers only
"require a verified certificate" or "do not ask for one". A certificate
port that does not require one could not see certificates at all, so the
token users — above all a new node joining with a bootstrap token, which
has no certificate yet — get a port of their own.

The serving certificate is sent with its CA appended, so a node joining by
token can read the CA from the handshake and compare it with its pin
(`--discovery-token-ca-cert-hash`) before it sends the token.

A TCP listener without the TLS files is refused at start, naming what is
missing: there is no plain-text TCP port and no flag to have one.
"""

from __future__ import annotations

import grp
import os
from collections.abc import Sequence
from dataclasses import dataclass

import grpc

from apimachinery import certs

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


def add_ports(server: grpc.aio.Server, opts: ServingOptions) -> list[int]:
    """Bind every listener; the ports in the order of `listen`, then `token_listen`."""
    opts.check()
    ports = []
    mtls = token = None
    if opts.tcp or opts.token_listen:
        key, chain = _chain(opts)
        if opts.tcp:
            mtls = grpc.ssl_server_credentials(
                [(key, chain)],
                root_certificates=_read(opts.client_ca_file),
                require_client_auth=True,
            )
        token = grpc.ssl_server_credentials([(key, chain)], require_client_auth=False)
    for address in opts.listen:
        if address.startswith("unix:"):
            port = server.add_insecure_port(address)
        else:
            assert mtls is not None
            port = server.add_secure_port(address, mtls)
        ports.append(_bound(port, address))
    for address in opts.token_listen:
        assert token is not None
        ports.append(_bound(server.add_secure_port(address, token), address))
    return ports


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
