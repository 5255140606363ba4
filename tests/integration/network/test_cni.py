"""tinykube-cni for real: the installed executable, run inside a node namespace.

Each test builds a node namespace on the underlay (conftest.py) and pod
namespaces <prefix>-podN, runs the plugin with the CNI environment under
`nsenter --net=<node>` -- as containerd does on a node -- and checks the kernel
state it leaves: links, addresses, routes, bridge ports, and the IPAM files.
Traffic goes only between the test's own namespaces.

Every test runs twice (the `plugin` fixture): with the full plugin
(`.venv/bin/tinykube-cni`, main.py in its own process), and with the thin
client install_bin_dir() installs (thin.py) talking to an agent's CNI server
(server.py, run in the node namespace as the agent runs there) -- every call's
log lines must then carry the server's pid, so a silent fallback to the full
plugin would fail the test.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from localcluster.netns import Machine, NetNS, Underlay
from netplugin.cni.install import install_bin_dir, system_plugin
from netplugin.cni.plugin import host_veth_name
from netplugin.cni.server import socket_path
from netplugin.constants import CNI_PLUGIN_TYPE

BIN = Path(sys.executable).parent / "tinykube-cni"
SUBNET = "10.244.1.0/24"

SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
print("ready", flush=True)
c, peer = s.accept()
data = c.recv(100)
c.sendall(data + b" seen from " + peer[0].encode())
c.close()
"""
CLIENT = """
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
c.sendall(b"hello")
print(c.recv(200).decode())
"""


@dataclass
class Plugin:
    """How the runtime reaches the plugin: the full executable, or the thin client and agent."""

    name: str
    bin: Path
    conf: dict[str, Any]  # added to every configuration: the agent's socket, for the thin client
    agent_pid: int = 0  # the CNI server's; 0 = the full plugin

    def check_served(self, command: str, stderr: str) -> None:
        """A thin call's log lines are the agent's: not run by a fallback full plugin."""
        if self.agent_pid and command != "VERSION":
            assert f"tinykube-cni[{self.agent_pid}]" in stderr, stderr


@dataclass
class CNI:
    """Runs the plugin in `node`'s namespace with one network configuration."""

    node: Machine
    conf: dict[str, Any]
    plugin: Plugin

    def with_conf(self, **changes: Any) -> CNI:
        return CNI(self.node, {**self.conf, **changes}, self.plugin)

    def run(
        self, command: str, container: str = "", netns: str = "", ifname: str = "eth0"
    ) -> tuple[int, dict[str, Any], str]:
        environ = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container,
            "CNI_NETNS": netns,
            "CNI_IFNAME": ifname,
            "CNI_PATH": str(self.plugin.bin.parent),
            "CNI_ARGS": f"K8S_POD_NAMESPACE=default;K8S_POD_NAME={container}",
        }
        proc = subprocess.run(
            [*self.node.ns.prefix(), str(self.plugin.bin)],
            env={k: v for k, v in environ.items() if v},
            input=json.dumps(self.conf).encode(),
            capture_output=True,
            timeout=60,
        )
        out = proc.stdout.decode()
        self.plugin.check_served(command, proc.stderr.decode())
        return proc.returncode, json.loads(out) if out.strip() else {}, proc.stderr.decode()

    def add(self, container: str, pod: NetNS) -> dict[str, Any]:
        code, result, err = self.run("ADD", container, str(pod.path))
        assert code == 0, f"ADD failed: {result} {err}"
        return result

    @property
    def ipam_dir(self) -> Path:
        return Path(str(self.conf["dataDir"])) / str(self.conf["name"])

    def reserved(self) -> set[str]:
        if not self.ipam_dir.exists():
            return set()
        return {p.name for p in self.ipam_dir.iterdir() if p.name[0].isdigit()}

    def node_links(self) -> set[str]:
        out = self.node.ns.ip("-o", "link", "show").stdout
        return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def netconf(data_dir: Path, subnet: str = SUBNET, **extra: Any) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "tinykube",
        "type": "tinykube-cni",
        "bridge": "tk0",
        "subnet": subnet,
        "mtu": 1450,
        "hairpinMode": True,
        "dataDir": str(data_dir),
        **extra,
    }


@pytest.fixture
def node(underlay: Underlay) -> Machine:
    return underlay.add_machine("node1", 1)


@pytest.fixture
def pods(ns_prefix: str) -> Iterator[list[NetNS]]:
    """Three empty pod namespaces (the fixture's prefix: removed after the test)."""
    made = [NetNS(f"{ns_prefix}-pod{i}") for i in range(1, 4)]
    for ns in made:
        ns.create()
    yield made
    for ns in made:
        ns.delete()


@pytest.fixture(params=["full", "thin"])
def plugin(request: pytest.FixtureRequest, node: Machine, tmp_path: Path) -> Iterator[Plugin]:
    """The full plugin, or the thin client with an agent's CNI server in the node namespace."""
    if request.param == "full":
        yield Plugin("full", BIN, {})
        return
    if system_plugin("loopback") is None:
        pytest.skip("install_bin_dir needs the CNI loopback plugin (containernetworking-plugins)")
    bin_dir = tmp_path / "bin"
    install_bin_dir(str(bin_dir))
    path = socket_path(str(tmp_path / "cni"))
    log = tmp_path / "agent.log"
    argv = [sys.executable, "-m", "netplugin.cni.server", "--socket", path]
    with log.open("wb") as err:
        server = subprocess.Popen([*node.ns.prefix(), *argv], stdout=subprocess.PIPE, stderr=err)
    try:
        assert server.stdout is not None
        ready = server.stdout.readline().split()
        assert ready[:1] == [b"ready"], log.read_text()
        yield Plugin("thin", bin_dir / CNI_PLUGIN_TYPE, {"agentSocket": path}, int(ready[1]))
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert not Path(path).exists()  # the server removes its socket


@pytest.fixture
def cni(node: Machine, tmp_path: Path, plugin: Plugin) -> CNI:
    return CNI(node, netconf(tmp_path / "cni", **plugin.conf), plugin)


def talk(server_ns: NetNS, client_ns: NetNS, address: str, port: int = 8080) -> str:
    server = subprocess.Popen(
        [*server_ns.prefix(), sys.executable, "-c", SERVER, address, str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready", server.stderr
        reply = client_ns.exec([sys.executable, "-c", CLIENT, address, str(port)], timeout=30)
        return reply.stdout.strip()
    finally:
        server.kill()
        server.wait()


def test_two_pods_are_wired_talk_and_are_unwired(cni: CNI, pods: list[NetNS]) -> None:
    pod1, pod2 = pods[0], pods[1]
    started = time.monotonic()
    r1 = cni.add("c1", pod1)
    add_seconds = time.monotonic() - started
    r2 = cni.add("c2", pod2)
    a1, a2 = r1["ips"][0]["address"], r2["ips"][0]["address"]
    assert a1 != a2
    assert {ipaddress.ip_interface(a).network for a in (a1, a2)} == {ipaddress.ip_network(SUBNET)}
    assert r1["cniVersion"] == "1.0.0"
    assert r1["ips"][0]["gateway"] == "10.244.1.1"
    assert r1["interfaces"][r1["ips"][0]["interface"]] == {
        "name": "eth0",
        "mac": r1["interfaces"][2]["mac"],
        "sandbox": str(pod1.path),
    }
    assert r1["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.244.1.1"}]

    # eth0 with the address, the MTU, up; a default route via the gateway
    link = pod1.ip("-o", "addr", "show", "dev", "eth0").stdout
    assert a1 in link
    assert "mtu 1450" in pod1.ip("link", "show", "eth0").stdout
    assert "default via 10.244.1.1 dev eth0" in pod1.ip("route").stdout
    # the node side: on tk0 (which holds the gateway) with hairpin on
    veth = host_veth_name("c1", "eth0")
    assert "10.244.1.1/24" in cni.node.ns.ip("-o", "addr", "show", "dev", "tk0").stdout
    assert "master tk0" in cni.node.ns.ip("link", "show", veth).stdout
    bridge_link = cni.node.ns.exec(["bridge", "-d", "link", "show", "dev", veth]).stdout
    assert "hairpin on" in bridge_link

    ip1, ip2 = a1.split("/")[0], a2.split("/")[0]
    assert talk(pod2, pod1, ip2) == f"hello seen from {ip1}"  # pod1 -> pod2
    assert talk(pod1, pod2, ip1) == f"hello seen from {ip2}"  # pod2 -> pod1
    node_ns = cni.node.ns
    assert talk(node_ns, pod1, "10.244.1.1") == f"hello seen from {ip1}"  # pod -> node

    for container, pod in (("c1", pod1), ("c2", pod2)):
        code, out, err = cni.run("CHECK", container, str(pod.path))
        assert (code, out) == (0, {}), err
    assert cni.reserved() == {ip1, ip2}

    for _ in range(2):  # DEL is repeatable
        for container, pod in (("c1", pod1), ("c2", pod2)):
            code, out, err = cni.run("DEL", container, str(pod.path))
            assert (code, out) == (0, {}), err
    assert not any(name.startswith("veth") for name in cni.node_links())
    assert "eth0" not in pod1.ip("link").stdout
    assert cni.reserved() == set()
    print(f"ADD took {add_seconds:.3f}s")


def test_add_for_a_missing_netns_is_a_json_error_and_reserves_nothing(cni: CNI) -> None:
    missing = "/run/netns/tinykube-no-such-pod"
    code, out, _ = cni.run("ADD", "c1", missing)
    assert code != 0
    assert out["code"] == 3 and missing in out["msg"]
    assert set(out) >= {"cniVersion", "code", "msg"}
    assert cni.reserved() == set()
    assert not any(name.startswith("veth") for name in cni.node_links())
    # DEL for it is fine (the runtime cleans up after a failed ADD)
    assert cni.run("DEL", "c1", missing)[:2] == (0, {})


def test_add_for_a_path_that_is_no_netns(cni: CNI, tmp_path: Path) -> None:
    not_a_netns = tmp_path / "plain-file"
    not_a_netns.write_text("")
    code, out, _ = cni.run("ADD", "c1", str(not_a_netns))
    assert code != 0
    assert out["code"] == 4 and "is not a network namespace" in out["msg"]
    assert cni.reserved() == set()
    assert cni.run("DEL", "c1", str(not_a_netns))[:2] == (0, {})


def test_exhausted_subnet_is_a_clear_error(cni: CNI, pods: list[NetNS]) -> None:
    cni = cni.with_conf(subnet="10.244.9.0/30")  # one pod address: .2
    assert cni.add("c1", pods[0])["ips"][0]["address"] == "10.244.9.2/30"
    code, out, _ = cni.run("ADD", "c2", str(pods[1].path))
    assert code != 0
    assert out["code"] == 100 and "10.244.9.0/30" in out["msg"]
    assert cni.reserved() == {"10.244.9.2"}
    assert host_veth_name("c2", "eth0") not in cni.node_links()
    assert "eth0" not in pods[1].ip("link").stdout
    assert cni.run("DEL", "c1", str(pods[0].path))[:2] == (0, {})
    assert cni.add("c2", pods[1])["ips"][0]["address"] == "10.244.9.2/30"  # freed again


def test_a_failed_add_halfway_undoes_everything(cni: CNI, pods: list[NetNS]) -> None:
    pod = pods[0]
    # A default route already in the pod: ADD gets as far as the route, then fails.
    # (a veth pair inside the pod stands in for any other link: no dummy module here)
    pod.ip("link", "add", "x0", "type", "veth", "peer", "name", "x1")
    pod.ip("addr", "add", "192.0.2.2/24", "dev", "x0")
    pod.ip("link", "set", "x1", "up")
    pod.ip("link", "set", "x0", "up")
    pod.ip("route", "add", "default", "via", "192.0.2.1")
    code, out, err = cni.run("ADD", "c1", str(pod.path))
    assert code != 0
    assert out["code"] == 102 and "default route" in out["msg"], out
    assert "ip link del " + host_veth_name("c1", "eth0") in err  # the undo, logged
    assert host_veth_name("c1", "eth0") not in cni.node_links()
    assert "eth0" not in pod.ip("link").stdout
    assert cni.reserved() == set()


def test_an_eth0_already_in_the_pod_fails_cleanly(cni: CNI, pods: list[NetNS]) -> None:
    pod = pods[0]
    pod.ip("link", "add", "eth0", "type", "veth", "peer", "name", "other0")
    code, out, _ = cni.run("ADD", "c1", str(pod.path))
    assert code != 0 and "eth0 already exists" in out["msg"]
    assert host_veth_name("c1", "eth0") not in cni.node_links()
    assert cni.reserved() == set()


def test_del_after_the_netns_is_gone_releases_the_address(cni: CNI, pods: list[NetNS]) -> None:
    cni.add("c1", pods[0])
    path = str(pods[0].path)
    pods[0].delete()
    assert cni.run("DEL", "c1", path)[:2] == (0, {})
    assert cni.run("DEL", "c1", "")[:2] == (0, {})  # and with no CNI_NETNS at all
    assert cni.reserved() == set()
    assert not any(name.startswith("veth") for name in cni.node_links())


def test_check_notices_a_missing_address(cni: CNI, pods: list[NetNS]) -> None:
    result = cni.add("c1", pods[0])
    pods[0].ip("addr", "del", result["ips"][0]["address"], "dev", "eth0")
    code, out, _ = cni.run("CHECK", "c1", str(pods[0].path))
    assert code != 0 and out["code"] == 101 and result["ips"][0]["address"] in out["msg"]


def test_parallel_adds_share_the_bridge(cni: CNI, pods: list[NetNS]) -> None:
    """Three ADDs at once on a node without a bridge yet: one creates it, all succeed."""
    procs = []
    for i, pod in enumerate(pods, 1):
        environ = {
            "PATH": os.environ.get("PATH", ""),
            "CNI_COMMAND": "ADD",
            "CNI_CONTAINERID": f"p{i}",
            "CNI_NETNS": str(pod.path),
            "CNI_IFNAME": "eth0",
        }
        procs.append(
            subprocess.Popen(
                [*cni.node.ns.prefix(), str(cni.plugin.bin)],
                env=environ,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        )
    results = []
    for proc in procs:
        out, err = proc.communicate(json.dumps(cni.conf).encode(), timeout=60)
        assert proc.returncode == 0, err.decode()
        cni.plugin.check_served("ADD", err.decode())
        results.append(json.loads(out)["ips"][0]["address"])
    assert len(set(results)) == 3
    assert len(cni.reserved()) == 3


def test_version_and_an_old_config_version(cni: CNI, pods: list[NetNS]) -> None:
    code, out, _ = cni.run("VERSION")
    assert code == 0 and "1.0.0" in out["supportedVersions"] and "0.4.0" in out["supportedVersions"]
    old = cni.with_conf(cniVersion="0.4.0")
    result = old.add("c1", pods[0])
    assert result["cniVersion"] == "0.4.0" and result["ips"][0]["version"] == "4"
    assert old.run("CHECK", "c1", str(pods[0].path))[:2] == (0, {})
    assert old.run("DEL", "c1", str(pods[0].path))[:2] == (0, {})


HAIRPIN_RULES = """
table ip tkcnihairpin {
  chain pre {
    type nat hook prerouting priority dstnat;
    ip daddr 10.96.0.10 tcp dport 80 dnat to POD:8080
  }
  chain post {
    type nat hook postrouting priority srcnat;
    ct status dnat ip saddr 10.244.1.0/24 ip daddr 10.244.1.0/24 masquerade
  }
}
"""
SELF_CLIENT = """
import socket, sys
s = socket.socket()
s.bind((sys.argv[1], 8080))
s.listen(1)
c = socket.create_connection(("10.96.0.10", 80), timeout=3)
conn, peer = s.accept()
print(peer[0])
"""


def reach_self_through_dnat(cni: CNI, pod: NetNS, hairpin: bool, container: str) -> bool:
    """ADD with hairpinMode, DNAT a "Service" address to the pod; can it reach itself?"""
    plugin = cni.with_conf(hairpinMode=hairpin)
    address = plugin.add(container, pod)["ips"][0]["address"].split("/")[0]
    rules = HAIRPIN_RULES.replace("POD", address)
    nft = [*cni.node.ns.prefix(), "nft"]
    subprocess.run([*nft, "-f", "-"], input=rules, text=True, check=True, capture_output=True)
    try:
        proc = pod.exec([sys.executable, "-c", SELF_CLIENT, address], check=False, timeout=30)
        if proc.returncode == 0:
            assert proc.stdout.strip() == "10.244.1.1"  # masqueraded to the gateway
        return proc.returncode == 0
    finally:
        subprocess.run([*nft, "delete", "table", "ip", "tkcnihairpin"], check=False)
        assert plugin.run("DEL", container, str(pod.path))[0] == 0


def test_a_pod_reaches_itself_through_a_dnat_thanks_to_hairpin(cni: CNI, pods: list[NetNS]) -> None:
    """The Service hairpin: DNAT back to the sender crosses the bridge port twice."""
    cni.node.ns.sysctl("net.ipv4.ip_forward", "1")  # the node namespace's own sysctl
    bridge_nf = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
    if bridge_nf.exists():  # br_netfilter loaded: DNAT happens on the bridge path
        cni.node.ns.sysctl("net.bridge.bridge-nf-call-iptables", "1")
    assert reach_self_through_dnat(cni, pods[0], hairpin=True, container="h1")
    if not bridge_nf.exists():
        return  # without br_netfilter the DNAT is routed, and hairpin makes no difference
    assert not reach_self_through_dnat(cni, pods[1], hairpin=False, container="h2")


def test_a_proc_pid_netns_path_as_the_docker_kubelet_passes_it(cni: CNI, pods: list[NetNS]) -> None:
    """For Docker the kubelet passes /proc/<pause pid>/ns/net, not a /run/netns name."""
    holder = subprocess.Popen([*pods[0].prefix(), "sleep", "60"])
    try:
        path = f"/proc/{holder.pid}/ns/net"
        deadline = time.monotonic() + 10
        while os.readlink(path) == os.readlink("/proc/self/ns/net"):  # nsenter not done yet
            assert time.monotonic() < deadline
            time.sleep(0.01)
        code, result, err = cni.run("ADD", "d1", path)
        assert code == 0, err
        assert result["interfaces"][2]["sandbox"] == path
        assert result["ips"][0]["address"].split("/")[0] in pods[0].ip("-o", "addr").stdout
        assert cni.run("CHECK", "d1", path)[:2] == (0, {})
        assert cni.run("DEL", "d1", path)[:2] == (0, {})
    finally:
        holder.kill()
        holder.wait()
    assert cni.run("DEL", "d1", path)[:2] == (0, {})  # the process (and its path) gone
    assert cni.reserved() == set()


def test_an_add_repeated_for_the_same_container_rewires_with_the_same_address(
    cni: CNI, pods: list[NetNS]
) -> None:
    """A runtime retrying ADD (say, after its own crash) finds our leftover and starts afresh."""
    first = cni.add("c1", pods[0])
    code, again, err = cni.run("ADD", "c1", str(pods[0].path))
    assert code == 0, err
    assert again["ips"] == first["ips"]
    assert "ip link del " + host_veth_name("c1", "eth0") in err
    assert [n for n in cni.node_links() if n.startswith("veth")] == [host_veth_name("c1", "eth0")]
    assert cni.run("CHECK", "c1", str(pods[0].path))[:2] == (0, {})
    assert len(cni.reserved()) == 1
