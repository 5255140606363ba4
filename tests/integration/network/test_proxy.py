"""The service proxy against the real kernel: one node namespace, pods on its bridge.

The world each test builds (prefix from the `ns_prefix` fixture):

    <prefix>-ul       the underlay, 10.201.0.1: an "external" client for NodePorts
    <prefix>-node1    eth1 10.201.0.11, bridge tk0 10.244.1.1/24, ip_forward on,
                      the proxy's table `ip tinykube`
    <prefix>-a/-b/-c  pods: eth0 10.244.1.10/11/12 on tk0, default route via .1

The pods are wired by hand (a veth pair, one end on tk0), as the CNI plugin
would; the Proxier runs in the test process and programs the node namespace
(`netns=`), fed either a model directly (`apply`) or a real API server. Each
pod runs SERVER: TCP and UDP ports that answer "<pod name> <client address as
the server saw it>", so a test sees both who answered and whether the source
was masqueraded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from apimachinery.client import Client
from apimachinery.factory import SharedInformerFactory
from localcluster.netcluster_objects import endpoints, service
from localcluster.netns import Machine, NetNS, Underlay
from localcluster.processes import ApiServerProcess
from netplugin.commands import CommandLog
from netplugin.proxy import Proxier, cleanup
from netplugin.proxy.model import Endpoint, ServicePort
from netplugin.proxy.nft import Nft
from netplugin.proxy.rules import RulesConfig, render
from tests.unit.netplugin.test_proxy_proxier import until

SERVER = r"""
import socket, sys, threading
name, tcp_ports, udp_ports = sys.argv[1], sys.argv[2], sys.argv[3]
def tcp(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(512)
    while True:
        c, peer = s.accept()
        try: c.sendall(f"{name} {peer[0]}\n".encode())
        finally: c.close()
def udp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    while True:
        data, peer = s.recvfrom(2048)
        s.sendto(f"{name} {peer[0]}".encode(), peer)
threads = [threading.Thread(target=tcp, args=(int(p),)) for p in tcp_ports.split(",") if p]
threads += [threading.Thread(target=udp, args=(int(p),)) for p in udp_ports.split(",") if p]
for t in threads: t.start()
print("ready", flush=True)
for t in threads: t.join()
"""

# COUNT requests to IP:PORT over PROTO (from source port SPORT unless 0); prints a JSON
# list of [reply or error, seconds].
CLIENT = r"""
import json, socket, sys, time
proto, ip = sys.argv[1], sys.argv[2]
port, count, timeout = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
sport = int(sys.argv[6])
out = []
for _ in range(count):
    t = time.monotonic()
    try:
        if proto == "tcp":
            with socket.create_connection((ip, port), timeout=timeout) as s:
                reply = s.makefile().readline().strip()
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("0.0.0.0", sport))
                s.settimeout(timeout); s.connect((ip, port)); s.send(b"x")
                reply = s.recv(2048).decode()
    except OSError as e:
        reply = type(e).__name__
    out.append([reply, round(time.monotonic() - t, 4)])
print(json.dumps(out))
"""

CLUSTER_IP = "10.96.0.10"
NODE_PORT = 30080


@dataclass
class Pod:
    name: str
    ns: NetNS
    ip: str


@dataclass
class World:
    """One node namespace with a bridge, pods on it, a Proxier for it; torn down by the fixture."""

    underlay: Underlay
    node: Machine
    gateway: str = "10.244.1.1"
    pods: dict[str, Pod] = field(default_factory=dict)
    servers: list[subprocess.Popen[str]] = field(default_factory=list)
    cmds: CommandLog = field(default_factory=CommandLog)

    def add_pod(self, name: str, index: int) -> Pod:
        ns = NetNS(f"{self.underlay.prefix}-{name}")
        ns.create()
        ip = f"10.244.1.{10 + index}"
        host = f"vp-{name}"
        self.node.ns.ip(
            "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns.name
        )
        self.node.ns.ip("link", "set", host, "master", "tk0", "up")
        # As tinykube-cni does (hairpinMode): with bridge netfilter, a hairpin connection's
        # DNATed packet is bridged back out of the port it came in on.
        self.node.ns.ip("link", "set", host, "type", "bridge_slave", "hairpin", "on")
        ns.ip("addr", "add", f"{ip}/24", "dev", "eth0")
        ns.ip("link", "set", "eth0", "up")
        ns.ip("route", "add", "default", "via", self.gateway)
        pod = Pod(name, ns, ip)
        self.pods[name] = pod
        return pod

    def serve(self, pod: Pod, tcp: tuple[int, ...] = (8080,), udp: tuple[int, ...] = ()) -> None:
        argv = [*pod.ns.prefix(), sys.executable, "-c", SERVER, pod.name]
        argv += [",".join(map(str, tcp)), ",".join(map(str, udp))]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True)
        self.servers.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"

    def request(
        self,
        ns: NetNS,
        ip: str,
        port: int,
        count: int = 1,
        proto: str = "tcp",
        timeout: float = 2,
        sport: int = 0,
    ) -> list[tuple[str, float]]:
        argv = [sys.executable, "-c", CLIENT, proto, ip, str(port), str(count), str(timeout)]
        argv.append(str(sport))
        proc = ns.exec(argv, timeout=count * timeout + 30)
        return [(reply, seconds) for reply, seconds in json.loads(proc.stdout)]

    def proxier(self) -> Proxier:
        factory = SharedInformerFactory(Client("unix:/nonexistent"))  # fed by apply(), not the API
        return Proxier(
            factory,
            node_name=self.node.name,
            node_ips=[self.node.ip],
            cluster_cidr="10.244.0.0/16",
            cmds=self.cmds,
            netns=self.node.ns.name,
        )

    def close(self) -> None:
        for proc in self.servers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        for pod in self.pods.values():
            pod.ns.delete()


@pytest.fixture
def world(underlay: Underlay) -> Iterator[World]:
    node = underlay.add_machine("node1", 1)
    node.ns.ip("link", "add", "tk0", "type", "bridge")
    node.ns.ip("addr", "add", "10.244.1.1/24", "dev", "tk0")
    node.ns.ip("link", "set", "tk0", "up")
    node.ns.sysctl("net.ipv4.ip_forward", "1")
    w = World(underlay, node)
    try:
        yield w
    finally:
        w.close()  # the node namespace (and its nft table) goes with the underlay fixture


def web(*eps: Pod, port: int = 8080, **kw: object) -> ServicePort:
    fields: dict[str, object] = {
        "namespace": "default",
        "name": "web",
        "port_name": "http",
        "protocol": "tcp",
        "cluster_ip": CLUSTER_IP,
        "port": 80,
        "node_port": NODE_PORT,
        "endpoints": tuple(Endpoint(p.ip, port) for p in eps),
    }
    fields.update(kw)
    return ServicePort(**fields)  # type: ignore[arg-type]


def names(replies: list[tuple[str, float]]) -> set[str]:
    return {reply.split()[0] for reply, _ in replies}


def test_cluster_ip_reaches_both_endpoints_over_tcp_and_udp(world: World) -> None:
    a, b, c = world.add_pod("a", 0), world.add_pod("b", 1), world.add_pod("c", 2)
    for pod in (a, b):
        world.serve(pod, tcp=(8080,), udp=(5353,))
    dns = web(a, b, port=5353, port_name="dns", protocol="udp", node_port=0)
    dns = ServicePort(**{**dns.__dict__, "port": 53})
    world.proxier().apply([web(a, b), dns])
    replies = world.request(c.ns, CLUSTER_IP, 80, count=50)
    assert names(replies) == {"a", "b"}, replies
    # Another pod on the same bridge: the reply crossed the bridge at layer 2 and was
    # still un-NATed (bridge netfilter), and the server saw the client's own address.
    assert {reply.split()[1] for reply, _ in replies} == {c.ip}
    udp = world.request(c.ns, CLUSTER_IP, 53, count=30, proto="udp")
    assert names(udp) == {"a", "b"}, udp
    assert (
        world.node.ns.exec(["cat", "/proc/sys/net/bridge/bridge-nf-call-iptables"]).stdout.strip()
        == "1"
    )


def test_node_itself_and_node_port_from_the_underlay(world: World) -> None:
    a = world.add_pod("a", 0)
    world.serve(a)
    world.proxier().apply([web(a)])
    route = world.node.ns.ip("route", "show", "10.96.0.0/12").stdout
    assert "dev tk0" in route
    ((reply, _),) = world.request(world.node.ns, CLUSTER_IP, 80)
    assert reply.startswith("a "), reply
    # The "external" host: NodePort on the node's underlay address, masqueraded so the
    # reply returns through the node (the pod sees the bridge address).
    ((reply, _),) = world.request(world.underlay.ns, world.node.ip, NODE_PORT)
    assert reply == f"a {world.gateway}"
    # A pod to its own node's NodePort works too, on any of the node's addresses
    # (`fib daddr type local`): here the bridge's.
    c = world.add_pod("c", 2)
    for address in (world.node.ip, world.gateway):
        ((reply, _),) = world.request(c.ns, address, NODE_PORT)
        assert reply.startswith("a "), (address, reply)


def test_three_endpoints_share_the_connections(world: World) -> None:
    pods = [world.add_pod(name, i) for i, name in enumerate(("a", "b", "d"))]
    for pod in pods:
        world.serve(pod)
    c = world.add_pod("c", 3)
    world.proxier().apply([web(*pods)])
    replies = world.request(c.ns, CLUSTER_IP, 80, count=150)
    counts = {name: sum(r.startswith(name + " ") for r, _ in replies) for name in "abd"}
    # 1/3 each: 50 expected; 20..80 fails with probability below 1e-6.
    assert all(20 <= n <= 80 for n in counts.values()), counts


def test_hairpin_a_pod_reaches_itself_through_its_service(world: World) -> None:
    a = world.add_pod("a", 0)
    world.serve(a)
    world.proxier().apply([web(a)])
    replies = world.request(a.ns, CLUSTER_IP, 80, count=5)
    assert replies and all(r == f"a {world.gateway}" for r, _ in replies), replies


def test_same_node_reply_needs_bridge_netfilter_or_masquerade(world: World) -> None:
    """Why the Proxier turns on net.bridge.bridge-nf-call-iptables (see rules.py)."""
    a, c = world.add_pod("a", 0), world.add_pod("c", 2)
    world.serve(a)
    nft = Nft(world.cmds, world.node.ns.name)
    world.node.ns.sysctl("net.bridge.bridge-nf-call-iptables", "0")
    plain = render([web(a)], RulesConfig(cluster_cidr="10.244.0.0/16"))
    nft.apply(plain.script)
    ((reply, _),) = world.request(c.ns, CLUSTER_IP, 80, timeout=1)
    assert not reply.startswith("a "), "the reply bypassed conntrack yet arrived?"
    masq = RulesConfig(cluster_cidr="10.244.0.0/16", masquerade_bridged=True)
    nft.apply(render([web(a)], masq, existing_chains=plain.chains).script)
    ((reply, _),) = world.request(c.ns, CLUSTER_IP, 80)
    assert reply == f"a {world.gateway}"  # works, but the server loses the client address
    world.node.ns.sysctl("net.bridge.bridge-nf-call-iptables", "1")
    nft.apply(plain.script)
    ((reply, _),) = world.request(c.ns, CLUSTER_IP, 80)
    assert reply == f"a {c.ip}"  # works and keeps it


def test_no_endpoints_refuses_at_once_and_endpoints_coming_back_serve_again(
    world: World,
) -> None:
    a, c = world.add_pod("a", 0), world.add_pod("c", 2)
    world.serve(a, udp=(5353,))
    dns = ServicePort(
        **{**web(a, port=5353).__dict__, "protocol": "udp", "port": 53, "node_port": 0}
    )
    proxier = world.proxier()
    proxier.apply([web(a), dns])
    assert world.request(c.ns, CLUSTER_IP, 80)[0][0].startswith("a ")
    proxier.apply([web(), ServicePort(**{**dns.__dict__, "endpoints": ()})])
    for ns, ip, port in (
        (c.ns, CLUSTER_IP, 80),
        (world.node.ns, CLUSTER_IP, 80),
        (world.underlay.ns, world.node.ip, NODE_PORT),
    ):
        ((reply, seconds),) = world.request(ns, ip, port, timeout=5)
        assert reply == "ConnectionRefusedError" and seconds < 1.0, (ns.name, reply, seconds)
    ((reply, seconds),) = world.request(c.ns, CLUSTER_IP, 53, proto="udp", timeout=5)
    assert reply == "ConnectionRefusedError" and seconds < 1.0  # ICMP port unreachable
    # A port the Service does not have is refused too, not routed into the void.
    ((reply, _),) = world.request(c.ns, CLUSTER_IP, 81, timeout=5)
    assert reply == "ConnectionRefusedError"
    proxier.apply([web(a), dns])
    assert world.request(c.ns, CLUSTER_IP, 80)[0][0].startswith("a ")
    assert world.request(c.ns, CLUSTER_IP, 53, proto="udp")[0][0].startswith("a ")


def test_client_ip_affinity_keeps_a_client_on_one_endpoint_across_syncs(world: World) -> None:
    a, b, c = world.add_pod("a", 0), world.add_pod("b", 1), world.add_pod("c", 2)
    for pod in (a, b):
        world.serve(pod)
    proxier = world.proxier()
    proxier.apply([web(a, b, affinity_timeout=60)])
    first = names(world.request(c.ns, CLUSTER_IP, 80, count=20))
    assert len(first) == 1
    other = web(a, b, name="other", cluster_ip="10.96.0.11", node_port=0)
    proxier.apply([other, web(a, b, affinity_timeout=60)])  # a sync that changes something else
    assert names(world.request(c.ns, CLUSTER_IP, 80, count=20)) == first
    assert names(world.request(c.ns, "10.96.0.11", 80, count=40)) == {"a", "b"}


def test_a_table_deleted_behind_its_back_is_rebuilt_in_one_sync(world: World) -> None:
    a, c = world.add_pod("a", 0), world.add_pod("c", 2)
    world.serve(a)
    proxier = world.proxier()
    other = web(a, name="other", cluster_ip="10.96.0.11", node_port=0)
    proxier.apply([web(a), other])
    world.node.ns.exec(["nft", "delete", "table", "ip", "tinykube"])
    # The Proxier still believes in other's chains and deletes them: nft refuses, the
    # Proxier rereads the (missing) table and the second attempt rebuilds it.
    proxier.apply([web(a)])
    assert proxier.transactions == 2
    assert world.request(c.ns, CLUSTER_IP, 80)[0][0].startswith("a ")


def test_cleanup_removes_table_and_route_and_is_idempotent(world: World) -> None:
    a = world.add_pod("a", 0)
    world.proxier().apply([web(a)])
    nft = Nft(world.cmds, world.node.ns.name)
    assert nft.has_table("tinykube")
    cmds = CommandLog()
    cleanup(cmds, netns=world.node.ns.name)
    cleanup(cmds, netns=world.node.ns.name)
    assert not nft.has_table("tinykube")
    assert world.node.ns.ip("route", "show", "10.96.0.0/12").stdout.strip() == ""
    assert [c.split("\n")[0] for c in cmds.commands] == [
        "nft -f - <<'EOF'",
        "ip route del 10.96.0.0/12",
    ]


def test_a_real_api_server_feeds_the_proxier_and_1000_services_are_one_transaction(
    world: World, tmp_path: Path
) -> None:
    a, b, c = world.add_pod("a", 0), world.add_pod("b", 1), world.add_pod("c", 2)
    for pod in (a, b):
        world.serve(pod)
    api = ApiServerProcess(tmp_path / "apiserver")
    api.start()
    try:
        asyncio.run(_api_session(world, api.address, a, b, c))
    finally:
        api.stop()


async def _api_session(world: World, address: str, a: Pod, b: Pod, c: Pod) -> None:
    client = Client(address, timeout=30)
    svc = service("web", "", [{"name": "http", "port": 80}])
    svc.spec.ClearField("selector")  # its Endpoints are ours to write, not the controller's
    created = await client.create(svc)
    await client.create(endpoints("web", [([a.ip, b.ip], [], [("http", 8080, "TCP")])]))
    ip = created.spec.cluster_ip
    factory = SharedInformerFactory(client)
    # Long enough for 1000 creates on a busy machine to land inside one interval.
    proxier = Proxier(
        factory,
        node_name="node1",
        node_ips=[world.node.ip],
        cluster_cidr="10.244.0.0/16",
        cmds=world.cmds,
        netns=world.node.ns.name,
        min_sync_interval=15.0,
    )
    factory.start()
    task = asyncio.ensure_future(proxier.run())
    try:
        await until(lambda: proxier.transactions == 1, 30, lambda: proxier.last_error)
        assert f"{ip} . tcp . 80 : goto service-" in proxier.last_script
        replies = await asyncio.to_thread(world.request, c.ns, ip, 80, 50)
        assert names(replies) == {"a", "b"}, replies
        before = proxier.transactions
        started = time.monotonic()
        sem = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            svc = service(f"s{i}", "", [{"port": 80}])
            svc.spec.ClearField("selector")
            async with sem:
                await client.create(svc)

        await asyncio.gather(*(one(i) for i in range(1000)))
        created_in = time.monotonic() - started
        await until(
            lambda: proxier.last_script.count("goto reject-chain,") == 1000,
            30,
            lambda: proxier.last_error,
        )
        assert created_in < 15.0, f"creating 1000 Services took {created_in:.1f} s"
        await asyncio.sleep(1.0)
        assert proxier.transactions == before + 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await factory.stop()
        await client.close()


def test_udp_flows_from_one_source_port_follow_the_endpoints(world: World) -> None:
    """A UDP client that never changes its source port (conntrack.py explains the cleanup)."""
    a, b, c = world.add_pod("a", 0), world.add_pod("b", 1), world.add_pod("c", 2)
    for pod in (a, b):
        world.serve(pod, tcp=(), udp=(5353,))
    dns = web(a, port=5353, protocol="udp", port_name="dns", node_port=0)
    proxier = world.proxier()
    proxier.apply([dns])

    def ask() -> str:
        return world.request(c.ns, CLUSTER_IP, 80, proto="udp", sport=40053)[0][0]

    assert ask().startswith("a ")
    proxier.apply([web(port=5353, protocol="udp", port_name="dns", node_port=0)])
    assert ask() == "ConnectionRefusedError"  # not the old endpoint, through a stale flow
    assert any(cmd.startswith("conntrack -D -p udp") for cmd in world.cmds.commands)
    proxier.apply([web(b, port=5353, protocol="udp", port_name="dns", node_port=0)])
    assert ask().startswith("b ")
    proxier.apply([web(a, port=5353, protocol="udp", port_name="dns", node_port=0)])
    assert ask().startswith("a ")  # moved from b to a, same client port
