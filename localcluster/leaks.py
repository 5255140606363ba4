"""What a node of a local cluster holds for its pods, and what of it leaked.

A pod on a real node leaves traces in four places, made in this order by
RunPodSandbox (containerd calls the CNI plugin; with Docker the kubelet's
runtime adapter does, kubelet/runtime/docker.py) and undone in reverse by
StopPodSandbox + RemovePodSandbox (the plugin's DEL):

    the runtime      a sandbox (its pause process), then the containers in it
    the node's netns a veth whose node end is "veth" + 11 hex digits of
                     sha1(sandbox id + ifname) (netplugin/cni/plugin.host_veth_name)
    the IPAM store   <cni data dir>/tinykube/<address>, a file naming the sandbox id
                     (netplugin/cni/ipam.py: host-local's layout)
    Docker only      the kubelet's copy of the ADD result, <kubelet root>/cni-results/
                     tinykube-<sandbox id>-eth0 (libcni's cache; DEL reads it)

`inventory(cluster, node)` reads all four from outside the kubelet -- CRI on
containerd's socket, or Docker's API; `ip -o link` inside the node's
namespace; the reservation files -- and `problems()` lists what does not
add up, in words a failing test can print:

    * a veth, a reservation or a cached result whose sandbox is not live
      (live = the runtime has it READY): a leak;
    * a live pod-network sandbox without its veth or its reservation, or
      (containerd) whose reservation is another address than its IP: a pod
      that cannot work;
    * a sandbox not READY: the kubelet kills and removes a NOTREADY sandbox
      when it makes the next one (kuberuntime_manager.compute_pod_actions),
      so one still there is left behind -- unless its pod finished
      (Succeeded or Failed) and still exists: such a pod keeps its stopped
      sandbox and exited containers, for its logs, until it is deleted;
    * a container whose sandbox is gone.

Kubernetes' container GC keeps dead sandboxes for a while; tinykube removes
them at once (a finished pod's once it is deleted), so "nothing left" is
checkable the moment a pod runs.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubelet.runtime.interface import POD_UID_LABEL as POD_UID
from kubelet.runtime.interface import SandboxState
from localcluster.cluster import Cluster
from netplugin.cni.ipam import DiskIPAM
from netplugin.cni.plugin import host_veth_name
from netplugin.constants import CNI_NETWORK_NAME

IFNAME = "eth0"
VETH = re.compile(r"^veth[0-9a-f]{11}$")


@dataclass(frozen=True)
class SandboxInfo:
    id: str
    pod_uid: str
    pod: str  # namespace/name
    ready: bool
    attempt: int
    ip: str = ""  # containerd's PodSandboxStatus; "" with Docker (the CNI cache has it)
    host_network: bool = False


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    sandbox_id: str
    pod_uid: str
    name: str
    attempt: int
    state: str  # "created", "running", "exited", "unknown"
    started_at: float = 0.0  # Unix seconds; 0 = never started


@dataclass
class NodeInventory:
    """One node's sandboxes, containers, veths, reservations and (Docker) cached results."""

    node: str
    sandboxes: list[SandboxInfo] = field(default_factory=list)
    containers: list[ContainerInfo] = field(default_factory=list)
    veths: set[str] = field(default_factory=set)
    reservations: dict[str, str] = field(default_factory=dict)  # address -> owner sandbox id
    cni_cache: set[str] | None = None  # sandbox ids with a cached ADD result (Docker only)
    finished: set[str] = field(default_factory=set)  # uids of Succeeded/Failed pods

    def of_pod(self, uid: str) -> tuple[list[SandboxInfo], list[ContainerInfo]]:
        return (
            [s for s in self.sandboxes if s.pod_uid == uid],
            [c for c in self.containers if c.pod_uid == uid],
        )

    @property
    def live(self) -> dict[str, SandboxInfo]:
        return {s.id: s for s in self.sandboxes if s.ready}

    def problems(self) -> list[str]:
        """Every leak or inconsistency found (module docstring); [] when all adds up."""
        live = self.live
        networked = {i: s for i, s in live.items() if not s.host_network}
        wanted_veths = {host_veth_name(i, IFNAME): s for i, s in networked.items()}
        out = [
            f"veth {v} belongs to no live sandbox" for v in sorted(self.veths - set(wanted_veths))
        ]
        out += [
            f"live sandbox {s.id[:13]} of {s.pod} has no veth {v}"
            for v, s in sorted(wanted_veths.items())
            if v not in self.veths
        ]
        owned: dict[str, list[str]] = {}
        for address, owner in sorted(self.reservations.items()):
            owned.setdefault(owner, []).append(address)
            if owner not in live:
                out.append(f"address {address} is reserved for {owner[:13]}, no live sandbox")
        for sid, sandbox in sorted(networked.items()):
            addresses = owned.get(sid, [])
            if len(addresses) != 1:
                out.append(f"live sandbox {sid[:13]} of {sandbox.pod} holds addresses {addresses}")
            elif sandbox.ip and addresses != [sandbox.ip]:
                out.append(f"sandbox {sid[:13]} has IP {sandbox.ip}, reservation {addresses[0]}")
        out += [
            f"sandbox {s.id[:13]} of {s.pod} (attempt {s.attempt}) is NOTREADY and left behind"
            for s in self.sandboxes
            if not s.ready and s.pod_uid not in self.finished
        ]
        known = {s.id for s in self.sandboxes}
        out += [
            f"container {c.name} {c.id[:13]} is in sandbox {c.sandbox_id[:13]}, which is gone"
            for c in self.containers
            if c.sandbox_id not in known
        ]
        if self.cni_cache is not None:
            out += [
                f"CNI result cached for {sid[:13]}, no live sandbox"
                for sid in sorted(self.cni_cache - set(live))
            ]
        return out


def inventory(cluster: Cluster, node: str) -> NodeInventory:
    """Read the node's four places (module docstring) from outside its kubelet."""
    inv = NodeInventory(node, veths=node_veths(cluster, node))
    inv.reservations = reservations(cluster, node)
    inv.finished = finished_pods(cluster)
    if cluster.state.runtime == "containerd":
        inv.sandboxes, inv.containers = _from_cri(cluster.node(node).paths.containerd_socket)
    else:
        inv.sandboxes, inv.containers = _from_docker(cluster.node(node).paths.docker_socket)
        inv.cni_cache = cni_cache(cluster, node)
    return inv


def finished_pods(cluster: Cluster) -> set[str]:
    """Uids of the pods that finished (Succeeded or Failed) and still exist."""

    async def read(client: Any) -> set[str]:
        pods, _ = await client.list("pods", "")
        return {p.metadata.uid for p in pods if p.status.phase in ("Succeeded", "Failed")}

    return cluster.api(read)


def node_veths(cluster: Cluster, node: str) -> set[str]:
    """Pods' node-side veths in the node's namespace (`ip -o link`)."""
    out = cluster.node_exec(node, ["ip", "-o", "link", "show"])
    assert out.returncode == 0, out.stderr
    names = set()
    for line in out.stdout.splitlines():
        name = line.split(":", 2)[1].strip().split("@", 1)[0] if ":" in line else ""
        if VETH.match(name):
            names.add(name)
    return names


def reservations(cluster: Cluster, node: str) -> dict[str, str]:
    """The node's IPAM store: address -> the sandbox id that holds it."""
    store = DiskIPAM(
        cluster.node(node).paths.cni_data_dir,
        CNI_NETWORK_NAME,
        ipaddress.IPv4Network("0.0.0.0/0"),
    )
    return {str(address): owner for address, (owner, _) in store.reserved().items()}


def cni_cache(cluster: Cluster, node: str) -> set[str]:
    """Sandbox ids whose ADD result the Docker runtime adapter has cached."""
    cache = Path(cluster.node(node).paths.kubelet_root_dir) / "cni-results"
    prefix, suffix = f"{CNI_NETWORK_NAME}-", f"-{IFNAME}"
    return {
        p.name.removeprefix(prefix).removesuffix(suffix)
        for p in (cache.glob(f"{prefix}*{suffix}") if cache.exists() else [])
    }


def _from_cri(socket: str) -> tuple[list[SandboxInfo], list[ContainerInfo]]:
    import grpc

    from protos import cri_pb2, cri_pb2_grpc

    states = {v: k.removeprefix("CONTAINER_").lower() for k, v in cri_pb2.ContainerState.items()}
    with grpc.insecure_channel(f"unix://{socket}") as channel:
        stub = cri_pb2_grpc.RuntimeServiceStub(channel)
        items = stub.ListPodSandbox(cri_pb2.ListPodSandboxRequest(), timeout=10).items
        sandboxes = []
        for s in items:
            ready = s.state == cri_pb2.SANDBOX_READY
            status = stub.PodSandboxStatus(
                cri_pb2.PodSandboxStatusRequest(pod_sandbox_id=s.id), timeout=10
            ).status
            ip = status.network.ip if ready else ""
            sandboxes.append(
                SandboxInfo(
                    s.id,
                    s.labels.get(POD_UID, ""),
                    f"{s.metadata.namespace}/{s.metadata.name}",
                    ready,
                    s.metadata.attempt,
                    ip,
                    host_network=ready and not ip,
                )
            )
        reply = stub.ListContainers(cri_pb2.ListContainersRequest(), timeout=10)
        containers = []
        for c in reply.containers:
            status = stub.ContainerStatus(
                cri_pb2.ContainerStatusRequest(container_id=c.id), timeout=10
            ).status
            containers.append(
                ContainerInfo(
                    c.id,
                    c.pod_sandbox_id,
                    c.labels.get(POD_UID, ""),
                    c.metadata.name,
                    c.metadata.attempt,
                    states.get(c.state, "unknown"),
                    status.started_at / 1e9,
                )
            )
    return sandboxes, containers


def _from_docker(socket: str) -> tuple[list[SandboxInfo], list[ContainerInfo]]:
    import docker

    from kubelet.runtime import docker_convert as conv

    api: Any = docker.APIClient(base_url=f"unix://{socket}", version="1.41", timeout=30)
    sandboxes, containers = [], []
    try:
        for item in api.containers(all=True, filters={"label": conv.TYPE_LABEL}):
            attrs = api.inspect_container(item["Id"])
            if attrs["Config"]["Labels"].get(conv.TYPE_LABEL) == conv.TYPE_SANDBOX:
                s = conv.sandbox_from_inspect(attrs, "")
                host = attrs["HostConfig"].get("NetworkMode") == "host"
                ready = s.state == SandboxState.READY
                pod = f"{s.namespace}/{s.name}"
                sandboxes.append(SandboxInfo(s.id, s.pod_uid, pod, ready, s.attempt, "", host))
            else:
                c = conv.container_from_inspect(attrs)
                state = c.state.value.removeprefix("CONTAINER_").lower()
                uid = c.labels.get(POD_UID, "")
                containers.append(
                    ContainerInfo(c.id, c.sandbox_id, uid, c.name, c.attempt, state, c.started_at)
                )
    finally:
        api.close()
    return sandboxes, containers
