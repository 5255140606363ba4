"""`tinykube up --control-planes 3`: kubeadm's stacked HA topology on namespace nodes.

kubeadm's "stacked etcd" topology puts, on each control-plane machine, one
etcd member and one of each control-plane component; the members form one
etcd cluster, every API server uses all of them, and the scheduler and the
controller-manager elect one leader among their copies (a Lease each). The
cluster keeps working while a majority of the members (2 of 3) is up. Here the
machines are the first N namespace nodes of `tinykube up` (cluster.py); every
node still runs a container runtime and a kubelet, as kubeadm's control-plane
nodes do when untainted.

    tk-demo-node1  10.201.0.11   etcd (node1)    https://10.201.0.11:2379, peers :2380
                                 apiserver       10.201.0.11:6443 (mTLS), :6444 (tokens),
                                                 unix:<dir>/api.sock (this host's CLI)
                                 scheduler, controller-manager   --leader-elect
                                 containerd, kubelet (+ network agent)
    tk-demo-node2  10.201.0.12   the same, socket <dir>/api-node2.sock
    tk-demo-node3  10.201.0.13   the same, socket <dir>/api-node3.sock
    tk-demo-node4 ...            containerd, kubelet (workers, with --nodes 4 or more)

How each piece finds the others:

* etcd (localcluster/etcdcluster.py): members named after their nodes, peers
  and clients over TLS with a certificate per member (pki/etcd/);
* each API server: `--storage etcd://` every member (the one beside it first:
  reads are served locally while it lives) with the client certificate
  `apiserver-etcd-client`, `--advertise-address` its node's IP (the lease
  endpoint reconciler lists the live servers in `default/kubernetes`), and
  `--no-scheduler --no-controllers`: those run as processes of their own;
* every client -- kubelets and their network agents, schedulers,
  controller-managers, the user's kubeconfig -- takes the list of all the
  API servers and fails over (apimachinery/channel_failover.py). `tinykube
  pki init` writes kubeconfigs naming one server (the first
  --apiserver-address, kubeadm's single `server:`); `ha_kubeconfigs` writes a
  copy of each into <dir>/ha/ whose `server:` lists all of them (a tinykube
  extension where Kubernetes puts a load balancer), with `ha/pki` a link to
  `../pki`, so `PkiLayout("<dir>/ha")` names every file a node needs. The
  host's CLI reads the same list of unix sockets from the state file;
* the scheduler and the controller-manager run with `--leader-elect` (15 s
  lease, 10 s renew deadline, 2 s retry). Each runs in a UTS namespace whose
  hostname is its node's, so its Lease's holderIdentity reads
  `node2_<uuid>` (kube-scheduler's `<hostname>_<uuid>`), and under a restart
  loop, as a static pod under the kubelet or a unit with Restart=always is:
  a component that loses its Lease exits ("leaderelection lost") and must
  come back as a candidate.

Starting, in parallel where the parts do not depend on each other, and
waiting on health rather than sleeping: all etcd members at once (a member
alone cannot become healthy: it needs a quorum), until every member's
/health says true; the API servers at once, until each answers on its socket;
the schedulers and controller-managers; the runtimes (in threads); the
kubelets. `tinykube up` on a cluster with dead parts (a node killed by a
test) starts them again in the same groups: a member restarted with the same
command rejoins from its data directory.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from localcluster import access, nodeconfig
from localcluster.clusterstate import ClusterState, ProcessRecord
from localcluster.etcdcluster import EtcdCluster, EtcdMember, EtcdPki, make_pki
from localcluster.netns import NetNS, Underlay
from localcluster.node import FAST_APISERVER, LocalNode, NodeError, spawn
from localcluster.pki import PkiLayout
from localcluster.processes import PkiInitError, pki_init, tinykube_cmd

CONTROL_PLANE_PARTS = ("etcd", "apiserver", "scheduler", "controller-manager")
APISERVER_TIMEOUT = 60.0
Started = tuple[subprocess.Popen[bytes], ProcessRecord]

# Restarts the component whenever it exits (Restart=always), in a UTS namespace named
# after the node: $0 is the hostname, "$@" the command.
SUPERVISOR = (
    'hostname "$0" || exit 1; '
    'while :; do "$@"; echo "tinykube up: exited with status $?, starting again in 1 s"; '
    "sleep 1; done"
)


def split_key(key: str) -> tuple[str, str]:
    """`node2-controller-manager` -> ("node2", "controller-manager")."""
    node, _, part = key.partition("-")
    return node, part


@dataclass
class StackedControlPlane:
    """The control-plane part of a local cluster whose state asks for several."""

    state: ClusterState
    underlay: Underlay

    @property
    def names(self) -> list[str]:
        return self.state.nodes[: self.state.control_planes]

    def ip(self, node: str) -> str:
        return self.underlay.host_address(self.state.nodes.index(node) + 1)

    @property
    def servers(self) -> list[str]:
        """Every API server as `IP:6443`, node1's first."""
        return [f"{self.ip(n)}:{nodeconfig.APISERVER_PORT}" for n in self.names]

    @property
    def layout(self) -> PkiLayout:
        """The kubeconfigs that list every server (and, through ha/pki, every certificate)."""
        return PkiLayout(str(self.state.directory / "ha"))

    def socket(self, node: str) -> str:
        return f"unix:{self.state.sockets[self.names.index(node)]}"

    @property
    def etcd(self) -> EtcdCluster:
        members = tuple(
            EtcdMember(n, self.ip(n), self.state.directory / n / "etcd") for n in self.names
        )
        pki = EtcdPki(self.state.directory / "pki" / "etcd")
        return EtcdCluster(members, pki, self.state.prefix)

    def storage_spec(self, node: str) -> str:
        """`--storage` for the API server on `node`: its own member first, then the others."""
        etcd = self.etcd
        ordered = sorted(etcd.members, key=lambda m: m.name != node)
        return EtcdCluster(tuple(ordered), etcd.pki, etcd.token).storage_spec()

    def components(self) -> list[str]:
        """The control plane's process keys in start order (cluster.py puts the registry
        before them, the runtimes and kubelets after)."""
        keys = [f"{n}-etcd" for n in self.names]
        keys += [f"{n}-apiserver" for n in self.names]
        keys += [f"{n}-{p}" for n in self.names for p in ("scheduler", "controller-manager")]
        return keys

    @staticmethod
    def owns(key: str) -> bool:
        return split_key(key)[1] in CONTROL_PLANE_PARTS

    # ---- certificates and kubeconfigs ---------------------------------------------------------

    def ensure_pki(self, nodes: Mapping[str, str]) -> None:
        """pki init with every server's address, the etcd PKI, the kubeconfigs listing all."""
        directory = self.state.directory
        pki_init(PkiLayout(str(directory)), [self.ip(n) for n in self.names], nodes)
        make_pki(self.etcd.pki.directory, list(self.etcd.members))
        ha_kubeconfigs(PkiLayout(str(directory)), self.layout, self.servers)

    # ---- command lines ---------------------------------------------------------------------

    def argv(self, key: str, node: LocalNode, socket_group: str) -> list[str]:
        name, part = split_key(key)
        if part == "etcd":
            return self.etcd.argv(self.etcd.member(name))
        if part == "apiserver":
            argv = node.apiserver_argv([self.socket(name)], socket_group)
            argv += ["--storage", self.storage_spec(name), "--advertise-address", self.ip(name)]
            argv += ["--no-scheduler", "--no-controllers"]
            return argv + (list(FAST_APISERVER) if self.state.fast_failover else [])
        conf = self.layout.kubeconfig(part)
        command = [*tinykube_cmd(), "--kubeconfig", conf, part, "--leader-elect=true"]
        if part == "controller-manager":
            pki = self.layout
            command += ["--cluster-signing-cert-file", pki.ca_cert]
            command += ["--cluster-signing-key-file", pki.ca_key]
            if self.state.fast_failover:
                command += ["--node-monitor-grace-period", FAST_APISERVER[1]]
        return ["unshare", "--uts", "--", "sh", "-c", SUPERVISOR, name, *command]

    def spawn(self, key: str, node: LocalNode, log: Path, socket_group: str) -> Started:
        """Start one control-plane process in its node's namespace; does not wait."""
        name, part = split_key(key)
        if part == "etcd":
            self.etcd.member(name).data_dir.parent.mkdir(parents=True, exist_ok=True)
        if part == "apiserver":
            Path(self.socket(name).removeprefix("unix:")).unlink(missing_ok=True)
        proc, record = spawn(self.argv(key, node, socket_group), log, node.ns)
        record.node = name
        return proc, record

    def start(
        self,
        group: Sequence[str],
        node: Callable[[str], LocalNode],
        log: Callable[[str], Path],
        record: Callable[[str, Started], None],
        procs: Mapping[str, subprocess.Popen[bytes]],
    ) -> None:
        """Start one group of control-plane keys (stacked.groups) and wait on their health;
        the certificates first, before the etcd members (kept when they exist)."""
        if split_key(group[0])[1] == "etcd":
            try:
                self.ensure_pki({n: node(n).config.node_ip for n in self.state.nodes})
            except PkiInitError as err:
                raise NodeError("pki", "", str(err)) from None
        for key in group:
            name = split_key(key)[0]
            record(key, self.spawn(key, node(name), log(key), access.socket_group()))
        self.wait(group, procs)

    # ---- waiting on health ---------------------------------------------------------------------

    def etcd_get(self, node: str, path: str = "/health", via: str = "") -> dict[str, Any]:
        """GET a member's `path` (`/health`, or a /v3/ gateway call with `{}`) from inside the
        cluster's network -- the host has no route to it -- with the API servers' client
        certificate; {} when it does not answer. `via` is the namespace node (default: its own)."""
        member = self.etcd.member(node)
        pki = self.etcd.pki
        argv = ["curl", "-s", "-m", "2", "--cacert", str(pki.ca)]
        argv += ["--cert", str(pki.client_cert), "--key", str(pki.client_key)]
        if path.startswith("/v3/"):
            argv += ["-X", "POST", "-d", "{}"]
        ns = NetNS(f"{self.state.prefix}-{via or node}")
        out = ns.exec([*argv, f"{member.client_url}{path}"], check=False, timeout=10)
        try:
            answer = json.loads(out.stdout) if out.returncode == 0 else {}
        except ValueError:
            return {}
        return answer if isinstance(answer, dict) else {}

    def etcd_healthy(self, node: str) -> bool:
        """Whether the member answers /health with true (it has a leader: a quorum)."""
        return self.etcd_get(node).get("health") == "true"

    def wait(self, keys: Sequence[str], procs: Mapping[str, subprocess.Popen[bytes]]) -> None:
        """Until the started `keys` are healthy: etcd members answer /health, API servers
        answer a list; a process that exits meanwhile fails at once, by name."""
        etcd = [self.etcd.member(split_key(k)[0]) for k in keys if split_key(k)[1] == "etcd"]
        if etcd:
            deadline = time.monotonic() + 60.0
            waiting = list(etcd)
            while waiting:
                _check_alive(keys, procs, self.state)
                waiting = [m for m in waiting if not self.etcd_healthy(m.name)]
                if waiting and time.monotonic() > deadline:
                    key = f"{waiting[0].name}-etcd"
                    names = ", ".join(m.name for m in waiting)
                    log = self.state.processes[key].log
                    raise NodeError(key, log, f"{names} not healthy in 60 s")
                time.sleep(0.2)
        for key in keys:
            if split_key(key)[1] == "apiserver":
                self._wait_apiserver(key, keys, procs)

    def _wait_apiserver(
        self, key: str, keys: Sequence[str], procs: Mapping[str, subprocess.Popen[bytes]]
    ) -> None:
        from apimachinery.client import Client

        async def answers(address: str) -> None:
            async with Client(address, timeout=5) as client:
                await client.list("namespaces")

        deadline = time.monotonic() + APISERVER_TIMEOUT
        while True:
            _check_alive(keys, procs, self.state)
            try:
                asyncio.run(answers(self.socket(split_key(key)[0])))
                return
            except Exception as err:
                if time.monotonic() > deadline:
                    log = self.state.processes[key].log
                    detail = f"did not answer in {APISERVER_TIMEOUT:.0f} s: {err}"
                    raise NodeError(key, log, detail) from None
            time.sleep(0.3)


def _check_alive(
    keys: Sequence[str], procs: Mapping[str, subprocess.Popen[bytes]], state: ClusterState
) -> None:
    for key in keys:
        proc = procs.get(key)
        if proc is not None and proc.poll() is not None:
            record = state.processes[key]
            raise NodeError(key, record.log, f"exited with {proc.returncode}")


def ha_kubeconfigs(source: PkiLayout, target: PkiLayout, servers: Sequence[str]) -> list[Path]:
    """A copy of every kubeconfig in `source` whose server lists `servers` (https://, in
    order), in `target`, with `target/pki` linking to `source`'s certificates."""
    out = Path(target.directory)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    link = out / "pki"
    if not link.is_symlink():
        link.symlink_to(Path(source.directory) / "pki")
    server = ",".join(f"https://{s}" for s in servers)
    written = []
    for conf in sorted(Path(source.directory).glob("*.conf")):
        document = yaml.safe_load(conf.read_text())
        for cluster in document.get("clusters") or []:
            cluster["cluster"]["server"] = server
        path = out / conf.name
        tmp = path.with_name(f".{conf.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(document, f, sort_keys=False)
        tmp.replace(path)
        written.append(path)
    return written


def in_parallel(
    keys: Sequence[str],
    start: Callable[[str], Started],
    record: Callable[[str, Started], None],
) -> None:
    """Run blocking starts (a runtime waits for its API) in threads; every process that
    started is recorded (so `down` finds it), then the first failure is raised."""
    with ThreadPoolExecutor(max_workers=max(1, len(keys))) as pool:
        futures = [pool.submit(start, key) for key in keys]
    for key, future in zip(keys, futures, strict=True):
        if future.exception() is None:
            record(key, future.result())
    for future in futures:
        error = future.exception()
        if error is not None:
            raise error


def groups(keys: Sequence[str]) -> list[list[str]]:
    """Consecutive keys that start together: the etcd members, the API servers, the
    schedulers and controller-managers, the runtimes, the kubelets."""

    def kind(key: str) -> str:
        part = split_key(key)[1]
        if part in ("scheduler", "controller-manager"):
            return "elected"
        return "runtime" if part in ("containerd", "dockerd") else part

    out: list[list[str]] = []
    for key in keys:
        if out and kind(out[-1][-1]) == kind(key):
            out[-1].append(key)
        else:
            out.append([key])
    return out
