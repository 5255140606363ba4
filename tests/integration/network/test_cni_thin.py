"""The thin tinykube-cni and the agent's CNI server under load and when the agent goes away.

test_cni.py runs every conformance case through both plugins; these are the
cases only the thin path has: a pod burst's parallel ADDs served at once by one
agent process (each journaled for the kubelet's trace), an agent killed while an
ADD is in its hands (the runtime must get a CNI error, not a hang or garbage),
and an agent gone for good (its stale socket left behind: the full plugin does
the work). Everything happens in the test's own namespaces.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcluster.netns import Machine, NetNS, Underlay
from netplugin.cni import journal
from netplugin.cni.install import install_bin_dir, system_plugin
from netplugin.cni.server import socket_path
from netplugin.constants import CNI_PLUGIN_TYPE
from tests.integration.network.test_cni import netconf

BURST = 20


@pytest.fixture
def node(underlay: Underlay) -> Machine:
    return underlay.add_machine("node1", 1)


@pytest.fixture
def thin_bin(tmp_path: Path) -> Path:
    if system_plugin("loopback") is None:
        pytest.skip("install_bin_dir needs the CNI loopback plugin (containernetworking-plugins)")
    install_bin_dir(str(tmp_path / "bin"))
    return tmp_path / "bin" / CNI_PLUGIN_TYPE


class Agent:
    """The CNI server in the node namespace, as the agent runs it (start / kill / stop)."""

    def __init__(self, node: Machine, path: str, log: Path) -> None:
        self.node, self.path, self.log = node, path, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid = 0

    def start(self) -> None:
        argv = [sys.executable, "-m", "netplugin.cni.server", "--socket", self.path]
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(
                [*self.node.ns.prefix(), *argv], stdout=subprocess.PIPE, stderr=err
            )
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline().split()
        assert ready[:1] == [b"ready"], self.log.read_text()
        self.pid = int(ready[1])

    def stop(self, kill: bool = False) -> None:
        if self.proc is not None:
            (self.proc.kill if kill else self.proc.terminate)()
            self.proc.wait(timeout=30)
            self.proc = None


@pytest.fixture
def agent(node: Machine, tmp_path: Path) -> Iterator[Agent]:
    server = Agent(node, socket_path(str(tmp_path / "cni")), tmp_path / "agent.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        Path(server.path).unlink(missing_ok=True)  # a killed server's leftover


def call(
    node: Machine, binary: Path, conf: dict[str, object], command: str, container: str, netns: str
) -> subprocess.Popen[bytes]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container,
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(binary.parent),
    }
    proc = subprocess.Popen(
        [*node.ns.prefix(), str(binary)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(conf).encode())
    proc.stdin.close()
    return proc


def finish(proc: subprocess.Popen[bytes]) -> tuple[int, dict[str, object], str]:
    assert proc.stdout is not None and proc.stderr is not None
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.wait(timeout=120)
    return proc.returncode, json.loads(out) if out.strip() else {}, err.decode()


def test_a_burst_of_parallel_adds_is_served_by_one_agent(
    node: Machine, thin_bin: Path, agent: Agent, ns_prefix: str, tmp_path: Path
) -> None:
    conf = netconf(tmp_path / "cni", agentSocket=agent.path)
    pods = [NetNS(f"{ns_prefix}-b{i}") for i in range(BURST)]
    for pod in pods:
        pod.create()
    started = time.monotonic()
    procs = [call(node, thin_bin, conf, "ADD", f"b{i}", str(p.path)) for i, p in enumerate(pods)]
    results = [finish(proc) for proc in procs]
    took = time.monotonic() - started
    addresses = set()
    for i, (code, result, err) in enumerate(results):
        assert code == 0, (result, err)
        assert f"tinykube-cni[{agent.pid}]" in err  # served by the agent, not a fallback
        ips = result["ips"]
        assert isinstance(ips, list)
        addresses.add(ips[0]["address"])
        entry = json.loads(journal.path(str(tmp_path / "cni"), f"b{i}").read_text())
        assert entry["ip"] == ips[0]["address"] and entry["error"] == ""
        assert any(c.startswith("ip link add veth") for c in entry["commands"])
    assert len(addresses) == BURST
    procs = [call(node, thin_bin, conf, "DEL", f"b{i}", str(p.path)) for i, p in enumerate(pods)]
    assert all(finish(proc)[:2] == (0, {}) for proc in procs)
    assert not list((tmp_path / "cni" / "journal").glob("*.json"))
    assert not [p for p in (tmp_path / "cni" / "tinykube").iterdir() if p.name[0].isdigit()]
    print(f"{BURST} parallel ADDs through one agent: {took:.2f} s")


def test_an_agent_killed_mid_add_is_a_cni_error_and_then_the_full_plugin_works(
    node: Machine, thin_bin: Path, agent: Agent, ns_prefix: str, tmp_path: Path
) -> None:
    conf = netconf(tmp_path / "cni", agentSocket=agent.path, cniVersion="0.4.0")
    pod = NetNS(f"{ns_prefix}-k1")
    pod.create()
    ipam = tmp_path / "cni" / "tinykube"
    ipam.mkdir(parents=True)
    lock = os.open(ipam / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the agent's ADD will wait for the IPAM lock
        proc = call(node, thin_bin, conf, "ADD", "k1", str(pod.path))
        deadline = time.monotonic() + 30
        while "netplugin.cni ADD" not in agent.log.read_text():
            assert time.monotonic() < deadline, agent.log.read_text()
            time.sleep(0.05)
        time.sleep(0.2)  # in the agent's hands, waiting for the lock
        agent.stop(kill=True)
        code, out, _ = finish(proc)
    finally:
        os.close(lock)
    assert code == 1
    assert out["code"] == 11 and out["cniVersion"] == "0.4.0"
    assert "closed the connection before answering" in str(out["msg"])
    assert agent.path in str(out["details"])
    assert Path(agent.path).is_socket()  # left behind by the killed agent
    # The runtime retries: nobody listens now, so the full plugin (tinykube-cni-full) runs.
    retry = call(node, thin_bin, conf, "ADD", "k1", str(pod.path))
    code, result, err = finish(retry)
    assert code == 0, (result, err)
    assert f"tinykube-cni[{retry.pid}]" in err  # the client's own process, exec'd
    # A new agent replaces the stale socket and serves again.
    agent.start()
    code, out, err = finish(call(node, thin_bin, conf, "DEL", "k1", str(pod.path)))
    assert (code, out) == (0, {}) and f"tinykube-cni[{agent.pid}]" in err
