"""A multi-member etcd cluster for a local cluster's control plane, TLS inside and out.

`tinykube up --control-planes 3` (issue 17) puts one etcd member on each
control-plane node, as kubeadm's stacked topology does: the API server on
node1 talks to the etcd member beside it, but any member serves any request,
and the cluster keeps serving while a majority (2 of 3) is up. This module
is that etcd: its certificates, each member's command line, starting a
member (in a node's network namespace, or on a loopback address for tests),
and reading its health and who leads.

Three members on the underlay (names are the nodes'):

    node1  https://10.201.0.11:2379 (clients)   https://10.201.0.11:2380 (peers)
    node2  https://10.201.0.12:2379             https://10.201.0.12:2380
    node3  https://10.201.0.13:2379             https://10.201.0.13:2380

    etcd --name node1 --data-dir <dir>/node1 \\
        --listen-client-urls https://10.201.0.11:2379 --advertise-client-urls ... \\
        --listen-peer-urls https://10.201.0.11:2380 --initial-advertise-peer-urls ... \\
        --initial-cluster node1=https://10.201.0.11:2380,node2=...,node3=... \\
        --initial-cluster-token tk-demo --initial-cluster-state new \\
        --cert-file, --key-file, --trusted-ca-file, --client-cert-auth      (clients)
        --peer-cert-file, --peer-key-file, --peer-trusted-ca-file,
        --peer-client-cert-auth                                             (peers)

The certificates (`make_pki`), as kubeadm lays them out under pki/etcd: one
CA; per member a serving certificate (server and client usage: a member is
a client of its peers) whose IP SAN is the member's address; and one client
certificate for the API servers (`apiserver-etcd-client`). The API server's
`--storage` is `storage_spec()`: every member, with those files.

A member that was killed is started again with the same command: its data
directory holds the cluster's membership (the --initial-* flags only matter
the first time), it catches up from the leader's log, and rejoins.

`single_member(directory)` is the smallest such cluster: one member on
loopback, on free ports, TLS as above, killed when the block ends -- what a
benchmark or a test runs an API server on (`--storage etcd.storage_spec()`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import ssl
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from apimachinery import certs
from apimachinery.certs import CertConfig, CertKeyPair
from apiserver.storage.etcd_client import EtcdConfig
from localcluster.clusterstate import ProcessRecord
from localcluster.netns import NetNS
from localcluster.node import spawn, stop_process
from localcluster.processes import free_port

ETCD = "/usr/bin/etcd"
CLIENT_PORT = 2379
PEER_PORT = 2380
HEALTH_TIMEOUT = 30.0


@dataclass(frozen=True)
class EtcdPki:
    """The PEM files of the etcd cluster's PKI (make_pki)."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.crt"

    def member_cert(self, name: str) -> Path:
        return self.directory / f"{name}.crt"

    def member_key(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    @property
    def client_cert(self) -> Path:
        return self.directory / "apiserver-etcd-client.crt"

    @property
    def client_key(self) -> Path:
        return self.directory / "apiserver-etcd-client.key"


@dataclass(frozen=True)
class EtcdMember:
    """One member: its name, the address it serves on, its data directory."""

    name: str
    ip: str
    data_dir: Path
    client_port: int = CLIENT_PORT
    peer_port: int = PEER_PORT

    @property
    def endpoint(self) -> str:
        return f"{self.ip}:{self.client_port}"

    @property
    def client_url(self) -> str:
        return f"https://{self.endpoint}"

    @property
    def peer_url(self) -> str:
        return f"https://{self.ip}:{self.peer_port}"


def make_pki(
    directory: Path, members: list[EtcdMember], extra_ips: tuple[str, ...] = ()
) -> EtcdPki:
    """The CA, a serving/peer pair per member, the API servers' client pair (kept if present).

    etcd's --peer-client-cert-auth also checks that a peer connects from an address its
    certificate names; members on loopback addresses connect from 127.0.0.1, which a
    test passes as `extra_ips` (on the underlay each member connects from its own IP).
    """
    pki = EtcdPki(directory)
    if pki.ca.exists() and all(pki.member_cert(m.name).exists() for m in members):
        return pki
    key = certs.generate_key()
    ca = CertKeyPair(certs.new_self_signed_ca(key, "etcd-ca"), key)
    certs.write_cert(pki.ca, ca.cert)
    for member in members:
        pair = certs.new_cert_and_key(
            ca,
            CertConfig(
                member.name,
                usages=("server", "client"),
                ip_addresses=tuple(ipaddress.ip_address(ip) for ip in (member.ip, *extra_ips)),
            ),
        )
        certs.write_cert(pki.member_cert(member.name), pair.cert)
        certs.write_key(pki.member_key(member.name), pair.key)
    client = certs.new_cert_and_key(
        ca, CertConfig("kube-apiserver-etcd-client", organizations=("system:masters",))
    )
    certs.write_cert(pki.client_cert, client.cert)
    certs.write_key(pki.client_key, client.key)
    return pki


@dataclass(frozen=True)
class EtcdCluster:
    """The members of one etcd cluster and its PKI."""

    members: tuple[EtcdMember, ...]
    pki: EtcdPki
    token: str

    def member(self, name: str) -> EtcdMember:
        for member in self.members:
            if member.name == name:
                return member
        raise KeyError(f"no etcd member {name!r}")

    @property
    def initial_cluster(self) -> str:
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    def config(self) -> EtcdConfig:
        """What an API server (or a test's store) dials: every member, with TLS."""
        return EtcdConfig(
            tuple(m.endpoint for m in self.members),
            cafile=str(self.pki.ca),
            certfile=str(self.pki.client_cert),
            keyfile=str(self.pki.client_key),
        )

    def storage_spec(self) -> str:
        """`--storage` for the API servers: etcd://member,...?cafile=...&certfile=...&keyfile=..."""
        return self.config().spec()

    def argv(self, member: EtcdMember) -> list[str]:
        """The member's command line (module docstring)."""
        pki = self.pki
        return [
            ETCD,
            f"--name={member.name}",
            f"--data-dir={member.data_dir}",
            f"--listen-client-urls={member.client_url}",
            f"--advertise-client-urls={member.client_url}",
            f"--listen-peer-urls={member.peer_url}",
            f"--initial-advertise-peer-urls={member.peer_url}",
            f"--initial-cluster={self.initial_cluster}",
            f"--initial-cluster-token={self.token}",
            "--initial-cluster-state=new",
            f"--cert-file={pki.member_cert(member.name)}",
            f"--key-file={pki.member_key(member.name)}",
            f"--trusted-ca-file={pki.ca}",
            "--client-cert-auth",
            f"--peer-cert-file={pki.member_cert(member.name)}",
            f"--peer-key-file={pki.member_key(member.name)}",
            f"--peer-trusted-ca-file={pki.ca}",
            "--peer-client-cert-auth",
            "--logger=zap",
            "--log-level=warn",
        ]

    def start(self, member: EtcdMember, log: Path, ns: NetNS | None = None) -> ProcessRecord:
        """Start one member (inside `ns` if given); its record, for stopping and status."""
        member.data_dir.parent.mkdir(parents=True, exist_ok=True)
        _, record = spawn(self.argv(member), log, ns)
        record.node = member.name
        return record

    def _ssl(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca))
        context.load_cert_chain(str(self.pki.client_cert), str(self.pki.client_key))
        return context

    def _post(self, member: EtcdMember, path: str) -> dict[str, object]:
        """A JSON call to the member's gRPC gateway (/v3/...) or /health, from this host."""
        request = urllib.request.Request(
            f"{member.client_url}{path}",
            data=b"{}" if path.startswith("/v3/") else None,
            method="POST" if path.startswith("/v3/") else "GET",
        )
        with urllib.request.urlopen(request, timeout=2, context=self._ssl()) as reply:
            answer = json.loads(reply.read())
        assert isinstance(answer, dict)
        return answer

    def healthy(self, member: EtcdMember) -> bool:
        """Whether the member answers /health with true (it has a leader, a quorum)."""
        with contextlib.suppress(OSError, ValueError):
            return self._post(member, "/health").get("health") == "true"
        return False

    def wait_healthy(self, members: list[EtcdMember], timeout: float = HEALTH_TIMEOUT) -> None:
        """Until every member in `members` is healthy; TimeoutError naming those that are not."""
        deadline = time.monotonic() + timeout
        waiting = list(members)
        while waiting:
            waiting = [m for m in waiting if not self.healthy(m)]
            if waiting and time.monotonic() > deadline:
                names = ", ".join(m.name for m in waiting)
                raise TimeoutError(f"etcd members not healthy after {timeout:g}s: {names}")
            if waiting:
                time.sleep(0.1)

    def leader(self) -> EtcdMember | None:
        """The member that leads now, as any reachable member says (Maintenance.Status)."""
        for member in self.members:
            with contextlib.suppress(OSError, ValueError, KeyError):
                status = self._post(member, "/v3/maintenance/status")
                header = status["header"]
                assert isinstance(header, dict)
                if str(status["leader"]) == str(header["member_id"]):
                    return member
                return self._member_with_id(str(status["leader"]))
        return None

    def _member_with_id(self, member_id: str) -> EtcdMember | None:
        for member in self.members:
            with contextlib.suppress(OSError, ValueError, KeyError):
                header = self._post(member, "/v3/maintenance/status")["header"]
                assert isinstance(header, dict)
                if str(header["member_id"]) == member_id:
                    return member
        return None


@contextlib.contextmanager
def single_member(directory: Path, ip: str = "127.0.0.1") -> Iterator[EtcdCluster]:
    """A one-member TLS etcd on `ip` (free ports, data under `directory`), healthy on entry,
    killed on exit (the data directory stays with `directory`)."""
    member = EtcdMember("default", ip, directory / "data", free_port(), free_port())
    pki = make_pki(directory / "pki", [member])
    cluster = EtcdCluster((member,), pki, "tk-single")
    record = cluster.start(member, directory / "etcd.log")
    try:
        cluster.wait_healthy([member])
        yield cluster
    finally:
        stop_process(record, 5.0)
