"""`tinykube join`: a new node's first contact with the cluster (kubeadm join's discovery).

    $ tinykube join 10.0.0.1:6444 --token abcdef.0123456789abcdef \\
          --discovery-token-ca-cert-hash sha256:8f1c... --node-name node3 \\
          --out /etc/tinykube/bootstrap-kubelet.conf
    [discovery] Trying to connect to API Server "10.0.0.1:6444"
    [discovery] Cluster CA "tinykube-ca" found, its public key hash matches the pin
    [discovery] Successfully established connection with API Server "10.0.0.1:6444"
    [kubelet-start] wrote the bootstrap kubeconfig /etc/tinykube/bootstrap-kubelet.conf

A joining node holds two secrets-in-a-sense: a bootstrap token (who it is
allowed to be for a while) and the CA pin (which cluster it means). The
order matters: the token must never go to a server that merely claims to be
the cluster, so the node first learns the CA *without trusting anything*,
checks it against the pin, and only then speaks -- exactly kubeadm's
token-based discovery:

1. A TLS handshake with verification off (ssl CERT_NONE, ALPN h2) to the
   API server's token port, whose serving chain is its certificate followed
   by the CA (apiserver/listeners.py). Nothing but the handshake is sent.
2. The CA is the last certificate of the chain that is a CA (BasicConstraints
   ca=True), else the one whose subject is the leaf's issuer.
3. Its pin, "sha256:" + hex SHA-256 of its DER SubjectPublicKeyInfo
   (certs.ca_hash, what `tinykube pki init` prints as "CA hash"), must equal
   --discovery-token-ca-cert-hash. If not, stop (exit 1) before the token is
   sent anywhere:

       error: the CA's public key hash sha256:5e2b... does not match the pin sha256:8f1c...

4. The leaf must be signed by that CA (and both valid now).
5. Only now a gRPC call (Version) over TLS verified against the CA, with
   `authorization: Bearer TOKEN`: proof that the token works. An expired,
   unknown or malformed token is refused by the server as UNAUTHENTICATED:

       error: the bootstrap token was refused: Unauthorized

   A PERMISSION_DENIED answer still proves the token authenticated (the
   server knew who was asking), so it counts as success.
6. --out is written, mode 0600: a kubeconfig with the CA, the token and the
   server https://HOST:PORT -- what `tinykube kubelet --bootstrap-kubeconfig`
   reads to ask for the node's certificate (kubelet/certificate/).

Reading the peer's chain: Python 3.13 has SSLSocket.get_unverified_chain();
3.10 to 3.12 have the same call on the socket's internal `_sslobj`. The
public one is used where it exists, the internal one otherwise, and an
interpreter with neither is told so rather than trusting anything.
"""

from __future__ import annotations

import _ssl
import asyncio
import re
import socket
import ssl
from pathlib import Path
from typing import Any

import click
from cryptography import x509

from apimachinery import certs, errors, kubeconfig
from apimachinery.channel import Credentials
from apimachinery.client import Client
from apimachinery.validation_names import is_dns1123_subdomain

BOOTSTRAP_USER = "tls-bootstrap-token-user"  # kubeadm's name for the token's user
_PIN = re.compile(r"^sha256:[0-9a-f]{64}$")


class JoinError(Exception):
    """Discovery or the token check failed; the message is the one line the user reads."""


def parse_address(text: str) -> tuple[str, int]:
    """HOST:PORT or [IPv6]:PORT -> (host, port)."""
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f'"{text}" is not HOST:PORT', param_hint="HOST:PORT")
    return host, int(port)


def parse_pin(text: str) -> str:
    pin = text.strip().lower()
    if not _PIN.match(pin):
        raise click.BadParameter(
            f'"{text}" is not sha256:<64 hex digits>',
            param_hint="--discovery-token-ca-cert-hash",
        )
    return pin


def unverified_chain(sock: ssl.SSLSocket) -> list[bytes]:
    """The DER certificates the peer sent, leaf first, not verified."""
    public = getattr(sock, "get_unverified_chain", None)
    if public is not None:  # Python 3.13+: DER bytes
        return [bytes(der) for der in public()]
    internal = getattr(getattr(sock, "_sslobj", None), "get_unverified_chain", None)
    if internal is None:
        raise JoinError(
            "this Python cannot read the server's certificate chain"
            " (ssl has no get_unverified_chain): use Python 3.10 or later"
        )
    chain: list[Any] = internal() or []  # _ssl.Certificate objects
    return [bytes(cert.public_bytes(_ssl.ENCODING_DER)) for cert in chain]


def handshake_chain(host: str, port: int, timeout: float = 10.0) -> list[x509.Certificate]:
    """The server's certificate chain from a TLS handshake that trusts nothing and sends nothing."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # nothing is trusted yet: the pin decides
    context.set_alpn_protocols(["h2"])
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            der_chain = unverified_chain(tls)
    except (OSError, ssl.SSLError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise JoinError(f"cannot reach the API server at {host}:{port}: {reason}") from None
    try:
        return [x509.load_der_x509_certificate(der) for der in der_chain]
    except ValueError as err:
        raise JoinError(
            f"the server at {host}:{port} sent an unreadable certificate: {err}"
        ) from None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def choose_ca(chain: list[x509.Certificate]) -> x509.Certificate:
    """The chain's CA: its last CA certificate, else the certificate that issued the leaf."""
    if not chain:
        raise JoinError("the server sent no certificate")
    authorities = [cert for cert in chain[1:] if _is_ca(cert)]
    if authorities:
        return authorities[-1]
    issuers = [cert for cert in chain[1:] if cert.subject == chain[0].issuer]
    if issuers:
        return issuers[-1]
    raise JoinError(
        "the server's TLS handshake carries no CA certificate to check against the pin"
        " (is this a tinykube API server's token port?)"
    )


def discover_ca(host: str, port: int, pin: str, timeout: float = 10.0) -> x509.Certificate:
    """The cluster CA from the handshake, once its hash equals `pin` and it signed the leaf."""
    chain = handshake_chain(host, port, timeout)
    ca = choose_ca(chain)
    found = certs.ca_hash(ca)
    if found != pin:
        raise JoinError(f"the CA's public key hash {found} does not match the pin {pin}")
    try:
        certs.verify_signed_by(chain[0], ca)
    except certs.CertError as err:
        raise JoinError(f"the server's certificate does not verify: {err}") from None
    return ca


async def check_token(target: str, ca_pem: bytes, token: str, timeout: float = 10.0) -> None:
    """One call with the token over TLS verified by the CA; JoinError if refused."""
    credentials = Credentials(ca_pem=ca_pem, token=token)
    async with Client(target, timeout=timeout, credentials=credentials) as client:
        try:
            await client.version()
        except errors.Unauthorized as err:
            raise JoinError(f"the bootstrap token was refused: {err.message}") from None
        except errors.Forbidden:
            pass  # authenticated, only not allowed to read the version: the token works
        except errors.StatusError as err:
            raise JoinError(str(err)) from None


def bootstrap_kubeconfig(server: str, ca: x509.Certificate, token: str) -> dict[str, Any]:
    return kubeconfig.new_config(
        server=server, ca_pem=certs.encode_cert_pem(ca), user=BOOTSTRAP_USER, token=token
    )


@click.command("join")
@click.argument("address", metavar="HOST:PORT")
@click.option("--token", required=True, help="The bootstrap token (abcdef.0123456789abcdef).")
@click.option(
    "--discovery-token-ca-cert-hash",
    "pin",
    required=True,
    metavar="sha256:HASH",
    help="The cluster CA's public key hash (`tinykube pki init` prints it).",
)
@click.option("--node-name", required=True, help="The name this node will register as.")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="Where to write the bootstrap kubeconfig (for `kubelet --bootstrap-kubeconfig`).",
)
@click.option("--timeout", default=10.0, show_default=True, help="Seconds per connection.")
def join(address: str, token: str, pin: str, node_name: str, out: str, timeout: float) -> None:
    """Check the cluster CA's pin; write a bootstrap kubeconfig.

    A new node's first step (kubeadm join's discovery): read the CA from the
    TLS handshake of HOST:PORT (the API server's token port), compare its
    public key hash with --discovery-token-ca-cert-hash before the token is
    sent, prove the token with one call, and write --out (0600) for
    `tinykube kubelet --bootstrap-kubeconfig`."""
    host, port = parse_address(address)
    wanted = parse_pin(pin)
    problems = is_dns1123_subdomain(node_name)
    if problems:
        raise click.BadParameter(problems[0], param_hint="--node-name")
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        click.echo(f'[discovery] Trying to connect to API Server "{target}"')
        ca = discover_ca(host, port, wanted, timeout)
        common = ca.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        name = str(common[0].value) if common else ca.subject.rfc4514_string()
        click.echo(f'[discovery] Cluster CA "{name}" found, its public key hash matches the pin')
        asyncio.run(check_token(target, certs.encode_cert_pem(ca), token, timeout))
        click.echo(f'[discovery] Successfully established connection with API Server "{target}"')
        kubeconfig.write(out, bootstrap_kubeconfig(f"https://{target}", ca, token))
    except JoinError as err:
        click.echo(f"error: {err}", err=True)
        raise click.exceptions.Exit(1) from None
    except OSError as err:
        click.echo(f"error: {err.filename or out}: {err.strerror or err}", err=True)
        raise click.exceptions.Exit(1) from None
    click.echo(f"[kubelet-start] wrote the bootstrap kubeconfig {Path(out)}")
    click.echo(
        f"Next: tinykube kubelet --node-name {node_name} --bootstrap-kubeconfig {out}"
        " --kubeconfig /etc/tinykube/kubelet.conf ... (tinykube kubelet --help)"
    )
