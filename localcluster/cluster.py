"""`tinykube up`: a cluster whose nodes are network namespaces on one host (kind's role).

The layout, for `Cluster("demo", nodes=2)` (addresses from the underlay
subnet 10.201.0.0/24; every namespace is the cluster's own, so two clusters
can use the same addresses side by side):

    namespace tk-demo-ul      bridge ul0 10.201.0.1   the "host on the private network":
                              docker-registry :5000 (the image mirror), NodePort clients
    namespace tk-demo-node1   eth1 10.201.0.11        control plane + worker, as on Vagrant:
                              tinykube apiserver (mTLS 10.201.0.11:6443, tokens
                              :6444, unix:<dir>/api.sock), containerd, kubelet
                              (with the netplugin agent in its process)
    namespace tk-demo-node2   eth1 10.201.0.12        containerd, kubelet (+ agent)

Where the API server is, and why. The kubelets and their network agents reach it
as they do on the VMs, at node1's address (10.201.0.11:6443, mTLS, each as
system:node:NAME); it reaches the kubelets (logs, exec) at each Node's
InternalIP:10250 over the same bridge, mTLS both ways. The host's CLI has no
address on the underlay and gets none: the API server also listens on a unix
socket in the cluster directory, and the CLI finds it through the state file
(cli/config.py, localcluster/clusterstate.py); the user who ran `sudo tinykube
up` may use it without sudo (its group may open the socket). The PKI, the
socket's trust, the user's kubeconfig and the default namespace's Pod Security
level are localcluster/access.py's. So nothing of the cluster is on the host's
network (DESIGN §5): no host address, no route, no forwarding, no NAT, and no
namespace has a default route.

`up`, step by step (each timed in the progress output; the state file is
rewritten after each process starts, so `down` can undo a half-made cluster):

    1. prerequisites (localcluster.prereqs): root, kernel, binaries, with the
       Debian package for each missing one
    2. namespaces and the underlay bridge (localcluster.netns)
    3. images built offline once per host (localcluster.images, cached in
       /var/lib/tinykube/images), registry started in the underlay, images pushed
    4. the PKI (`tinykube pki init` in the cluster directory), then the API
       server in node1's namespace; waits until it answers and labels the
       `default` namespace for Pod Security's baseline level
    5. per node: config rendered by localcluster.nodeconfig (the same files the
       VMs get), containerd (waits for CRI), the kubelet with its network agent
    6. waits until every Node is Ready with a podCIDR (the kubelet reports
       Ready once containerd's CNI config exists, which the agent writes)
    7. the user's kubeconfig (~/.tinykube/config; access.py says when)

On failure, `up` names the component and its log, and removes everything it
made but the logs. `up` on a cluster that exists reports it, restarting first
any process found dead (so a test's "node2 back" is `up` again); a cluster
of which nothing runs (after a reboot) is removed and made again. `down` works
from the state file and the exact namespace names, so it is complete even
after a `kill -9` of everything (localcluster.teardown has the order).

The Python API (the CLI, the demo and the end-to-end tests use it):

    cluster = Cluster("demo", nodes=2, runtime="containerd")  # or Cluster("demo") to find one
    cluster.up(progress=print)           # make it (or report/repair it); ClusterError on failure
    cluster.client_address               # "unix:/var/lib/tinykube/clusters/demo/api.sock"
    cluster.api(lambda c: c.list("nodes"))      # a coroutine on an apimachinery Client
    cluster.node_exec("node1", ["curl", "-s", "http://10.96.0.10/"])   # CompletedProcess
    cluster.underlay_exec(["curl", "-s", "http://10.201.0.12:30080/"])
    cluster.status()                     # [ComponentStatus(key, node, pid, alive, log, rss_kib)]
    cluster.node_conditions()            # {"node1": True, "node2": True} (Ready + podCIDR)
    cluster.stop_component("node2-kubelet", kill=True)   # a crash, for tests; up() restarts it
    cluster.down(progress=print)

Options: `fast_failover=True` (NotReady after ~6 s, eviction 5 s later: tests),
`make_current=False` (do not become the CLI's default cluster: tests),
`control_planes=3` (kubeadm's stacked HA topology on node1-3, localcluster/stacked.py:
keys `node2-etcd`, `node2-apiserver`, `node2-scheduler`, ...). Fault tests
set `cluster.extra_env["node2-kubelet"] = {VAR: VALUE}` (kubelet/faultpoints.py): it
is added to that kubelet's environment whenever this object starts it (`up` after a
stop); never saved, so `tinykube up` or a new Cluster start it plain. Kubelets only.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from localcluster import access, clusterstate, images, nodeconfig, prereqs, stacked, teardown
from localcluster.clusterstate import ClusterState, ProcessRecord
from localcluster.clusterstatus import ComponentStatus, Progress, quiet, tail, tolerant
from localcluster.mirror import UnderlayRegistry, build_images
from localcluster.netns import Machine, NetNS, Underlay
from localcluster.node import LocalNode, NodeError, kill9, stop_process
from localcluster.pki import PkiLayout
from localcluster.processes import PkiInitError

T = TypeVar("T")
__all__ = ["Cluster", "ClusterError", "ComponentStatus"]

DEFAULT_SUBNET = "10.201.0.0/24"
READY_TIMEOUT = 120.0


class ClusterError(RuntimeError):
    """`up` failed; names the component and its log (empty when not a process)."""

    def __init__(self, message: str, component: str = "", log_path: str = "") -> None:
        super().__init__(message)
        self.component = component
        self.log_path = log_path


class Cluster:
    """A local cluster by name; `up()`, `down()`, `status()`, and running commands on its nodes."""

    def __init__(
        self,
        name: str = clusterstate.DEFAULT_NAME,
        nodes: int = 2,
        runtime: str = "containerd",
        *,
        fast_failover: bool = False,
        make_current: bool = True,
        subnet: str = DEFAULT_SUBNET,
        control_planes: int = 1,
    ) -> None:
        clusterstate.validate_name(name)
        if not 1 <= nodes <= 9:
            raise ClusterError(f"--nodes must be between 1 and 9, got {nodes}")
        if control_planes not in (1, 3, 5) or control_planes > nodes:
            raise ClusterError(
                f"--control-planes must be 1, 3 or 5 (an etcd quorum) and at most --nodes "
                f"({nodes}), got {control_planes}"
            )
        if runtime not in nodeconfig.RUNTIMES:
            raise ClusterError(f"--runtime must be one of {', '.join(nodeconfig.RUNTIMES)}")
        self.name = name
        self.make_current = make_current
        self.requested_nodes, self.requested_runtime = nodes, runtime
        self.requested_fast_failover, self.requested_subnet = fast_failover, subnet
        self.requested_control_planes = control_planes
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.extra_env: dict[str, dict[str, str]] = {}  # kubelet key -> variables (docstring)
        try:
            self._use(clusterstate.load(name))
        except clusterstate.ClusterStateError:
            self._use(self._fresh_state())

    def _fresh_state(self) -> ClusterState:
        return ClusterState(
            name=self.name,
            runtime=self.requested_runtime,
            subnet=self.requested_subnet,
            nodes=[f"node{i}" for i in range(1, self.requested_nodes + 1)],
            fast_failover=self.requested_fast_failover,
            root=str(clusterstate.clusters_root()),
            control_planes=self.requested_control_planes,
        )

    def _use(self, state: ClusterState) -> None:
        self.state = state
        self.underlay = Underlay(self.state.prefix, self.state.subnet)
        self.state.namespaces = [
            self.underlay.ns.name,
            *(f"{self.state.prefix}-{n}" for n in self.state.nodes),
        ]
        self.state.server = f"{self.underlay.host_address(1)}:{nodeconfig.APISERVER_PORT}"
        self.ha: stacked.StackedControlPlane | None = None  # several control planes
        if self.state.control_planes > 1:
            self.ha = stacked.StackedControlPlane(self.state, self.underlay)
            self.state.server = ",".join(self.ha.servers)

    # ---- what the cluster is ------------------------------------------------------------------

    @property
    def directory(self) -> Path:
        return self.state.directory

    @property
    def client_address(self) -> str:
        """The API server for a client on the host: `unix:<dir>/api.sock`."""
        return self.state.client_address

    @property
    def nodes(self) -> list[str]:
        return list(self.state.nodes)

    @property
    def registry_address(self) -> str:
        return f"{self.underlay.address}:5000"

    def exists(self) -> bool:
        return self.state.path.exists()

    def node(self, name: str) -> LocalNode:
        if name not in self.state.nodes:
            raise ClusterError(f"cluster {self.name!r} has no node {name!r}")
        index = self.state.nodes.index(name) + 1
        ip = self.underlay.host_address(index)
        machine = Machine(name, NetNS(f"{self.state.prefix}-{name}"), ip)
        config = nodeconfig.NodeConfig(
            node_name=name,
            node_ip=ip,
            server=self.state.server,
            runtime=self.state.runtime,  # type: ignore[arg-type]
            iface=machine.iface,
            control_plane=index <= self.state.control_planes,
            registry_mirror=self.registry_address,
            masquerade=False,
            paths=nodeconfig.NodePaths.under(self.directory / name),
            pki_dir=self.ha.layout.directory if self.ha else str(self.directory),
        )
        return LocalNode(machine, config, self.state.log_dir, self.state.fast_failover)

    def node_ns(self, name: str) -> NetNS:
        return self.node(name).ns

    def node_exec(
        self, node: str, argv: Sequence[str], timeout: float | None = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run argv in a node's namespace; never raises for a non-zero exit."""
        return self.node_ns(node).exec(argv, check=False, timeout=timeout)

    def underlay_exec(
        self, argv: Sequence[str], timeout: float | None = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run argv in the underlay namespace (outside the cluster, on its network)."""
        return self.underlay.ns.exec(argv, check=False, timeout=timeout)

    def components(self) -> list[str]:
        """Every process key, in start order."""
        runtime = "containerd" if self.state.runtime == "containerd" else "dockerd"
        if self.ha is not None:  # the runtimes together, then the kubelets (stacked.groups)
            nodes = self.state.nodes
            workers = [f"{n}-{runtime}" for n in nodes] + [f"{n}-kubelet" for n in nodes]
            return ["registry", *self.ha.components(), *workers]
        keys = ["registry", "apiserver"]
        for name in self.state.nodes:
            keys.extend(f"{name}-{part}" for part in (runtime, "kubelet"))
        return keys

    # ---- up -------------------------------------------------------------------------------------

    def up(self, progress: Progress = print) -> ClusterState:
        """Make the cluster (or repair a running one) and wait until every node is Ready."""
        progress = tolerant(progress)
        if self.exists() and not any(map(self._alive, self.components())):
            progress(f"cluster {self.name!r} is left from before (nothing of it runs): remaking it")
            self.down(quiet)
            self._use(self._fresh_state())
        if self.exists():
            st = self.state
            wanted = (self.requested_nodes, self.requested_runtime, self.requested_control_planes)
            if wanted != (len(st.nodes), st.runtime, st.control_planes):
                progress(
                    f"note: cluster {self.name!r} exists with {len(st.nodes)} nodes, runtime "
                    f"{st.runtime}, {st.control_planes} control plane(s); `down` it first"
                )
            return self._repair(progress)
        problems = prereqs.check(self.state.runtime)
        if problems:
            raise ClusterError(
                "tinykube up cannot start:\n" + "\n".join(f"  - {p}" for p in problems)
            )
        planes = self.state.control_planes
        progress(
            f"creating cluster {self.name!r}: {len(self.state.nodes)} nodes"
            f"{f' ({planes} control planes)' if planes > 1 else ''}, "
            f"runtime {self.state.runtime}, in {self.directory}"
        )
        started = time.monotonic()
        if self.directory.exists():  # what a failed `up` left: its logs, nothing running
            leftovers = [self.node(n) for n in self.state.nodes]
            teardown.delete_cluster(self.state, leftovers, keep_logs=False)
        self.state.log_dir.mkdir(parents=True, exist_ok=True)
        self.state.save()
        try:
            with self._step(progress, "namespaces " + ", ".join(self.state.namespaces)):
                self.underlay.create()
                for index, name in enumerate(self.state.nodes, start=1):
                    self.underlay.add_machine(name, index)
            with self._step(progress, "images (pause, busybox, nginx)"):
                archives = build_images()
            self._start("registry", progress)
            with self._step(progress, f"push images to {self.registry_address}"):
                self._registry().push_in_namespace(archives)
            self._start_keys(self.components()[1:], progress)
            with self._step(progress, "nodes Ready"):
                self.wait_ready()
        except BaseException as err:
            component = getattr(err, "component", "")
            log_path = getattr(err, "log_path", "")
            progress(f"FAILED: {err}")
            if log_path:
                progress(f"  the last lines of {log_path}:")
                for line in tail(Path(log_path), 10):
                    progress(f"    {line}")
            progress("removing what was started (the logs stay) ...")
            self.down(quiet, keep_logs=True)
            if isinstance(err, (NodeError, ClusterError)):
                raise ClusterError(str(err), component, log_path) from None
            raise
        if self.make_current:
            clusterstate.set_current(self.name)
            # access prefixes https:// to the first server; the others carry their own
            servers = ",https://".join(self.state.server.split(","))
            access.write_user_kubeconfig(self.name, self.pki, servers, progress)
        progress(f"cluster {self.name!r} is up in {time.monotonic() - started:.1f} s")
        access.describe(self.state, progress)
        return self.state

    def _repair(self, progress: Progress) -> ClusterState:
        dead = [k for k in self.components() if not self._alive(k)]
        missing = [ns for ns in self.state.namespaces if not NetNS(ns).exists()]
        if missing:
            raise ClusterError(
                f"cluster {self.name!r} is broken (namespaces {', '.join(missing)} are gone): "
                f"run `tinykube down --name {self.name}` and `up` again"
            )
        if not dead:
            progress(f"cluster {self.name!r} is already running")
            access.describe(self.state, progress)
            return self.state
        progress(f"cluster {self.name!r}: restarting {', '.join(dead)}")
        self._start_keys(dead, progress)
        with self._step(progress, "nodes Ready"):
            self.wait_ready()
        return self.state

    @contextlib.contextmanager
    def _step(self, progress: Progress, what: str, where: str = "") -> Iterator[None]:
        """`  starting X (where) ...` then `  X ready in 0.12 s`."""
        progress(f"  {what}{f' ({where})' if where else ''} ...")
        began = time.monotonic()
        yield
        progress(f"  {what}: ok, {time.monotonic() - began:.2f} s")

    def _where(self, key: str) -> str:
        """Where a component runs and listens, for the progress output."""
        if key == "registry":
            return f"{self.underlay.ns.name}, {self.registry_address}"
        if key == "apiserver":
            ns = f"{self.state.prefix}-{self.state.nodes[0]}"
            return f"{ns}, {self.state.server} and {self.client_address}"
        name = key.partition("-")[0]
        if self.ha is not None and self.ha.owns(key):
            return f"{self.state.prefix}-{name}, {self.ha.ip(name)}"
        return f"{self.state.prefix}-{name}, {self.node(name).config.node_ip}"

    def _registry(self) -> UnderlayRegistry:
        return UnderlayRegistry(
            self.directory / "registry", self.underlay.ns, self.underlay.address
        )

    def _alive(self, key: str) -> bool:
        record = self.state.processes.get(key)
        return record is not None and record.alive()

    def _record(self, key: str, started: stacked.Started) -> None:
        proc, record = started
        self.procs[key] = proc
        self.state.processes[key] = record
        self.state.save()

    def _start(self, key: str, progress: Progress) -> None:
        """Start one component by its key (`registry`, `apiserver`, `node1-kubelet`, ...)."""
        with self._step(progress, key, self._where(key)):
            self._record(key, self._spawn(key))

    def _spawn(self, key: str) -> stacked.Started:
        if key == "registry":
            return self._registry().start_in_namespace(self._log(key))
        if key == "apiserver":
            return self._start_apiserver()
        name, _, part = key.partition("-")
        node = self.node(name)
        if part == node.runtime_component:
            return node.start_runtime(preload=[images.PAUSE_IMAGE])
        if part == "kubelet":
            return node.start_kubelet(self.extra_env.get(key))
        raise ClusterError(f"unknown component {key!r}")

    def _start_keys(self, keys: Sequence[str], progress: Progress) -> None:
        """Start `keys` in order; with several control planes, stacked.groups at once each,
        waiting on their health (stacked.py)."""
        if self.ha is None:
            for key in keys:
                self._start(key, progress)
            return
        ha = self.ha
        for group in stacked.groups(keys):
            with self._step(progress, ", ".join(group)):
                if ha.owns(group[0]):
                    ha.start(group, self.node, self._log, self._record, self.procs)
                    if group[0].endswith("-apiserver"):
                        self.api(access.enforce_baseline)
                    continue
                stacked.in_parallel(group, self._spawn, self._record)

    def _log(self, key: str) -> Path:
        return self.state.log_dir / f"{key}.log"

    @property
    def pki(self) -> PkiLayout:
        return PkiLayout(str(self.directory))

    def _start_apiserver(self) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
        first = self.node(self.state.nodes[0])
        nodes = {name: self.node(name).config.node_ip for name in self.state.nodes}
        try:
            access.ensure_pki(self.directory, first.config.node_ip, nodes)
        except PkiInitError as err:
            raise ClusterError(str(err), "pki") from None
        started = first.start_apiserver(
            extra_listen=[self.client_address],
            log_path=self._log("apiserver"),
            ready=lambda: self.api(lambda c: c.list("namespaces")),
            socket_group=access.socket_group(),
        )
        self.api(access.enforce_baseline)
        return started

    # ---- the API --------------------------------------------------------------------------------

    def api(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        """Run `fn(client)` against the cluster's API server (from the host)."""
        from apimachinery.client import Client

        async def call() -> T:
            async with Client(self.client_address, timeout=10) as client:
                return await fn(client)

        return asyncio.run(call())

    def node_conditions(self) -> dict[str, bool]:
        """Node name -> Ready (True only with a podCIDR too)."""

        async def read(client: Any) -> dict[str, bool]:
            nodes, _ = await client.list("nodes")
            return {
                n.metadata.name: bool(n.spec.pod_cidr)
                and any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)
                for n in nodes
            }

        return self.api(read)

    def wait_ready(self, nodes: Sequence[str] = (), timeout: float = READY_TIMEOUT) -> None:
        """Until the nodes are Ready; a process found dead meanwhile fails at once, by name."""
        wanted = list(nodes or self.state.nodes)
        deadline = time.monotonic() + timeout
        ready: dict[str, bool] = {}
        while time.monotonic() < deadline:
            for key in self.components():
                proc = self.procs.get(key)
                if proc is not None and proc.poll() is not None:
                    record = self.state.processes[key]
                    raise ClusterError(f"{key} exited", key, record.log)
            with contextlib.suppress(Exception):
                ready = self.node_conditions()
            if all(ready.get(n) for n in wanted):
                return
            time.sleep(0.5)
        late = [n for n in wanted if not ready.get(n)]
        node = late[0]
        key = f"{node}-kubelet"  # the kubelet and, in its process, the network agent
        raise ClusterError(
            f"nodes {', '.join(late)} not Ready after {timeout:.0f} s (suspect {key})",
            key,
            str(self._log(key)),
        )

    # ---- status ---------------------------------------------------------------------------------

    def status(self) -> list[ComponentStatus]:
        return [
            ComponentStatus.of(key, self.state.processes.get(key), str(self._log(key)))
            for key in self.components()
        ]

    # ---- stopping -------------------------------------------------------------------------------

    def stop_component(self, key: str, kill: bool = True) -> None:
        """Stop one process: SIGKILL to its group (a crash) or a clean stop (tests)."""
        record = self.state.processes.get(key)
        if record is None:
            raise ClusterError(f"cluster {self.name!r} has no process {key!r}")
        if kill:
            kill9(record)
        else:
            stop_process(record)
        self.procs.pop(key, None)

    def down(self, progress: Progress = print, keep_logs: bool = False) -> None:
        """Remove everything `up` made (localcluster.teardown); idempotent, complete after a crash.

        With `keep_logs` the logs/ directory stays (a failed `up` leaves it for the user).
        """
        started = time.monotonic()
        teardown.delete_cluster(self.state, [self.node(n) for n in self.state.nodes], keep_logs)
        clusterstate.clear_current(self.name)
        access.remove_user_kubeconfig(self.name)
        self.procs.clear()
        progress(f"cluster {self.name!r} removed in {time.monotonic() - started:.1f} s")
