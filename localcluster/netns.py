"""Network namespaces as machines: an underlay bridge and node namespaces on it.

`tinykube up`, the network tests and the benchmarks all need "a few machines on
one private network" without VMs. A network namespace is the kernel's answer:
its own links, addresses, routes, nftables rules and sysctls under
/proc/sys/net. The layout, with prefix "tk" and subnet 10.201.0.0/24:

    namespace tk-ul     the underlay: bridge "ul0" with 10.201.0.1/24 -- it plays the
                        part of the host on a Vagrant private network (NodePort
                        clients, `curl` from "outside the cluster")
    namespace tk-node1  eth1 10.201.0.11/24, a veth whose other end is on ul0
    namespace tk-node2  eth1 10.201.0.12/24
    ...

The node's underlay interface is called eth1 on purpose: on the Vagrant VMs the
private network is eth1 too, so `tinykube netplugin --iface eth1` means the same
thing in both places. Nothing here is on the host: no namespace has a default
route, nothing is forwarded or NATed by the host, and deleting the namespaces
removes every link and address with them (DESIGN section 5).

Equivalent commands, for a reader replaying it by hand:

    ip netns add tk-ul
    ip -n tk-ul link add ul0 type bridge && ip -n tk-ul addr add 10.201.0.1/24 dev ul0
    ip netns add tk-node1
    ip -n tk-ul link add v-node1 type veth peer name eth1 netns tk-node1
    ip -n tk-ul link set v-node1 master ul0 up
    ip -n tk-node1 addr add 10.201.0.11/24 dev eth1 && ip -n tk-node1 link set eth1 up

Processes run "on" a node with `nsenter --net=/run/netns/NAME`: only the
network namespace changes, so mounts, /proc and files stay shared with the
host, and cleaning up (unmounting, killing) works from outside.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

NETNS_DIR = Path("/run/netns")


class NetnsError(RuntimeError):
    """A namespace command failed; the message carries the command and its stderr."""


def run(argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    log.debug("%s", " ".join(argv))
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


@dataclass
class NetNS:
    """One named network namespace (/run/netns/NAME)."""

    name: str

    @property
    def path(self) -> Path:
        return NETNS_DIR / self.name

    def exists(self) -> bool:
        return self.path.exists()

    def create(self) -> None:
        if not self.exists():
            run(["ip", "netns", "add", self.name])
        self.ip("link", "set", "lo", "up")

    def delete(self) -> None:
        if self.exists():
            run(["ip", "netns", "del", self.name], check=False)

    def prefix(self) -> list[str]:
        """The argv prefix that runs a command inside this namespace."""
        return ["nsenter", f"--net={self.path}", "--"]

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(["ip", "-n", self.name, *args], check=check)

    def exec(
        self, argv: Sequence[str], check: bool = True, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run argv inside the namespace and wait for it."""
        proc = subprocess.run(
            [*self.prefix(), *argv], capture_output=True, text=True, check=False, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise NetnsError(f"[{self.name}] {' '.join(argv)}: {proc.stderr.strip()}")
        return proc

    def sysctl(self, key: str, value: str) -> None:
        """Set a per-namespace sysctl (net.*): /proc/sys/net is the caller's namespace's."""
        self.exec(["sysctl", "-q", "-w", f"{key}={value}"])


@dataclass
class Machine:
    """A node namespace on the underlay: its name, namespace and address."""

    name: str
    ns: NetNS
    ip: str
    iface: str = "eth1"


@dataclass
class Underlay:
    """A bridge in its own namespace, and machines (namespaces) plugged into it."""

    prefix: str
    subnet: str = "10.201.0.0/24"
    mtu: int = 1500
    bridge: str = "ul0"
    machines: dict[str, Machine] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.network = ipaddress.ip_network(self.subnet)
        self.ns = NetNS(f"{self.prefix}-ul")

    @property
    def address(self) -> str:
        """The underlay namespace's own address (.1): the "outside" of the cluster."""
        return str(self.network.network_address + 1)

    def host_address(self, index: int) -> str:
        """Machine number `index` (1-based) gets .10 + index: node1 10.201.0.11."""
        return str(self.network.network_address + 10 + index)

    def create(self) -> None:
        self.ns.create()
        if self.ns.ip("link", "show", self.bridge, check=False).returncode != 0:
            self.ns.ip("link", "add", self.bridge, "mtu", str(self.mtu), "type", "bridge")
            cidr = f"{self.address}/{self.network.prefixlen}"
            self.ns.ip("addr", "add", cidr, "dev", self.bridge)
        self.ns.ip("link", "set", self.bridge, "up")

    def add_machine(self, name: str, index: int) -> Machine:
        """A namespace <prefix>-<name> with eth1 = host_address(index) on the bridge."""
        ns = NetNS(f"{self.prefix}-{name}")
        ns.create()
        machine = Machine(name, ns, self.host_address(index))
        port = f"v-{name}"[:15]
        if self.ns.ip("link", "show", port, check=False).returncode != 0:
            self.ns.ip(
                "link", "add", port, "mtu", str(self.mtu), "type", "veth",
                "peer", "name", machine.iface, "netns", ns.name,
            )  # fmt: skip
        self.ns.ip("link", "set", port, "master", self.bridge, "up")
        cidr = f"{machine.ip}/{self.network.prefixlen}"
        if cidr not in ns.ip("-o", "addr", "show", "dev", machine.iface).stdout:
            ns.ip("addr", "add", cidr, "dev", machine.iface)
        ns.ip("link", "set", machine.iface, "up")
        self.machines[name] = machine
        return machine

    def remove_machine(self, name: str) -> None:
        machine = self.machines.pop(name, None)
        NetNS(f"{self.prefix}-{name}").delete() if machine is None else machine.ns.delete()
        self.ns.ip("link", "del", f"v-{name}"[:15], check=False)

    def destroy(self) -> None:
        """Delete every namespace this underlay made (their links go with them)."""
        for name in list(self.machines):
            self.remove_machine(name)
        self.ns.delete()


def namespaces_with_prefix(prefix: str) -> list[str]:
    """Names of existing namespaces that start with `prefix-` (for cleanup and checks)."""
    if not NETNS_DIR.exists():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(f"{prefix}-"))


def delete_namespaces(prefix: str) -> None:
    """Remove every namespace named <prefix>-*; idempotent."""
    for name in namespaces_with_prefix(prefix):
        with contextlib.suppress(NetnsError):
            run(["ip", "netns", "del", name], check=False)
