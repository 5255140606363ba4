"""A multi-node network cluster made of namespaces: the network tests' and benchmarks' harness.

The network plugin is tested and measured on several nodes without VMs,
containers or kubelets; `tinykube up` (cluster.py) is the whole cluster, this
is the network alone. Everything in it runs for real: a `tinykube apiserver`
on a unix socket, one node namespace per node on an underlay bridge
(netns.Underlay: the tests' `underlay` fixture, or one the benchmark makes),
a `tinykube netplugin` agent per node (run inside its namespace with
nsenter), and pods as network namespaces wired by `tinykube-cni ADD`, exactly
as containerd would call it. There are no kubelets and no containers: the
harness creates the Node objects (the node IPAM controller gives each a
podCIDR) and the pods' namespaces; the caller writes Services and Endpoints
(netcluster_objects builds them the way a manifest reads).

    def test_pod_to_pod(tmp_path, underlay):
        with NetworkCluster(underlay, tmp_path, nodes=2) as cluster:
            ip2 = cluster.add_pod("node2", "web")
            cluster.serve("node2", "web", port=8080)          # replies with its pod name
            cluster.add_pod("node1", "client")
            assert cluster.http_get(cluster.pod("node1", "client"), ip2, 8080) == "web"

Layout (prefix from the underlay, e.g. tkn123x1):

    tkn123x1-ul           the underlay bridge ul0, 10.201.0.1: "outside the cluster"
    tkn123x1-node1        eth1 10.201.0.11, tinykube.1, tk0, the agent's nft tables
    tkn123x1-p-node1-web  a pod: eth0 from node1's podCIDR, default route via tk0
    /tmp/tkapi-<prefix>/api.sock   the API server (a short path: unix sockets allow 107 bytes)
    <workdir>/apiserver/  its data and log; <workdir>/<node>/ a node's net.d, CNI data and
                          agent log (agent.log)

`NetworkCluster` is a context manager; leaving it (also on a failed assert)
stops every agent, server and helper process, deletes every pod namespace and
removes the socket directory. Whoever made the underlay deletes the node
namespaces (netns.delete_namespaces). Agents run with `--no-masquerade`
(traffic must not leave the namespaces) and `--resync-period 1` so drift is
repaired quickly.

Useful pieces: `exec(ns, argv)` (ns: a node name, a Pod, a NetNS), `serve()`
(a tiny HTTP, TCP-echo or UDP server inside a pod), `http_get()`, `api()`
(run an async function with a Client), `agent_log(node)`, `kill_agent` /
`start_agent`, `wait_converged()`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from apimachinery.client import Client
from localcluster.netcluster_processes import (
    ECHO_CLIENT_SCRIPT,
    HTTP_GET_SCRIPT,
    SERVER_SCRIPT,
    NsProcess,
    UnixApiServer,
)
from localcluster.netns import Machine, NetNS, Underlay
from localcluster.processes import tinykube_cmd
from netplugin.constants import CNI_CONF_FILE, VXLAN_DEVICE
from protos import core_pb2, meta_pb2

T = TypeVar("T")

BIN = Path(sys.executable).parent
CNI_PLUGIN = str(BIN / "tinykube-cni")


@dataclass
class Pod:
    """A pod: a network namespace wired by tinykube-cni on `node`."""

    name: str
    node: str
    ns: NetNS
    ip: str
    container_id: str


@dataclass
class ClusterNode:
    name: str
    machine: Machine
    workdir: Path
    agent: NsProcess | None = None
    pods: dict[str, Pod] = field(default_factory=dict)

    @property
    def ns(self) -> NetNS:
        return self.machine.ns

    @property
    def ip(self) -> str:
        return self.machine.ip

    @property
    def conf_dir(self) -> Path:
        return self.workdir / "net.d"

    @property
    def cni_data_dir(self) -> Path:
        return self.workdir / "cni"

    @property
    def agent_log(self) -> Path:
        return self.workdir / "agent.log"

    def conflist(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads((self.conf_dir / CNI_CONF_FILE).read_text())
            return data
        except (OSError, ValueError):
            return None


Target = str | Pod | NetNS | ClusterNode


class NetworkCluster:
    """An API server, N node namespaces with agents, and pods (see the module docstring)."""

    def __init__(
        self,
        underlay: Underlay,
        workdir: Path,
        *,
        nodes: int = 2,
        proxy: bool = True,
        masquerade: bool = False,
        agent_args: Sequence[str] = (),
    ) -> None:
        self.underlay = underlay
        self.workdir = workdir
        self.initial_nodes = nodes
        self.proxy = proxy
        self.masquerade = masquerade
        self.agent_args = list(agent_args)
        self.socket_dir = Path(f"/tmp/tkapi-{underlay.prefix}")
        self.apiserver = UnixApiServer(workdir / "apiserver", self.socket_dir / "api.sock")
        self.nodes: dict[str, ClusterNode] = {}
        self.helpers: list[NsProcess] = []
        self._index = 0

    @property
    def server(self) -> str:
        """The API server's address for `--server` and Client (unix:/tmp/tkapi-.../api.sock)."""
        return self.apiserver.address

    # ---- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> NetworkCluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """The API server, then `nodes` nodes with agents; waits until the overlay is complete."""
        self.apiserver.start()
        for i in range(1, self.initial_nodes + 1):
            self.add_node(f"node{i}", wait=False)
        self.wait_converged()

    def close(self) -> None:
        """Stop every process and delete every pod namespace; safe to call twice."""
        for proc in self.helpers:
            proc.kill9()
        self.helpers.clear()
        for node in self.nodes.values():
            if node.agent is not None:
                node.agent.kill9()
            for pod in node.pods.values():
                pod.ns.delete()
            node.pods.clear()
        self.apiserver.stop()
        shutil.rmtree(self.socket_dir, ignore_errors=True)

    # ---- API ---------------------------------------------------------------------------------

    def api(self, fn: Callable[[Client], Awaitable[T]]) -> T:
        """Run `fn(client)` on a fresh event loop with a client of this cluster's server."""

        async def run() -> T:
            async with Client(self.server) as client:
                return await fn(client)

        return asyncio.run(run())

    def get_node(self, name: str) -> Any:
        return self.api(lambda c: c.get("nodes", name))

    def pod_cidr(self, name: str) -> str:
        return str(self.get_node(name).spec.pod_cidr)

    # ---- nodes and agents --------------------------------------------------------------------

    def add_node(
        self, name: str, *, wait: bool = True, agent: bool = True, register: bool = True
    ) -> ClusterNode:
        """A node namespace on the underlay, its Node object (unless register=False: then
        `register_node` later, as a kubelet starting after the agent does) and its agent."""
        self._index += 1
        machine = self.underlay.add_machine(name, self._index)
        node = ClusterNode(name, machine, self.workdir / name)
        node.workdir.mkdir(parents=True, exist_ok=True)
        self.nodes[name] = node
        if register:
            self.register_node(name)
        if not agent:
            return node
        self.start_agent(name)
        if wait and register:
            self.wait_converged()
        return node

    def register_node(self, name: str) -> None:
        """Create the Node object (what the kubelet does); the node IPAM controller gives
        it a podCIDR."""
        obj = core_pb2.Node(metadata=meta_pb2.ObjectMeta(name=name))
        self.api(lambda c: c.create(obj))

    def agent_argv(self, name: str, extra: Sequence[str] = ()) -> list[str]:
        node = self.nodes[name]
        argv = [
            *tinykube_cmd(), "netplugin", "--node-name", name,
            "--node-ip", node.ip, "--server", self.server,
            "--cni-conf-dir", str(node.conf_dir), "--cni-data-dir", str(node.cni_data_dir),
            "--resync-period", "1",
        ]  # fmt: skip
        argv.append("--masquerade" if self.masquerade else "--no-masquerade")
        if not self.proxy:
            argv.append("--no-proxy")
        return [*argv, *self.agent_args, *extra]

    def start_agent(self, name: str, extra: Sequence[str] = ()) -> None:
        node = self.nodes[name]
        if node.agent is not None and node.agent.running:
            raise RuntimeError(f"the agent of {name} is already running")
        node.agent = NsProcess(node.ns, self.agent_argv(name, extra), node.agent_log)
        node.agent.spawn()

    def kill_agent(self, name: str) -> None:
        """SIGKILL: the agent gets no chance to clean up, as in a crash."""
        agent = self.nodes[name].agent
        if agent is not None:
            agent.kill9()

    def stop_agent(self, name: str) -> None:
        agent = self.nodes[name].agent
        if agent is not None:
            agent.stop()

    def agent_log(self, name: str) -> str:
        try:
            return self.nodes[name].agent_log.read_text()
        except OSError:
            return ""

    def log_offset(self, name: str) -> int:
        """The agent log's length now: pass it to wait_for_log to look only at what follows."""
        return len(self.agent_log(name))

    def wait_for_log(self, name: str, text: str, since: int = 0, timeout: float = 30.0) -> str:
        """Wait until the agent log (from offset `since`) contains `text`; that part of it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            part = self.agent_log(name)[since:]
            if text in part:
                return part
            time.sleep(0.1)
        raise TimeoutError(f"{text!r} not in the log of {name}:\n{self.agent_log(name)[since:]}")

    def netplugin(
        self, name: str, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """`tinykube netplugin ARGS` once inside node `name` (for --dry-run, --cleanup)."""
        return self.exec(name, [*tinykube_cmd(), "netplugin", *args], check=check, timeout=60)

    def delete_node(self, name: str) -> None:
        """Delete the Node object and stop its agent (its namespace stays until teardown)."""
        self.kill_agent(name)
        self.api(lambda c: c.delete("nodes", name))

    def wait_converged(self, timeout: float = 30.0) -> None:
        """Until every node with a running agent has its conflist and a route to every other."""
        deadline = time.monotonic() + timeout
        missing: list[str] = []
        while time.monotonic() < deadline:
            missing = self._not_converged()
            if not missing:
                return
            for node in self.nodes.values():
                proc = node.agent.proc if node.agent is not None else None
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(
                        f"the agent of {node.name} exited:\n{self.agent_log(node.name)}"
                    )
            time.sleep(0.1)
        logs = "\n".join(f"--- {n}\n{self.agent_log(n)[-3000:]}" for n in self.nodes)
        raise TimeoutError(f"overlay not converged: {missing}\n{logs}")

    def _not_converged(self) -> list[str]:
        live = [n for n in self.nodes.values() if n.agent is not None and n.agent.running]
        cidrs = {}
        for node in live:
            obj = self.get_node(node.name)
            if not obj.spec.pod_cidr:
                return [f"{node.name}: no podCIDR"]
            cidrs[node.name] = obj.spec.pod_cidr
        missing = []
        for node in live:
            if node.conflist() is None:
                missing.append(f"{node.name}: no conflist")
                continue
            routes = self.routes(node.name)
            for other in live:
                wanted = cidrs[other.name] + " "
                if other is not node and not any(r.startswith(wanted) for r in routes):
                    missing.append(f"{node.name}: no route to {other.name}")
        return missing

    # ---- kernel views (for assertions) -------------------------------------------------------

    def routes(self, node: str) -> list[str]:
        """`ip route show dev tinykube.1` lines ([] without the device)."""
        out = self.nodes[node].ns.ip("route", "show", "dev", VXLAN_DEVICE, check=False)
        return [line.strip() for line in out.stdout.splitlines() if line.strip()]

    def neighbours(self, node: str) -> list[str]:
        out = self.nodes[node].ns.ip("neigh", "show", "dev", VXLAN_DEVICE, check=False)
        return [line.strip() for line in out.stdout.splitlines() if line.strip()]

    def fdb(self, node: str) -> list[str]:
        out = self.exec(node, ["bridge", "fdb", "show", "dev", VXLAN_DEVICE], check=False)
        return [line.strip() for line in out.stdout.splitlines() if line.strip()]

    # ---- pods --------------------------------------------------------------------------------

    def pod(self, node: str, name: str) -> Pod:
        return self.nodes[node].pods[name]

    def _cni(self, node: ClusterNode, command: str, pod: Pod) -> subprocess.CompletedProcess[str]:
        conflist = node.conflist()
        if conflist is None:
            raise RuntimeError(f"{node.name} has no CNI conflist yet (is its agent running?)")
        # As libcni does: the one plugin's config with the list's name and cniVersion.
        conf = {
            **conflist["plugins"][0],
            "name": conflist["name"],
            "cniVersion": conflist["cniVersion"],
        }
        env = {
            **os.environ,
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": pod.container_id,
            "CNI_NETNS": str(pod.ns.path),
            "CNI_IFNAME": "eth0",
            "CNI_PATH": str(BIN),
            "CNI_ARGS": f"K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod.name}",
        }
        return subprocess.run(
            [*node.ns.prefix(), CNI_PLUGIN],
            input=json.dumps(conf),
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )

    def add_pod(self, node: str, name: str) -> str:
        """A pod namespace on `node`, wired by `tinykube-cni ADD`; returns the pod's IP."""
        n = self.nodes[node]
        ns = NetNS(f"{self.underlay.prefix}-p-{node}-{name}")
        ns.create()
        pod = Pod(name, node, ns, "", f"{node}-{name}")
        n.pods[name] = pod
        proc = self._cni(n, "ADD", pod)
        if proc.returncode != 0:
            raise RuntimeError(f"CNI ADD {node}/{name} failed: {proc.stdout} {proc.stderr}")
        result = json.loads(proc.stdout)
        pod.ip = str(result["ips"][0]["address"]).split("/")[0]
        return pod.ip

    def remove_pod(self, node: str, name: str) -> None:
        """`tinykube-cni DEL`, then delete the namespace."""
        n = self.nodes[node]
        pod = n.pods.pop(name)
        proc = self._cni(n, "DEL", pod)
        pod.ns.delete()
        if proc.returncode != 0:
            raise RuntimeError(f"CNI DEL {node}/{name} failed: {proc.stdout} {proc.stderr}")

    # ---- running things ----------------------------------------------------------------------

    def netns(self, target: Target) -> NetNS:
        if isinstance(target, Pod):
            return target.ns
        if isinstance(target, ClusterNode):
            return target.ns
        if isinstance(target, NetNS):
            return target
        if target == "underlay":
            return self.underlay.ns
        return self.nodes[target].ns

    def exec(
        self, target: Target, argv: Sequence[str], check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run argv inside a node ("node1"), a pod, "underlay", or any NetNS; wait for it."""
        return self.netns(target).exec(argv, check=check, timeout=timeout)

    def spawn(self, target: Target, argv: Sequence[str], log_name: str) -> NsProcess:
        """A background process in `target`, stopped at teardown; its output in workdir/log_name."""
        proc = NsProcess(self.netns(target), argv, self.workdir / "helpers" / log_name)
        proc.spawn()
        self.helpers.append(proc)
        return proc

    def serve(self, node: str, pod: str, port: int = 8080, mode: str = "http") -> NsProcess:
        """A server in the pod: "http" (GET -> pod name), "echo" (TCP lines) or "udp"."""
        target = self.pod(node, pod)
        argv = [sys.executable, "-c", SERVER_SCRIPT, mode, str(port), pod]
        proc = self.spawn(target, argv, f"{mode}-{node}-{pod}-{port}.log")
        proto = "-u" if mode == "udp" else "-t"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            out = self.exec(target, ["ss", "-Hln", proto, f"sport = :{port}"], check=False)
            if out.stdout.strip():
                return proc
            time.sleep(0.05)
        raise TimeoutError(f"{mode} server in {node}/{pod} not listening on {port}")

    def http_get(self, target: Target, ip: str, port: int = 8080, timeout: float = 5.0) -> str:
        """GET http://ip:port/ from inside `target`; the body stripped (raises on failure)."""
        argv = [sys.executable, "-c", HTTP_GET_SCRIPT, ip, str(port), str(timeout)]
        proc = self.exec(target, argv, check=False, timeout=timeout + 10)
        if proc.returncode != 0:
            raise ConnectionError(f"GET http://{ip}:{port}/ from {target}: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def echo_client(self, target: Target, ip: str, port: int, duration: float) -> NsProcess:
        """One TCP connection to an echo server held for `duration` s (ECHO_CLIENT_SCRIPT);
        wait for `proc.proc`, exit 0 if every echo came back; its line is in `proc.log`."""
        argv = [sys.executable, "-c", ECHO_CLIENT_SCRIPT, ip, str(port), str(duration)]
        name = f"echo-client-{len(self.helpers)}.log"
        return self.spawn(target, argv, name)
