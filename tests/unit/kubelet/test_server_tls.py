"""The kubelet server behind mutual TLS, and the API server's proxy dialing it.

Certificates come from `tinykube pki init` (cli/cmd_pki.py): the API server's
client certificate to kubelets and the admin's (system:masters) may call logs
and exec; a node's own client certificate, signed by the same CA, is
Forbidden; no certificate, or no TLS at all, fails the handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import grpc
import grpc.aio
import pytest

from apimachinery import certs, errors, kubeconfig
from apimachinery.channel import Credentials
from apimachinery.client import Client
from apiserver.proxy import KubeletClientConfig, PodProxy
from apiserver.server import APIServer
from cli.cmd_pki import NodeSpec, PkiOptions, init_pki
from kubelet.kubelet import Kubelet
from kubelet.runtime.fake import FakeRuntime
from kubelet.runtime.interface import Container, ContainerRuntime
from kubelet.server import KubeletServer, ServingTLS
from kubelet.server_auth import authorize
from protos import api_pb2, core_pb2, kubelet_pb2, kubelet_pb2_grpc
from tests.unit.kubelet.conftest import eventually, fast_config, pod, set_pod_cidr

LOOPBACK = ipaddress.ip_address("127.0.0.1")


@dataclass(frozen=True)
class Pki:
    """The files of one `pki init`, read back as the test needs them."""

    directory: Path

    def pki(self, name: str) -> bytes:
        return (self.directory / "pki" / name).read_bytes()

    @property
    def ca(self) -> bytes:
        return self.pki("ca.crt")

    def client_pair(self, kubeconfig_name: str) -> tuple[bytes, bytes]:
        config = kubeconfig.load(self.directory / kubeconfig_name)
        assert config.cert_pem is not None and config.key_pem is not None
        return config.cert_pem, config.key_pem

    def serving(self, node: str = "node1") -> ServingTLS:
        return ServingTLS.from_files(
            str(self.directory / "pki" / f"kubelet-{node}.crt"),
            str(self.directory / "pki" / f"kubelet-{node}.key"),
            str(self.directory / "pki" / "ca.crt"),
        )

    def apiserver_client(self) -> KubeletClientConfig:
        return KubeletClientConfig.from_files(
            str(self.directory / "pki" / "apiserver-kubelet-client.crt"),
            str(self.directory / "pki" / "apiserver-kubelet-client.key"),
            str(self.directory / "pki" / "ca.crt"),
        )


def make_pki(directory: Path) -> Pki:
    opts = PkiOptions(directory=directory, nodes=(NodeSpec("node1", (LOOPBACK,)),))
    init_pki(opts, echo=lambda _line: None)
    return Pki(directory)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    yield make_pki(tmp_path_factory.mktemp("pki"))


@dataclass
class TlsNode:
    """A kubelet serving mutual TLS on loopback, with one running pod "web"."""

    kubelet: Kubelet
    runtime: FakeRuntime

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.kubelet.server.port}"


@pytest.fixture
async def tls_node(client: Client, pki: Pki) -> AsyncIterator[TlsNode]:
    runtime = FakeRuntime()
    runtime.files[("web", "/etc/hostname")] = b"web\n"
    runtime.behave("web", logs=["one", "two"])
    kubelet = Kubelet(client, fast_config("node1", node_ip="127.0.0.1"), runtime)
    kubelet.server.use_tls(pki.serving())
    task = asyncio.ensure_future(kubelet.run())
    try:
        assert await kubelet.wait_started(timeout=10)
        await set_pod_cidr(client, "node1", "10.244.1.0/24")
        await client.create(pod("web", "node1", "web"))

        async def running() -> bool:
            return bool((await client.get("pods", "web")).status.phase == "Running")

        await eventually(running)
        yield TlsNode(kubelet, runtime)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _exec_request() -> kubelet_pb2.ContainerExecRequest:
    return kubelet_pb2.ContainerExecRequest(
        namespace="default", pod="web", command=["cat", "/etc/hostname"], timeout_seconds=5
    )


async def _exec(address: str, credentials: grpc.ChannelCredentials | None) -> bytes:
    channel = (
        grpc.aio.insecure_channel(address)
        if credentials is None
        else grpc.aio.secure_channel(address, credentials)
    )
    async with channel:
        stub = kubelet_pb2_grpc.KubeletStub(channel)
        answer = await stub.Exec(_exec_request(), timeout=5)
        return bytes(answer.stdout)


async def _logs(address: str, credentials: grpc.ChannelCredentials) -> list[str]:
    async with grpc.aio.secure_channel(address, credentials) as channel:
        stub = kubelet_pb2_grpc.KubeletStub(channel)
        request = kubelet_pb2.ContainerLogsRequest(namespace="default", pod="web")
        return [line async for chunk in stub.Logs(request, timeout=5) for line in chunk.lines]


def _mtls(pki: Pki, cert_pem: bytes, key_pem: bytes) -> grpc.ChannelCredentials:
    return Credentials(ca_pem=pki.ca, cert_pem=cert_pem, key_pem=key_pem).channel_credentials()


async def test_the_apiserver_and_admins_may_call_logs_and_exec(tls_node: TlsNode, pki: Pki) -> None:
    apiserver = _mtls(
        pki, pki.pki("apiserver-kubelet-client.crt"), pki.pki("apiserver-kubelet-client.key")
    )
    assert await _exec(tls_node.address, apiserver) == b"web\n"
    assert await _logs(tls_node.address, apiserver) == ["one", "two"]
    admin = _mtls(pki, *pki.client_pair("admin.conf"))
    assert await _exec(tls_node.address, admin) == b"web\n"


async def test_a_node_certificate_is_forbidden(tls_node: TlsNode, pki: Pki) -> None:
    (node_dir := pki.directory / "other").mkdir(exist_ok=True)
    other = make_pki(node_dir)  # another CA: its certificates fail the handshake
    node = _mtls(pki, *pki.client_pair("kubelet-node1.conf"))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _exec(tls_node.address, node)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert refused.value.details() == (
        "Forbidden (user=system:node:node1, verb=create, resource=nodes, subresource=proxy)"
    )
    with pytest.raises(grpc.aio.AioRpcError) as logs:
        await _logs(tls_node.address, node)
    assert logs.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "user=system:node:node1, verb=get," in (logs.value.details() or "")
    stranger = _mtls(pki, *other.client_pair("admin.conf"))
    with pytest.raises(grpc.aio.AioRpcError) as foreign:
        await _exec(tls_node.address, stranger)
    assert foreign.value.code() == grpc.StatusCode.UNAVAILABLE
    assert not [c for c in tls_node.runtime.calls if c[0] == "exec_sync"]


async def test_no_certificate_is_unauthorized_and_plain_text_fails_the_handshake(
    tls_node: TlsNode, pki: Pki
) -> None:
    # TLS without a client certificate: asked for one, none given -> Unauthorized (401).
    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await _exec(tls_node.address, Credentials(ca_pem=pki.ca).channel_credentials())
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert anonymous.value.details() == "Unauthorized"
    with pytest.raises(grpc.aio.AioRpcError) as plain:
        await _exec(tls_node.address, None)
    assert plain.value.code() == grpc.StatusCode.UNAVAILABLE
    assert not [c for c in tls_node.runtime.calls if c[0] == "exec_sync"]


def test_the_rule_names_the_user_and_the_verb() -> None:
    authorize(certs.Identity("kube-apiserver-kubelet-client"), "get")
    authorize(certs.Identity("jane", ("system:masters",)), "create")
    with pytest.raises(errors.Forbidden, match=r"^Forbidden \(user=jane, verb=get,"):
        authorize(certs.Identity("jane", ("developers",)), "get")


def test_serving_tls_checks_its_files(pki: Pki, tmp_path: Path) -> None:
    base = pki.directory / "pki"
    with pytest.raises(certs.CertError, match="is not the key of"):
        ServingTLS.from_files(
            str(base / "kubelet-node1.crt"), str(base / "ca.key"), str(base / "ca.crt")
        )
    with pytest.raises(FileNotFoundError):
        ServingTLS.from_files(str(tmp_path / "no.crt"), str(base / "ca.key"), str(base / "ca.crt"))


# ---- the API server's proxy to a TLS kubelet ----------------------------------------------


class Aborted(Exception):
    """What FakeContext.abort_with_status raises: the status the handler answered with."""

    def __init__(self, status: grpc.Status) -> None:
        super().__init__(status.details)
        self.status = status


class FakeContext:
    async def abort_with_status(self, status: grpc.Status) -> NoReturn:
        raise Aborted(status)


class Proxy(PodProxy):
    """PodProxy over the test API server's store, with the dial configuration given."""

    def __init__(self, server: APIServer, kubelet_client: KubeletClientConfig) -> None:
        self.store = server.store
        self.kubelet_client = kubelet_client


async def _proxy_exec(server: APIServer, kubelet_client: KubeletClientConfig) -> bytes:
    request = api_pb2.PodExecRequest(
        namespace="default", name="web", command=["cat", "/etc/hostname"], timeout_seconds=5
    )
    answer = await Proxy(server, kubelet_client).PodExec(request, FakeContext())
    return bytes(answer.stdout)


async def test_the_proxy_dials_kubelets_with_tls(
    server: APIServer, tls_node: TlsNode, pki: Pki
) -> None:
    assert await _proxy_exec(server, pki.apiserver_client()) == b"web\n"
    request = api_pb2.PodLogsRequest(namespace="default", name="web")
    proxy = Proxy(server, pki.apiserver_client())
    chunks = [chunk async for chunk in proxy.PodLogs(request, FakeContext())]
    assert [line for chunk in chunks for line in chunk.lines] == ["one", "two"]


async def test_the_proxy_refuses_a_kubelet_it_cannot_verify(
    server: APIServer, tls_node: TlsNode, pki: Pki, tmp_path: Path
) -> None:
    address = tls_node.address
    with pytest.raises(Aborted) as plain:  # a plain dial to a TLS port
        await _proxy_exec(server, KubeletClientConfig())
    assert plain.value.status.code == grpc.StatusCode.UNAVAILABLE
    assert f"cannot reach the kubelet at {address}:" in plain.value.status.details

    other = make_pki(tmp_path / "other")  # a kubelet of another CA: verification fails
    foreign = KubeletClientConfig(
        ca_pem=other.ca,
        cert_pem=pki.pki("apiserver-kubelet-client.crt"),
        key_pem=pki.pki("apiserver-kubelet-client.key"),
    )
    with pytest.raises(Aborted) as unverified:
        await _proxy_exec(server, foreign)
    assert unverified.value.status.details == (
        f"cannot reach the kubelet at {address}: TLS handshake failed: certificate verify failed"
    )

    node_cert, node_key = pki.client_pair("kubelet-node1.conf")  # a kubelet may not call one
    as_node = KubeletClientConfig(ca_pem=pki.ca, cert_pem=node_cert, key_pem=node_key)
    with pytest.raises(Aborted) as forbidden:
        await _proxy_exec(server, as_node)
    assert forbidden.value.status.code == grpc.StatusCode.PERMISSION_DENIED
    assert "user=system:node:node1" in forbidden.value.status.details


def test_the_kubelet_client_config_checks_its_parts(pki: Pki) -> None:
    with pytest.raises(ValueError, match="needs its key"):
        KubeletClientConfig(ca_pem=pki.ca, cert_pem=pki.pki("apiserver-kubelet-client.crt"))
    with pytest.raises(ValueError, match="--kubelet-certificate-authority"):
        KubeletClientConfig(
            cert_pem=pki.pki("apiserver-kubelet-client.crt"),
            key_pem=pki.pki("apiserver-kubelet-client.key"),
        )
    assert not KubeletClientConfig().tls and pki.apiserver_client().tls


class NoPods:
    """A kubelet with no pods: every lookup is NotFound."""

    def __init__(self) -> None:
        self.runtime: ContainerRuntime = FakeRuntime()

    def find_pod(self, namespace: str, name: str) -> core_pb2.Pod | None:
        return None

    async def pod_containers(self, pod: core_pb2.Pod) -> list[Container]:
        return []


async def test_a_unix_socket_is_plain_and_private(tmp_path: Path) -> None:
    server = KubeletServer(NoPods(), f"unix:{tmp_path}/kubelet.sock", 10250, "node1")
    assert await server.start() == 10250  # the published port is left as configured
    try:
        assert os.stat(tmp_path / "kubelet.sock").st_mode & 0o777 == 0o600
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await _exec(f"unix:{tmp_path}/kubelet.sock", None)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        assert missing.value.details() == 'pod "web" not found on node node1'
    finally:
        await server.stop()
