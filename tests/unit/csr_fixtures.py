"""CertificateSigningRequests for the tests: kubelet client requests, a CA, a secured server.

`kubelet_csr("node3")` is what a kubelet bootstrapping as node3 sends:
CN system:node:node3, O system:nodes, usages digital signature + client
auth, signer kubernetes.io/kube-apiserver-client-kubelet.

Who asked is what the API server stamps from the caller's identity
(apiserver/auth/requester.py), so the tests ask as the real callers do:
`secured_cluster` is an API server with the PKI of `tinykube pki init`, the
local admin on its unix socket, a kubelet's mutual-TLS client
(`kubelet_client("node1")`, system:node:node1), a bootstrap token's client
on the token port (`bootstrap_client()`, system:bootstrap:abcdef, whose token
is a real kube-system Secret) and a static token's (`token_client("bob-token")`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path

from apimachinery import certs, errors, kubeconfig
from apimachinery import clusterbootstrap as bt
from apimachinery import csr as csrs
from apimachinery.channel import Credentials
from apimachinery.client import Client
from apiserver.auth.authorizer import UserInfo
from apiserver.listeners import ServingOptions
from apiserver.server import APIServer
from apiserver.storage import open_storage
from cli.cmd_pki import NodeSpec, PkiOptions, init_pki
from protos import certificates_pb2, meta_pb2, rbac_pb2

CSR = certificates_pb2.CertificateSigningRequest
TOKEN = bt.Token("abcdef", "0123456789abcdef")
LOCAL = ipaddress.ip_address("127.0.0.1")
# A user of the --token-auth-file kind, for callers that are neither nodes nor the admin.
STATIC_TOKENS = {"bob-token": UserInfo("bob", ("csr-writers",), uid="42")}


def new_csr(
    name: str,
    request: bytes,
    *,
    signer: str = csrs.KUBE_APISERVER_CLIENT_KUBELET,
    usages: tuple[str, ...] = (csrs.DIGITAL_SIGNATURE, csrs.CLIENT_AUTH),
) -> CSR:
    csr = CSR(api_version="certificates.k8s.io/v1", kind="CertificateSigningRequest")
    csr.metadata.name = name
    csr.spec.request = request
    csr.spec.signer_name = signer
    csr.spec.usages.extend(usages)
    return csr


def kubelet_request(
    node: str,
    *,
    key: certs.PrivateKey | None = None,
    organizations: tuple[str, ...] = (csrs.NODES_GROUP,),
    common_name: str = "",
    dns_names: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
) -> bytes:
    return certs.make_csr(
        key or certs.generate_key(),
        common_name or f"system:node:{node}",
        organizations,
        dns_names=dns_names,
        ip_addresses=[ipaddress.ip_address(ip) for ip in ips],
    )


def kubelet_csr(node: str, name: str = "", request: bytes = b"") -> CSR:
    """A kubelet client CSR for `node`: well-formed unless `request` says otherwise."""
    return new_csr(name or f"node-csr-{node}", request or kubelet_request(node))


def csr_writer(user: str) -> rbac_pb2.ClusterRoleBinding:
    """A binding that lets `user` create CSRs as a joining node may, without being one."""
    binding = rbac_pb2.ClusterRoleBinding(metadata=meta_pb2.ObjectMeta(name=f"{user}-csrs"))
    group = "rbac.authorization.k8s.io"
    binding.role_ref.CopyFrom(
        rbac_pb2.RoleRef(api_group=group, kind="ClusterRole", name="system:node-bootstrapper")
    )
    binding.subjects.add(kind="User", api_group=group, name=user)
    return binding


async def created_by(client: Client, csr: CSR) -> bool:
    """Create `csr`; False while the caller is still Forbidden (the RBAC index catches up
    with a new binding through its watch: poll with `eventually`)."""
    try:
        await client.create(csr)
    except errors.Forbidden:
        return False
    return True


def write_ca(directory: Path) -> tuple[certs.CertKeyPair, Path, Path]:
    """A fresh CA in directory/ca.crt and ca.key."""
    key = certs.generate_key()
    ca = certs.CertKeyPair(certs.new_self_signed_ca(key), key)
    crt, pem_key = directory / "ca.crt", directory / "ca.key"
    certs.write_cert(crt, ca.cert)
    certs.write_key(pem_key, key)
    return ca, crt, pem_key


@dataclasses.dataclass
class SecuredCluster:
    """An API server over TLS with the cluster's PKI, and clients for each kind of caller."""

    server: APIServer
    directory: Path  # what `tinykube pki init --dir` wrote
    admin: Client  # the unix socket: kubernetes-admin, system:masters

    @property
    def ca_cert(self) -> Path:
        return self.directory / "pki" / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "pki" / "ca.key"

    def kubelet_client(self, node: str) -> Client:
        """system:node:NODE over mutual TLS, with the kubeconfig pki init wrote."""
        config = kubeconfig.load(self.directory / f"kubelet-{node}.conf")
        target = f"127.0.0.1:{self.server.ports[1]}"
        return Client.from_config(dataclasses.replace(config, target=target), timeout=10)

    def token_client(self, token: str) -> Client:
        """A caller on the token port with `token` (a static one: STATIC_TOKENS)."""
        credentials = Credentials(ca_pem=self.ca_cert.read_bytes(), token=token)
        return Client(f"127.0.0.1:{self.server.ports[2]}", timeout=10, credentials=credentials)

    async def bootstrap_client(self, token: bt.Token = TOKEN) -> Client:
        """A joining node: the token is created as kubeadm does, and sent on the token port."""
        await self.admin.create(bt.new_token_secret(token))
        return self.token_client(str(token))


@contextlib.asynccontextmanager
async def secured_cluster(
    tmp_path: Path, nodes: tuple[str, ...] = ("node1",)
) -> AsyncIterator[SecuredCluster]:
    directory = tmp_path / "pki-dir"
    specs = tuple(NodeSpec(node, (LOCAL,)) for node in nodes)
    init_pki(PkiOptions(directory=directory, nodes=specs), echo=lambda *_: None)
    serving = ServingOptions(
        listen=("127.0.0.1:0",),
        token_listen=("127.0.0.1:0",),
        tls_cert_file=str(directory / "pki" / "apiserver.crt"),
        tls_private_key_file=str(directory / "pki" / "apiserver.key"),
        client_ca_file=str(directory / "pki" / "ca.crt"),
    )
    storage = await open_storage("sqlite", str(tmp_path / "data"))
    server = APIServer(
        storage, f"unix:{tmp_path}/api.sock", serving=serving, static_tokens=STATIC_TOKENS
    )
    await server.start()
    admin = Client(server.local_address, timeout=10)
    try:
        yield SecuredCluster(server, directory, admin)
    finally:
        await admin.close()
        await server.stop(grace=0)
