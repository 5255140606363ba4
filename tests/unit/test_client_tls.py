"""The client over TLS: a real handshake against certificates made by `tinykube pki init`.

The server is a minimal grpc.aio server in this test implementing one RPC
(Version) with the generated servicer, since the API server cannot serve TLS
yet. It requires client certificates signed by the cluster CA (as
kube-apiserver's --client-ca-file does) and records, per call, who the TLS
layer says the caller is and what metadata arrived.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from apimachinery import certs, errors, kubeconfig
from apimachinery.certs import CertConfig, CertKeyPair
from apimachinery.channel import Credentials
from apimachinery.client import Client
from cli.cmd_pki import PkiOptions, init_pki
from protos import api_pb2, api_pb2_grpc

TIMEOUT = 5.0


class VersionOnly(api_pb2_grpc.ResourcesServicer):
    """Answers Version; remembers each caller's certificate CN and metadata."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []

    async def Version(self, request: api_pb2.VersionRequest, context: Any) -> api_pb2.VersionInfo:
        names = context.auth_context().get("x509_common_name", [b""])
        metadata = {m.key: m.value for m in context.invocation_metadata()}
        self.calls.append((names[0].decode(), metadata))
        return api_pb2.VersionInfo(git_version="v0.tls")


@dataclasses.dataclass
class TLSServer:
    port: int
    servicer: VersionOnly


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    init_pki(PkiOptions(directory), echo=lambda _: None)
    return directory


@asynccontextmanager
async def serve(
    cert_pem: bytes, key_pem: bytes, ca_pem: bytes, *, require_client_auth: bool = True
) -> AsyncIterator[TLSServer]:
    servicer = VersionOnly()  # type: ignore[abstract]  # the other RPCs: UNIMPLEMENTED
    server = grpc.aio.server()
    api_pb2_grpc.add_ResourcesServicer_to_server(servicer, server)
    credentials = grpc.ssl_server_credentials(
        [(key_pem, cert_pem)], root_certificates=ca_pem, require_client_auth=require_client_auth
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    try:
        yield TLSServer(port, servicer)
    finally:
        await server.stop(grace=None)


def pki_server(pki: Path, *, require_client_auth: bool = True) -> Any:
    return serve(
        (pki / "pki" / "apiserver.crt").read_bytes(),
        (pki / "pki" / "apiserver.key").read_bytes(),
        (pki / "pki" / "ca.crt").read_bytes(),
        require_client_auth=require_client_auth,
    )


def admin_config(pki: Path, port: int) -> kubeconfig.ClientConfig:
    """admin.conf, pointed at the test server's port (pki init wrote 6443)."""
    text = (
        (pki / "admin.conf")
        .read_text()
        .replace("https://127.0.0.1:6443", f"https://127.0.0.1:{port}")
    )
    return kubeconfig.loads(text, source="admin.conf")


def other_ca_pair(common_name: str, **kwargs: Any) -> tuple[CertKeyPair, CertKeyPair]:
    key = certs.generate_key()
    ca = CertKeyPair(certs.new_self_signed_ca(key), key)
    return ca, certs.new_cert_and_key(ca, CertConfig(common_name, **kwargs))


async def refused(address: str, credentials: Credentials | None) -> str:
    async with Client(address, timeout=TIMEOUT, credentials=credentials) as client:
        with pytest.raises(errors.ServiceUnavailable) as info:
            await client.version()
    return str(info.value)


async def test_the_admin_kubeconfig_gets_through_as_kubernetes_admin(pki: Path) -> None:
    async with pki_server(pki) as server:
        config = admin_config(pki, server.port)
        async with Client.from_config(config, timeout=TIMEOUT) as client:
            assert client.server == f"127.0.0.1:{server.port}"
            assert (await client.version()).git_version == "v0.tls"
            assert (await client.version()).git_version == "v0.tls"
        assert [cn for cn, _ in server.servicer.calls] == ["kubernetes-admin"] * 2
        assert all("authorization" not in metadata for _, metadata in server.servicer.calls)


async def test_every_pki_kubeconfig_is_accepted(pki: Path) -> None:
    async with pki_server(pki) as server:
        for name in ("scheduler.conf", "controller-manager.conf"):
            credentials = kubeconfig.load(pki / name).credentials()
            async with Client(f"127.0.0.1:{server.port}", credentials=credentials) as client:
                await client.version()
        assert [cn for cn, _ in server.servicer.calls] == [
            "system:kube-scheduler",
            "system:kube-controller-manager",
        ]


async def test_a_dns_san_is_checked_when_dialing_a_name(pki: Path) -> None:
    async with pki_server(pki) as server:
        credentials = admin_config(pki, server.port).credentials()
        async with Client(f"localhost:{server.port}", credentials=credentials) as client:
            assert (await client.version()).git_version == "v0.tls"


async def test_a_bearer_token_goes_with_every_call(pki: Path) -> None:
    ca_pem = (pki / "pki" / "ca.crt").read_bytes()
    async with pki_server(pki, require_client_auth=False) as server:
        credentials = Credentials(ca_pem=ca_pem, token="abcdef.0123456789abcdef")
        async with Client(f"127.0.0.1:{server.port}", credentials=credentials) as client:
            await client.version()
            await client.version()
        assert [m.get("authorization") for _, m in server.servicer.calls] == [
            "Bearer abcdef.0123456789abcdef"
        ] * 2
        assert [cn for cn, _ in server.servicer.calls] == ["", ""]  # no certificate: anonymous TLS


async def test_a_token_and_a_certificate_together(pki: Path) -> None:
    async with pki_server(pki) as server:
        config = dataclasses.replace(admin_config(pki, server.port), token="t0ken")
        async with Client.from_config(config) as client:
            await client.version()
        assert server.servicer.calls == [("kubernetes-admin", server.servicer.calls[0][1])]
        assert server.servicer.calls[0][1]["authorization"] == "Bearer t0ken"


async def test_a_client_without_a_certificate_is_refused(pki: Path) -> None:
    ca_pem = (pki / "pki" / "ca.crt").read_bytes()
    async with pki_server(pki) as server:
        address = f"127.0.0.1:{server.port}"
        message = await refused(address, Credentials(ca_pem=ca_pem))
        assert message == (
            f"cannot reach the API server at {address}: connection closed "
            "(did the server refuse the client certificate?)"
        )
        plain = await refused(address, None)
        assert plain == f"cannot reach the API server at {address}: connection closed"
        assert server.servicer.calls == []


async def test_a_certificate_from_another_ca_is_refused(pki: Path) -> None:
    ca_pem = (pki / "pki" / "ca.crt").read_bytes()
    _, mallory = other_ca_pair("kubernetes-admin", organizations=("system:masters",))
    credentials = Credentials(
        ca_pem=ca_pem,
        cert_pem=certs.encode_cert_pem(mallory.cert),
        key_pem=certs.encode_key_pem(mallory.key),
    )
    async with pki_server(pki) as server:
        message = await refused(f"127.0.0.1:{server.port}", credentials)
        assert "did the server refuse the client certificate?" in message
        assert server.servicer.calls == []


async def test_a_server_from_another_ca_is_not_trusted(pki: Path) -> None:
    config = admin_config(pki, 1)
    other_ca, _ = other_ca_pair("unused")
    credentials = dataclasses.replace(
        config.credentials() or Credentials(), ca_pem=certs.encode_cert_pem(other_ca.cert)
    )
    async with pki_server(pki) as server:
        message = await refused(f"127.0.0.1:{server.port}", credentials)
        assert message.endswith(": TLS handshake failed: certificate verify failed")
        assert server.servicer.calls == []


async def test_the_ip_dialed_must_be_a_san_unless_a_server_name_is_given(pki: Path) -> None:
    ca = CertKeyPair(
        certs.read_cert(pki / "pki" / "ca.crt"), certs.read_key(pki / "pki" / "ca.key")
    )
    named_only = certs.new_cert_and_key(
        ca, CertConfig("kube-apiserver", usages=("server",), dns_names=("kubernetes",))
    )
    assert certs.subject_alt_names(named_only.cert)[0] == []
    ip_only = certs.new_cert_and_key(
        ca,
        CertConfig(
            "kube-apiserver", usages=("server",), ip_addresses=(ipaddress.ip_address("10.9.9.9"),)
        ),
    )
    client_credentials = admin_config(pki, 1).credentials()
    assert client_credentials is not None
    for pair in (named_only, ip_only):
        async with serve(
            certs.encode_cert_pem(pair.cert),
            certs.encode_key_pem(pair.key),
            certs.encode_cert_pem(ca.cert),
        ) as server:
            address = f"127.0.0.1:{server.port}"
            message = await refused(address, client_credentials)
            assert message == (
                f"cannot reach the API server at {address}: TLS handshake failed: "
                "the server's certificate has no subjectAltName for this address"
            )
            assert server.servicer.calls == []
    async with serve(
        certs.encode_cert_pem(named_only.cert),
        certs.encode_key_pem(named_only.key),
        certs.encode_cert_pem(ca.cert),
    ) as server:
        named = dataclasses.replace(client_credentials, server_name="kubernetes")
        async with Client(f"127.0.0.1:{server.port}", credentials=named) as client:
            assert (await client.version()).git_version == "v0.tls"


def test_credentials_need_a_key_with_a_certificate() -> None:
    with pytest.raises(ValueError, match="a client certificate needs its key"):
        Credentials(ca_pem=b"x", cert_pem=b"y")
    with pytest.raises(ValueError, match="a client certificate needs its key"):
        Credentials(key_pem=b"y")
    assert "t0ken" not in repr(Credentials(token="t0ken"))
