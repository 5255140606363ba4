"""Who may call the API server: TLS only, identities from certificates and tokens, the Node
authorizer, each refusal in Kubernetes' words -- through a real server and real TLS."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner

from apimachinery import certs, errors, kubeconfig
from apimachinery.channel import Credentials
from apimachinery.client import Client
from apiserver.auth.authorizer import UserInfo
from apiserver.listeners import ServingOptions
from apiserver.server import APIServer
from apiserver.storage import open_storage
from cli.cmd_pki import NodeSpec, PkiOptions, init_pki
from cli.main import cli
from protos import api_pb2, api_pb2_grpc, core_pb2, meta_pb2, rbac_pb2

LOCAL = ipaddress.ip_address("127.0.0.1")


@dataclasses.dataclass
class Secured:
    server: APIServer
    pki: Path
    mtls: str
    token: str

    def client(self, conf: str) -> Client:
        config = kubeconfig.load(self.pki / conf)
        return Client.from_config(dataclasses.replace(config, target=self.mtls), timeout=10)


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Secured]:
    pki = tmp_path / "pki-dir"
    nodes = (NodeSpec("node1", (LOCAL,)), NodeSpec("node2", (LOCAL,)))
    init_pki(PkiOptions(directory=pki, nodes=nodes), echo=lambda *_: None)
    storage = await open_storage("sqlite", str(tmp_path / "data"))
    serving = ServingOptions(
        listen=("127.0.0.1:0",),
        token_listen=("127.0.0.1:0",),
        tls_cert_file=str(pki / "pki" / "apiserver.crt"),
        tls_private_key_file=str(pki / "pki" / "apiserver.key"),
        client_ca_file=str(pki / "pki" / "ca.crt"),
    )
    tokens = {"s3cret-token": UserInfo("bob", ("developers",), uid="42")}
    server = APIServer(storage, f"unix:{tmp_path}/api.sock", serving=serving, static_tokens=tokens)
    await server.start()
    try:
        yield Secured(server, pki, f"127.0.0.1:{server.ports[1]}", f"127.0.0.1:{server.ports[2]}")
    finally:
        await server.stop(grace=0)


def token_client(s: Secured, token: str) -> Client:
    ca = (s.pki / "pki" / "ca.crt").read_bytes()
    return Client(s.token, timeout=10, credentials=Credentials(ca_pem=ca, token=token))


async def test_no_credentials_no_service(secured: Secured) -> None:
    ca = (secured.pki / "pki" / "ca.crt").read_bytes()
    anonymous = Client(secured.token, timeout=5, credentials=Credentials(ca_pem=ca))
    async with anonymous:
        with pytest.raises(errors.Unauthorized, match=r"^Unauthorized$"):
            await anonymous.list("secrets")
        p = core_pb2.Pod(metadata=meta_pb2.ObjectMeta(name="x"))
        p.spec.containers.add(name="c", image="i")
        with pytest.raises(errors.Unauthorized):
            await anonymous.create(p)
    async with token_client(secured, "wrong-token") as wrong:
        with pytest.raises(errors.Unauthorized):
            await wrong.list("secrets")
    # The API port asks for a certificate and verifies it if given, as Kubernetes' does:
    # with neither certificate nor token the answer is Unauthorized, with a token it is
    # the token's user, and a certificate of another CA fails the handshake.
    async with Client(secured.mtls, timeout=5, credentials=Credentials(ca_pem=ca)) as nocert:
        with pytest.raises(errors.Unauthorized, match=r"^Unauthorized$"):
            await nocert.list("secrets")
        with pytest.raises(errors.Unauthorized):
            await nocert.create(p)
    bob = Credentials(ca_pem=ca, token="s3cret-token")
    async with Client(secured.mtls, timeout=5, credentials=bob) as by_token:
        with pytest.raises(errors.Forbidden, match='User "bob" cannot list'):
            await by_token.list("secrets")
    other_key = certs.generate_key()
    other_ca = certs.new_self_signed_ca(other_key, "other-ca")
    stranger_key = certs.generate_key()
    stranger = certs.sign_certificate(
        certs.CertKeyPair(other_ca, other_key),
        stranger_key.public_key(),
        certs.CertConfig("system:node:node1", ("system:nodes",)),
    )
    forged = Credentials(
        ca_pem=ca,
        cert_pem=certs.encode_cert_pem(stranger),
        key_pem=certs.encode_key_pem(stranger_key),
    )
    async with Client(secured.mtls, timeout=5, credentials=forged) as impostor:
        with pytest.raises(errors.ServiceUnavailable):
            await impostor.list("secrets")


@pytest.mark.parametrize("port", ["mtls", "token"])
def test_plain_text_fails_the_handshake(secured: Secured, port: str) -> None:
    host, _, number = getattr(secured, port).rpartition(":")
    with socket.create_connection((host, int(number)), timeout=5) as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")  # an h2c preface, no TLS
        sock.settimeout(5)
        answer = sock.recv(64)
    # No HTTP/2 frame comes back: the connection is closed, or answered by a TLS alert.
    assert answer == b"" or answer[0] == 0x15, answer


async def test_admin_and_token_users(secured: Secured) -> None:
    async with secured.client("admin.conf") as admin:
        await admin.create(
            core_pb2.Secret(metadata=meta_pb2.ObjectMeta(name="db"), data={"k": b"v"})
        )
        assert len((await admin.list(core_pb2.Secret))[0]) == 1
    async with token_client(secured, "s3cret-token") as bob:
        with pytest.raises(errors.Forbidden) as refused:
            await bob.list(core_pb2.Pod, "default")
    assert str(refused.value).startswith(
        'pods is forbidden: User "bob" cannot list resource "pods" in API group ""'
        ' in the namespace "default"'
    )


def pod_using(name: str, node: str, secret: str) -> core_pb2.Pod:
    pod = core_pb2.Pod(metadata=meta_pb2.ObjectMeta(name=name))
    pod.spec.node_name = node
    pod.spec.containers.add(name="c", image="nginx")
    pod.spec.volumes.add(name="s").secret.secret_name = secret
    return pod


async def test_a_node_reaches_only_its_own_things(secured: Secured) -> None:
    async with secured.client("admin.conf") as admin:
        for name in ("db1", "db2"):
            await admin.create(
                core_pb2.Secret(metadata=meta_pb2.ObjectMeta(name=name), data={"k": b"v"})
            )
        await admin.create(pod_using("web1", "node1", "db1"))
        await admin.create(pod_using("web2", "node2", "db2"))
        for node in ("node1", "node2"):
            await admin.create(core_pb2.Node(metadata=meta_pb2.ObjectMeta(name=node)))
    async with secured.client("kubelet-node2.conf") as node2:
        assert (await node2.get(core_pb2.Secret, "db2")).data["k"] == b"v"
        with pytest.raises(errors.Forbidden) as secret:
            await node2.get(core_pb2.Secret, "db1")
        node1 = await node2.get(core_pb2.Node, "node1")
        node1.metadata.labels["stolen"] = "yes"
        with pytest.raises(errors.Forbidden) as update:
            await node2.update(node1)
        own = await node2.get(core_pb2.Node, "node2")
        own.metadata.labels["mine"] = "yes"
        assert (await node2.update(own)).metadata.labels["mine"] == "yes"
        with pytest.raises(errors.Forbidden):
            await node2.list(core_pb2.Secret)
    assert str(secret.value) == (
        'secrets "db1" is forbidden: User "system:node:node2" cannot get resource "secrets"'
        ' in API group "" in the namespace "default": no relationship found between node'
        " 'node2' and this object"
    )
    assert str(update.value) == (
        'nodes "node1" is forbidden: User "system:node:node2" cannot update resource "nodes"'
        " in API group \"\" at the cluster scope: node 'node2' cannot modify node 'node1'"
    )


async def test_tcp_without_tls_is_refused(tmp_path: Path) -> None:
    storage = await open_storage("sqlite", str(tmp_path))
    try:
        with pytest.raises(ValueError, match="needs --tls-cert-file, --tls-private-key-file"):
            APIServer(storage, "127.0.0.1:0")
    finally:
        await storage.close()


async def test_access_review_answers_for_the_caller(secured: Secured) -> None:
    ca = (secured.pki / "pki" / "ca.crt").read_bytes()
    creds = Credentials(ca_pem=ca, token="s3cret-token").channel_credentials()
    async with grpc.aio.secure_channel(secured.token, creds) as channel:
        stub = api_pb2_grpc.ResourcesStub(channel)
        review = api_pb2.AccessReviewRequest(verb="list", resource="pods", namespace="default")
        answer = await stub.AccessReview(review)
    assert (answer.allowed, answer.user) == (False, "bob")
    assert list(answer.groups) == ["developers", "system:authenticated"]
    node = kubeconfig.load(secured.pki / "kubelet-node1.conf")
    node_creds = dataclasses.replace(node, target=secured.mtls).credentials()
    assert node_creds is not None
    async with grpc.aio.secure_channel(secured.mtls, node_creds.channel_credentials()) as channel:
        stub = api_pb2_grpc.ResourcesStub(channel)
        mine = api_pb2.AccessReviewRequest(verb="update", resource="nodes", name="node1")
        theirs = api_pb2.AccessReviewRequest(verb="update", resource="nodes", name="node2")
        assert (await stub.AccessReview(mine)).allowed
        refused = await stub.AccessReview(theirs)
    assert not refused.allowed and refused.reason == "node 'node1' cannot modify node 'node2'"


def role_for_bob(namespace: str) -> tuple[rbac_pb2.Role, rbac_pb2.RoleBinding]:
    group = "rbac.authorization.k8s.io"
    role = rbac_pb2.Role(metadata=meta_pb2.ObjectMeta(name="pod-reader", namespace=namespace))
    role.rules.add(api_groups=[""], resources=["pods"], verbs=["get", "list"])
    binding = rbac_pb2.RoleBinding(metadata=meta_pb2.ObjectMeta(name="bob", namespace=namespace))
    binding.role_ref.CopyFrom(rbac_pb2.RoleRef(api_group=group, kind="Role", name="pod-reader"))
    binding.subjects.add(kind="User", api_group=group, name="bob")
    return role, binding


async def test_rbac_a_role_in_one_namespace(secured: Secured, tmp_path: Path) -> None:
    async with secured.client("admin.conf") as admin:
        await admin.create(core_pb2.Namespace(metadata=meta_pb2.ObjectMeta(name="team")))
        for obj in role_for_bob("team"):
            await admin.create(obj)
    async with token_client(secured, "s3cret-token") as bob:

        async def listed() -> bool:
            try:
                await bob.list(core_pb2.Pod, "team")
            except errors.Forbidden:
                return False
            return True

        for _ in range(100):  # the RBAC index follows storage's watch: a moment
            if await listed():
                break
            await asyncio.sleep(0.05)
        assert await listed()
        with pytest.raises(errors.Forbidden, match='cannot list resource "pods"'):
            await bob.list(core_pb2.Pod, "default")
        with pytest.raises(errors.Forbidden, match='cannot delete resource "pods"'):
            await bob.delete(core_pb2.Pod, "x", "team")
    # `tinykube auth can-i` agrees, with bob's kubeconfig.
    ca = (secured.pki / "pki" / "ca.crt").read_bytes()
    config = kubeconfig.new_config(
        server=f"https://{secured.token}", ca_pem=ca, user="bob", token="s3cret-token"
    )
    path = tmp_path / "bob.conf"
    kubeconfig.write(path, config)

    def can_i(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(cli, ["--kubeconfig", str(path), "auth", "can-i", *args])
        return result.exit_code, result.output.strip()

    assert await asyncio.to_thread(can_i, "list", "pods", "-n", "team") == (0, "yes")
    code, out = await asyncio.to_thread(can_i, "list", "pods", "-n", "default")
    assert code == 1 and out.startswith("no")
    code, out = await asyncio.to_thread(can_i, "delete", "pods", "-n", "team")
    assert code == 1 and out.startswith("no")


async def test_access_review_as_someone_else_needs_impersonation(secured: Secured) -> None:
    async with secured.client("admin.conf") as admin:
        for obj in role_for_bob("default"):
            await admin.create(obj)
        for _ in range(100):
            allowed, _ = await admin.access_review("list", "pods", namespace="default", user="bob")
            if allowed:
                break
            await asyncio.sleep(0.05)
        assert allowed  # the admin may impersonate anyone: bob may list pods here
        assert not (await admin.access_review("delete", "pods", namespace="default", user="bob"))[0]
    async with token_client(secured, "s3cret-token") as bob:
        with pytest.raises(errors.Forbidden) as refused:
            await bob.access_review("list", "pods", namespace="default", user="alice")
    assert str(refused.value) == (
        'users "alice" is forbidden: User "bob" cannot impersonate resource "users" in API group ""'
        " at the cluster scope"
    )


async def test_the_cli_says_unauthorized_as_kubectl(secured: Secured, tmp_path: Path) -> None:
    ca = (secured.pki / "pki" / "ca.crt").read_bytes()
    path = tmp_path / "nobody.conf"
    kubeconfig.write(
        path, kubeconfig.new_config(server=f"https://{secured.token}", ca_pem=ca, user="nobody")
    )
    args = ["--kubeconfig", str(path), "get", "secrets"]
    result = await asyncio.to_thread(CliRunner().invoke, cli, args)
    assert result.exit_code == 1
    assert result.stderr == "error: You must be logged in to the server (Unauthorized)\n"


async def test_the_tls_front_forgets_closed_connections(secured: Secured) -> None:
    [front] = secured.server.listeners.fronts
    async with secured.client("admin.conf") as admin:
        await admin.list(core_pb2.Pod)
        assert [i.user for i in front.identities.values() if i] == ["kubernetes-admin"]
        relay_dir = Path(next(iter(front.identities))).parent
    for _ in range(100):  # the relay ends when the client's connection does
        if not front.identities:
            break
        await asyncio.sleep(0.05)
    assert front.identities == {}
    assert [p.name for p in relay_dir.iterdir()] == []  # every relay socket unlinked
