"""Network data path and service proxy: `sudo python bench/network.py [--quick] [--workdir D]`.

What is measured, in one run, on a cluster made of network namespaces (the
multi-node harness of localcluster/netcluster.py: an API server on
a unix socket, two node namespaces on an underlay bridge, a `tinykube
netplugin` agent per node, pods wired by `tinykube-cni`):

1. Throughput with iperf3 (`-c IP -t 3 -J`, with `-P 1` and `-P 8`), each row
   also as a ratio to the underlay (the best of --repeat rounds over all rows:
   the machine is shared, and the best run is the one least disturbed):
     underlay          node1 -> node2 over eth1 (the "physical" network)
     pod, one node     pod -> pod over the bridge tk0
     pod, two nodes    pod -> pod over VXLAN (tinykube.1, UDP 8472)
     bare VXLAN        the reference: two more namespaces on the same underlay
                       joined by a plain kernel VXLAN device each, same MTU, no
                       bridge, no nftables (bench/vxlan_reference.py)
     ClusterIP, two n. pod -> ClusterIP (DNAT to the pod on node2) over VXLAN
     ClusterIP, one n. pod -> ClusterIP (DNAT to the pod on node1)
   The two ClusterIP rows are compared with their direct-pod rows too
   (Service path / direct pod), and the VXLAN rows with each other:
   tinykube / bare VXLAN (what tinykube adds to VXLAN) and bare VXLAN /
   underlay (what VXLAN itself costs), for 1 and 8 streams, of the best runs
   and of each round's back-to-back pair; and the same two ratios of CPU
   seconds per GB (iperf3's own client + server CPU time, which holds the
   softirq work of the path: a figure that load from other programs slows
   down much less than it moves the throughput). iperf3 opens a control connection and then
   the data connections to the same address: the Service has one endpoint.
2. The service proxy at scale, in a namespace of its own (one node, two pods
   on a bridge, a Proxier driven directly with a model of N Services, one
   endpoint each): for N = 100, 1000, 5000, the time of one full sync (render
   + `nft -f -`, and the nft transaction alone), then the TCP connect latency
   (p50 over 200 rounds, each round one connect to the first Service, one to
   the last and one straight to the pod) from a pod. Flat means: the last of 5000 costs what
   the first of 100 does (one hash lookup in the service-ips verdict map).

Targets: pod-to-pod across nodes >= 0.9 of the underlay with 8
streams, and >= 0.95 of the bare VXLAN; Service path >= 0.95 of the direct
pod path; 5000 Services programmed in <= 2 s with flat first-packet latency.
They are printed beside the figures, not asserted. Everything runs on this
machine's CPUs: the "underlay" is a veth pair through a bridge, so the ratios
measure the cost of the overlay and of NAT in the kernel, not of any NIC. The
last line is a one-line summary.

Needs root, iproute2, nftables, iperf3 (`sudo make system-deps`). All
namespaces and processes are removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apimachinery.client import Client
from apimachinery.factory import SharedInformerFactory
from bench.vxlan_reference import BareVxlan
from localcluster.netcluster import NetworkCluster, Target
from localcluster.netcluster_objects import endpoints, service
from localcluster.netns import NetNS, Underlay, delete_namespaces
from netplugin.commands import CommandLog
from netplugin.proxy import Proxier
from netplugin.proxy.model import Endpoint, ServicePort

IPERF_PORT = 5201

LISTENER = r"""
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080)); s.listen(4096)
print("ready", flush=True)
while True:
    s.accept()[0].close()
"""

# N rounds of one connect to each IP:PORT given, in turn (so every target sees the same
# moments of load); prints each target's connect times in seconds, JSON.
CONNECTS = r"""
import json, socket, sys, time
n, targets = int(sys.argv[1]), [(a.split(":")[0], int(a.split(":")[1])) for a in sys.argv[2:]]
out = [[] for _ in targets]
for i in range(n + 10):  # the first 10 rounds warm caches (ARP, route) and are dropped
    for j, target in enumerate(targets):
        s = socket.socket()
        t = time.perf_counter()
        s.connect(target)
        if i >= 10:
            out[j].append(time.perf_counter() - t)
        s.close()
print(json.dumps(out))
"""


@dataclass
class Throughput:
    name: str
    one: float  # Gbit/s with -P 1
    eight: float  # Gbit/s with -P 8


def iperf(
    cluster: NetworkCluster, client: Target, ip: str, seconds: int, streams: int
) -> tuple[float, float]:
    """For `iperf3 -c ip -P streams -t seconds`: Gbit/s received by the server, and CPU
    seconds per GB moved -- iperf3's own user + system time, client and server. With no
    IRQ time accounting in the kernel, the softirq work of the path (veth, bridge,
    netfilter, VXLAN) that runs in their context is in their system time: a cost that
    other load on the machine slows down but hardly changes, unlike the throughput."""
    argv = ["iperf3", "-c", ip, "-p", str(IPERF_PORT), "-t", str(seconds), "-P", str(streams)]
    proc = cluster.exec(client, [*argv, "-J"], check=False, timeout=seconds + 30)
    data = json.loads(proc.stdout or "{}")
    if "error" in data or proc.returncode != 0:
        raise RuntimeError(f"iperf3 to {ip}: {data.get('error') or proc.stderr.strip()}")
    received, cpu = data["end"]["sum_received"], data["end"]["cpu_utilization_percent"]
    cpu_s = (float(cpu["host_total"]) + float(cpu["remote_total"])) / 100 * received["seconds"]
    return float(received["bits_per_second"]) / 1e9, cpu_s / (received["bytes"] / 1e9)


def iperf_server(cluster: NetworkCluster, target: Target, name: str) -> None:
    cluster.spawn(target, ["iperf3", "-s", "-p", str(IPERF_PORT)], f"iperf3-{name}.log")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = cluster.exec(target, ["ss", "-Hltn", f"sport = :{IPERF_PORT}"], check=False)
        if out.stdout.strip():
            return
        time.sleep(0.05)
    raise TimeoutError(f"iperf3 server in {name} not listening")


def cluster_ip_service(cluster: NetworkCluster, name: str, ip: str) -> str:
    """A selector-less Service on the iperf3 port with `ip` as its one endpoint; its ClusterIP."""
    svc = service(name, "", [{"name": "iperf", "port": IPERF_PORT}])
    svc.spec.ClearField("selector")
    ep = endpoints(name, [([ip], [], [("iperf", IPERF_PORT, "TCP")])])

    async def create(client: Client) -> str:
        created = await client.create(svc)
        await client.create(ep)
        return str(created.spec.cluster_ip)

    vip = cluster.api(create)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        listed = cluster.exec("node1", ["nft", "list", "map", "ip", "tinykube", "service-ips"])
        if vip in listed.stdout:
            return vip
        time.sleep(0.1)
    raise TimeoutError(f"Service {name} ({vip}) not programmed on node1")


CROSS = "pod, two nodes (VXLAN)"
BARE = "bare VXLAN (reference)"
# per round: row name -> [Gbit/s 1 stream, 8 streams, CPU s/GB 1 stream, 8 streams]
Rounds = list[dict[str, list[float]]]


def throughput(
    cluster: NetworkCluster, ref: BareVxlan, seconds: int, repeat: int
) -> tuple[list[Throughput], Rounds]:
    cluster.add_pod("node1", "client")
    local_ip = cluster.add_pod("node1", "local")
    remote_ip = cluster.add_pod("node2", "remote")
    client = cluster.pod("node1", "client")
    iperf_server(cluster, "node2", "node2")
    iperf_server(cluster, cluster.pod("node1", "local"), "local")
    iperf_server(cluster, cluster.pod("node2", "remote"), "remote")
    iperf_server(cluster, ref.server.ns, "bare-vxlan")
    vip_remote = cluster_ip_service(cluster, "iperf-remote", remote_ip)
    vip_local = cluster_ip_service(cluster, "iperf-local", local_ip)
    rows: list[tuple[str, Target, str]] = [
        ("underlay", "node1", cluster.nodes["node2"].ip),
        ("pod, one node", client, local_ip),
        (CROSS, client, remote_ip),
        (BARE, ref.client.ns, ref.server.ip),
        ("ClusterIP, two nodes", client, vip_remote),
        ("ClusterIP, one node", client, vip_local),
    ]
    # Rounds over every row, rather than each row's runs back to back: a burst of
    # other work on the machine then costs every row a run, not one row all of them.
    best = {name: [0.0, 0.0] for name, _, _ in rows}
    rounds: Rounds = []
    for round_ in range(repeat):
        rounds.append({})
        for name, source, ip in rows:
            for i, streams in enumerate((1, 8)):
                gbps, cpu = iperf(cluster, source, ip, seconds, streams)
                best[name][i] = max(best[name][i], gbps)
                rounds[-1].setdefault(name, [0.0] * 4)[i : i + 3 : 2] = [gbps, cpu]
                print(
                    f"  round {round_ + 1} {name} -P {streams}: {gbps:.2f} Gbit/s", file=sys.stderr
                )
    return [Throughput(name, *best[name]) for name, _, _ in rows], rounds


# ---- the service proxy at scale -------------------------------------------------------------


@dataclass
class ScaleRow:
    services: int
    sync_s: float
    nft_s: float
    lines: int
    first_ms: float
    last_ms: float
    direct_ms: float


class ProxyNode:
    """One node namespace with tk0 and two pods (a listener and a client), built by hand."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.node = NetNS(f"{prefix}-pnode")
        self.server = NetNS(f"{prefix}-psrv")
        self.client = NetNS(f"{prefix}-pcli")
        self.procs: list[subprocess.Popen[str]] = []

    def create(self) -> None:
        self.node.create()
        self.node.ip("link", "add", "tk0", "type", "bridge")
        self.node.ip("addr", "add", "10.244.1.1/24", "dev", "tk0")
        self.node.ip("link", "set", "tk0", "up")
        self.node.sysctl("net.ipv4.ip_forward", "1")
        for i, pod in enumerate((self.server, self.client)):
            pod.create()
            self.node.ip(
                "link", "add", f"vb{i}", "type", "veth", "peer", "name", "eth0", "netns", pod.name
            )
            self.node.ip("link", "set", f"vb{i}", "master", "tk0", "up")
            pod.ip("addr", "add", f"10.244.1.{10 + i}/24", "dev", "eth0")
            pod.ip("link", "set", "eth0", "up")
            pod.ip("route", "add", "default", "via", "10.244.1.1")
        proc = subprocess.Popen(
            [*self.server.prefix(), sys.executable, "-c", LISTENER],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"

    def connect_ms(self, targets: list[str], count: int) -> list[float]:
        """p50 TCP connect time in ms to each "ip:port", measured in interleaved rounds."""
        argv = [sys.executable, "-c", CONNECTS, str(count), *targets]
        times = json.loads(self.client.exec(argv, timeout=300).stdout)
        return [float(statistics.median(t)) * 1000 for t in times]

    def destroy(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        for ns in (self.client, self.server, self.node):
            ns.delete()


def service_ports(n: int) -> list[ServicePort]:
    base = ipaddress.IPv4Address("10.96.0.10")
    ep = (Endpoint("10.244.1.10", 8080),)
    return [
        ServicePort("bench", f"svc{i:05d}", "http", "tcp", str(base + i), 80, 0, ep)
        for i in range(n)
    ]


def proxy_scale(prefix: str, sizes: list[int], connects: int) -> list[ScaleRow]:
    world = ProxyNode(prefix)
    world.create()
    try:
        factory = SharedInformerFactory(Client("unix:/nonexistent"))  # fed a model directly
        proxier = Proxier(
            factory,
            node_name="bench",
            node_ips=[],
            cluster_cidr="10.244.0.0/16",
            cmds=CommandLog(keep=0),
            netns=world.node.name,
        )
        rows = []
        for n in sizes:
            ports = service_ports(n)
            proxier.apply(ports)
            proxier.apply([])  # start the next size from an empty table
            started = time.perf_counter()
            script = proxier.apply(ports)
            sync_s = time.perf_counter() - started
            first, last = ports[0].cluster_ip, ports[-1].cluster_ip
            targets = [f"{first}:80", f"{last}:80", "10.244.1.10:8080"]
            first_ms, last_ms, direct_ms = world.connect_ms(targets, connects)
            rows.append(
                ScaleRow(
                    services=n,
                    sync_s=sync_s,
                    nft_s=proxier.nft.last_apply_seconds,
                    lines=script.count("\n"),
                    first_ms=first_ms,
                    last_ms=last_ms,
                    direct_ms=direct_ms,
                )
            )
            print(f"  measured {n} Services: sync {sync_s:.3f} s", file=sys.stderr)
        return rows
    finally:
        world.destroy()


# ---- report ---------------------------------------------------------------------------------


def vxlan_ratios(rows: list[Throughput], rounds: Rounds) -> dict[str, list[float]]:
    """tinykube / bare VXLAN and bare VXLAN / underlay, [1 stream, 8 streams], of the best runs;
    "per round" keys: tinykube / bare VXLAN of each round's own pair (measured back to back)."""
    by_name = {r.name: r for r in rows}
    base, cross, bare = by_name["underlay"], by_name[CROSS], by_name[BARE]
    out = {
        "tinykube / bare VXLAN": [cross.one / bare.one, cross.eight / bare.eight],
        "bare VXLAN / underlay": [bare.one / base.one, bare.eight / base.eight],
    }
    for i, label in enumerate(("1 stream", "8 streams")):
        out[f"per round, {label}"] = [r[CROSS][i] / r[BARE][i] for r in rounds]
    # CPU per GB, the median over rounds of each round's pair: > 1 is what tinykube adds.
    out["CPU per GB, tinykube / bare VXLAN"] = [
        statistics.median(r[CROSS][i] / r[BARE][i] for r in rounds) for i in (2, 3)
    ]
    out["CPU per GB, bare VXLAN / underlay"] = [
        statistics.median(r[BARE][i] / r["underlay"][i] for r in rounds) for i in (2, 3)
    ]
    return out


def report_vxlan(rows: list[Throughput], rounds: Rounds) -> tuple[float, float]:
    """Print the VXLAN ratios; return tinykube / bare VXLAN with 8 streams (best runs) and
    its CPU per GB with 8 streams."""
    ratios = vxlan_ratios(rows, rounds)
    for key in (
        "tinykube / bare VXLAN",
        "bare VXLAN / underlay",
        "CPU per GB, tinykube / bare VXLAN",
        "CPU per GB, bare VXLAN / underlay",
    ):
        one, eight = ratios[key]
        print(f"{key}: {one:.2f} (1 stream) {eight:.2f} (8 streams)")
    for key in ("per round, 1 stream", "per round, 8 streams"):
        print(f"tinykube / bare VXLAN {key}: " + " ".join(f"{x:.2f}" for x in ratios[key]))
    return ratios["tinykube / bare VXLAN"][1], ratios["CPU per GB, tinykube / bare VXLAN"][1]


def report(
    rows: list[Throughput], rounds: Rounds, scale: list[ScaleRow], seconds: int, load: str
) -> None:
    base = rows[0]
    print(f"load average at start: {load}")
    print(f"iperf3 throughput, Gbit/s ({seconds} s per run; ratio to the underlay)")
    print(f"{'path':<26}{'1 stream':>10}{'ratio':>7}{'8 streams':>11}{'ratio':>7}")
    for r in rows:
        print(
            f"{r.name:<26}{r.one:>10.2f}{r.one / base.one:>7.2f}"
            f"{r.eight:>11.2f}{r.eight / base.eight:>7.2f}"
        )
    by_name = {r.name: r for r in rows}
    cross = by_name[CROSS]
    svc_remote = by_name["ClusterIP, two nodes"]
    svc_local = by_name["ClusterIP, one node"]
    local = by_name["pod, one node"]
    print(
        f"Service path / direct pod: two nodes {svc_remote.one / cross.one:.2f} (1) "
        f"{svc_remote.eight / cross.eight:.2f} (8); one node {svc_local.one / local.one:.2f} (1) "
        f"{svc_local.eight / local.eight:.2f} (8)"
    )
    over_bare, cpu_over_bare = report_vxlan(rows, rounds)
    print()
    print("service proxy: one full sync of N Services (one endpoint each); TCP connect p50")
    print(
        f"{'services':>9}{'sync s':>9}{'nft s':>8}{'lines':>9}"
        f"{'first ms':>10}{'last ms':>9}{'direct ms':>11}"
    )
    for s in scale:
        print(
            f"{s.services:>9}{s.sync_s:>9.3f}{s.nft_s:>8.3f}{s.lines:>9}"
            f"{s.first_ms:>10.3f}{s.last_ms:>9.3f}{s.direct_ms:>11.3f}"
        )
    print()
    biggest = scale[-1]
    cross_ratio = cross.eight / base.eight
    svc_ratio = min(svc_remote.eight / cross.eight, svc_local.eight / local.eight)
    # Flat: within one size, the last Service costs what the first does and what a
    # direct connect does (measured in the same rounds; across sizes, the machine's
    # load moves all three together, as the direct column shows).
    flat = max(s.last_ms / s.first_ms for s in scale)
    over_direct = max(s.last_ms / s.direct_ms for s in scale)
    print(
        "targets: cross-node/underlay (8 streams) >= 0.90: "
        f"{cross_ratio:.2f} {'met' if cross_ratio >= 0.9 else 'NOT met'}; "
        f"Service/direct >= 0.95: {svc_ratio:.2f} {'met' if svc_ratio >= 0.95 else 'NOT met'}; "
        f"cross-node/bare VXLAN (8 streams) >= 0.95: {over_bare:.2f} "
        f"{'met' if over_bare >= 0.95 else 'NOT met'}; "
        f"{biggest.services} Services <= 2 s: {biggest.sync_s:.2f} s "
        f"{'met' if biggest.sync_s <= 2.0 else 'NOT met'}; "
        f"connect last/first Service <= {flat:.2f}, last Service/direct <= {over_direct:.2f}"
    )
    print(
        f"summary: load {load.split()[0]}, underlay {base.eight:.1f} Gbit/s (8), "
        f"VXLAN {cross_ratio:.2f}x, {over_bare:.2f}x of bare VXLAN "
        f"(CPU/GB {cpu_over_bare:.2f}x) "
        f"(bare {by_name[BARE].eight / base.eight:.2f}x), "
        f"Service {svc_ratio:.2f}x of direct, {biggest.services} Services in "
        f"{biggest.sync_s:.2f} s (nft {biggest.nft_s:.2f} s), connect first/last "
        f"{biggest.first_ms:.3f}/{biggest.last_ms:.3f} ms"
    )


@contextlib.contextmanager
def workdir(path: str) -> Iterator[Path]:
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        yield Path(path)
        return
    tmp = tempfile.mkdtemp(prefix="tkbench-net-")
    try:
        yield Path(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 s iperf3 runs, 100 and 1000 Services")
    ap.add_argument("--seconds", type=int, default=3, help="iperf3 -t")
    ap.add_argument("--repeat", type=int, default=3, help="iperf3 runs per figure (the best)")
    ap.add_argument("--workdir", default="", help="keep logs here (default: a temporary dir)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/network.py needs root (network namespaces, nftables)")
    missing = [t for t in ("ip", "nft", "nsenter", "iperf3", "ss") if shutil.which(t) is None]
    if missing:
        sys.exit("missing: " + ", ".join(missing) + " (sudo make system-deps)")
    seconds = 1 if args.quick else args.seconds
    repeat = 1 if args.quick else args.repeat
    sizes = [100, 1000] if args.quick else [100, 1000, 5000]
    prefix = f"tkb{os.getpid()}"
    underlay = Underlay(prefix)
    load = Path("/proc/loadavg").read_text().split(" ", 3)[:3]
    with workdir(args.workdir) as base:
        try:
            underlay.create()
            ref = BareVxlan(underlay)
            ref.create()
            with NetworkCluster(underlay, base, nodes=2) as cluster:
                rows, rounds = throughput(cluster, ref, seconds, repeat)
            scale = proxy_scale(prefix, sizes, 50 if args.quick else 200)
        finally:
            underlay.destroy()
            delete_namespaces(prefix)
    report(rows, rounds, scale, seconds, " ".join(load))


if __name__ == "__main__":
    main()
