"""ADD, DEL and CHECK: wiring one pod sandbox into the node's bridge.

ADD, for container 4f1c... with CNI_IFNAME eth0 and CNI_NETNS /run/netns/cni-1234
on a node whose conflist says subnet 10.244.1.0/24, bridge tk0, MTU 1450 --
the equivalent commands, in the order the plugin makes the changes:

    ip link add tk0 address 0a:58:0a:f4:01:01 mtu 1450 type bridge   # ensure_bridge, once
    ip addr add 10.244.1.1/24 dev tk0
    ip link set tk0 up
    # IPAM: reserve 10.244.1.2 (the file /var/lib/tinykube/cni/tinykube/10.244.1.2)
    ip link add veth3f9c0d2e7a1 mtu 1450 type veth peer name eth0 mtu 1450 netns /run/netns/cni-1234
    ip link set veth3f9c0d2e7a1 master tk0
    bridge link set dev veth3f9c0d2e7a1 hairpin on
    ip link set veth3f9c0d2e7a1 up
    nsenter --net=/run/netns/cni-1234 ip addr add 10.244.1.2/24 dev eth0
    nsenter --net=/run/netns/cni-1234 ip link set eth0 up
    nsenter --net=/run/netns/cni-1234 ip route add default via 10.244.1.1 dev eth0

The pod's end is created directly inside the pod's namespace (IFLA_NET_NS_FD on
the veth peer), so it never exists under a temporary name in the node's
namespace. The node's end is named from the container id and ifname
("veth" + 11 hex digits of a SHA-1): DEL finds it again without any state, and
an ADD retried after a crash replaces its own leftover.

Failure handling: every step that succeeded pushes its undo (release the
address, delete the veth -- which takes the pod's end with it) on an ExitStack;
if a later step fails the stack unwinds, so a failed ADD leaves neither a
reserved address nor a link behind, and the error reaches the runtime as CNI
JSON. The bridge is shared by all pods and is not undone.

DEL is repeatable and succeeds whatever is already gone: the netns (the
sandbox was torn down first), the interface, the reservation (DEL after a
failed ADD, or a second DEL). It deletes the pod's interface, then the
node-side veth if it survived, then releases the address -- in that order, so
an address is never handed out while still configured.

CHECK verifies that ADD's work is still in place: the interface is in the
netns, up, with the reserved address, a default route via the gateway, and its
node end is on the bridge.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import ipaddress
import logging
import os
import socket
from collections.abc import Iterator
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from netplugin.cni import threadns
from netplugin.cni.bridge import IFF_UP, attach_port, ensure_bridge_with, link_index
from netplugin.cni.config import NetConf
from netplugin.cni.errors import CheckFailed, ContainerUnknown, InvalidEnvironment, KernelError
from netplugin.cni.ipam import DiskIPAM
from netplugin.cni.result import Interface, add_result, prev_result_addresses
from netplugin.commands import CommandLog

log = logging.getLogger("netplugin.cni")


def host_veth_name(container_id: str, ifname: str) -> str:
    """The node-side veth of (container, ifname): "veth" + 11 hex digits (15 chars)."""
    digest = hashlib.sha1(f"{container_id}/{ifname}".encode()).hexdigest()
    return "veth" + digest[:11]


def add(
    conf: NetConf, container_id: str, netns: str, ifname: str, cmds: CommandLog
) -> dict[str, Any]:
    """Wire the sandbox; the CNI result."""
    _require_netns(netns)
    ipam = DiskIPAM(conf.data_dir, conf.name, conf.subnet, conf.gateway)
    host = host_veth_name(container_id, ifname)
    ns = ["nsenter", f"--net={netns}"]
    with IPRoute() as node, _netns_socket(netns) as pod, contextlib.ExitStack() as undo:
        # Our own leftover (an ADD retried after a crash): deleting the node end of
        # the pair takes the pod's end with it, and the ADD starts afresh.
        _delete_link(node, host, cmds, [])
        if link_index(pod, ifname) is not None:
            raise KernelError(f"interface {ifname} already exists in network namespace {netns}")
        with _kernel(f"ensure bridge {conf.bridge}"):
            bridge_index = ensure_bridge_with(node, conf.bridge, conf.gateway_cidr, conf.mtu, cmds)
        assert bridge_index is not None  # the plugin never runs as a dry run
        retried = ipam.lookup(container_id, ifname) is not None  # a runtime retrying ADD
        address = ipam.allocate(container_id, ifname)
        if not retried:
            undo.callback(_undo, "release address", ipam.release, container_id, ifname)
        pod_cidr = ipaddress.IPv4Interface(f"{address}/{conf.subnet.prefixlen}")
        log.info("address reserved", extra={"container": container_id, "address": str(pod_cidr)})

        mtu = str(conf.mtu)
        argv = ["ip", "link", "add", host, "mtu", mtu, "type", "veth"]
        argv += ["peer", "name", ifname, "mtu", mtu, "netns", netns]
        if cmds.change(*argv):
            with _kernel(" ".join(argv)), _open_netns(netns) as fd:
                peer = {"ifname": ifname, "mtu": conf.mtu, "net_ns_fd": fd}
                node.link("add", ifname=host, kind="veth", mtu=conf.mtu, peer=peer)
        undo.callback(_undo, "delete veth", _delete_link, node, host, cmds, [])
        host_index = link_index(node, host)
        pod_index = link_index(pod, ifname)
        if host_index is None or pod_index is None:
            raise KernelError(f"veth pair {host}/{ifname} vanished right after it was created")
        with _kernel(f"attach {host} to {conf.bridge}"):
            attach_port(node, host, host_index, conf.bridge, bridge_index, conf.hairpin_mode, cmds)

        gateway = str(conf.gateway)
        if cmds.change(*ns, "ip", "addr", "add", str(pod_cidr), "dev", ifname):
            with _kernel(f"add address {pod_cidr} to {ifname} in {netns}"):
                pod.addr(
                    "add", index=pod_index, address=str(address), prefixlen=conf.subnet.prefixlen
                )
        if cmds.change(*ns, "ip", "link", "set", ifname, "up"):
            with _kernel(f"set {ifname} up in {netns}"):
                pod.link("set", index=pod_index, state="up")
        if cmds.change(*ns, "ip", "route", "add", "default", "via", gateway, "dev", ifname):
            with _kernel(f"add default route via {gateway} in {netns}"):
                pod.route("add", dst="0.0.0.0/0", gateway=gateway, oif=pod_index)

        interfaces = [
            Interface(conf.bridge, _mac(node, bridge_index)),
            Interface(host, _mac(node, host_index)),
            Interface(ifname, _mac(pod, pod_index), sandbox=netns),
        ]
        undo.pop_all()  # success: keep everything
    log.info("pod wired", extra={"container": container_id, "veth": host, "address": str(pod_cidr)})
    return add_result(conf.cni_version, interfaces, pod_cidr, conf.gateway, 2)


def delete(conf: NetConf, container_id: str, netns: str, ifname: str, cmds: CommandLog) -> None:
    """Unwire the sandbox; succeeds when any or all of it is already gone.

    Deleting the node's end of the veth pair deletes the pod's end with it, so
    the pod's namespace is entered only when the node's end is already gone
    and an interface might be left behind there (entering a namespace is the
    slow part of a DEL)."""
    host = host_veth_name(container_id, ifname)
    with IPRoute() as node:
        had_host_end = link_index(node, host) is not None
        _delete_link(node, host, cmds, [])
    if not had_host_end and netns and os.path.exists(netns):
        try:
            with _netns_socket(netns) as pod:
                _delete_link(pod, ifname, cmds, ["nsenter", f"--net={netns}"])
        except (OSError, InvalidEnvironment) as e:  # gone meanwhile, or never a netns
            log.info("netns gone", extra={"netns": netns, "error": str(e)})
    ipam = DiskIPAM(conf.data_dir, conf.name, conf.subnet, conf.gateway)
    released = ipam.release(container_id, ifname)
    log.info(
        "pod unwired",
        extra={"container": container_id, "released": str(released) if released else ""},
    )


def check(conf: NetConf, container_id: str, netns: str, ifname: str) -> None:
    """Raise CheckFailed naming the first thing that is not as ADD left it."""
    _require_netns(netns)
    ipam = DiskIPAM(conf.data_dir, conf.name, conf.subnet, conf.gateway)
    reserved = ipam.lookup(container_id, ifname)
    if reserved is None:
        raise CheckFailed(f"no address is reserved for container {container_id} {ifname}")
    want = ipaddress.IPv4Interface(f"{reserved}/{conf.subnet.prefixlen}")
    for prev in prev_result_addresses(conf.prev_result):
        if prev != want:
            raise CheckFailed(f"prevResult address {prev} is not the reserved {want}")
    with _netns_socket(netns) as pod:
        index = link_index(pod, ifname)
        if index is None:
            raise CheckFailed(f"interface {ifname} is missing in {netns}")
        if not pod.get_links(index)[0]["flags"] & IFF_UP:
            raise CheckFailed(f"interface {ifname} in {netns} is down")
        have = {
            ipaddress.IPv4Interface(f"{m.get('address')}/{m['prefixlen']}")
            for m in pod.get_addr(index=index, family=socket.AF_INET)
        }
        if want not in have:
            found = ", ".join(sorted(map(str, have))) or "none"
            raise CheckFailed(f"interface {ifname} in {netns} lacks {want} (has {found})")
        routes = pod.get_routes(family=socket.AF_INET, dst_len=0, oif=index)
        if not any(r.get("gateway") == str(conf.gateway) for r in routes):
            raise CheckFailed(f"no default route via {conf.gateway} in {netns}")
    with IPRoute() as node:
        host = host_veth_name(container_id, ifname)
        host_index, bridge_index = link_index(node, host), link_index(node, conf.bridge)
        if host_index is None or bridge_index is None:
            raise CheckFailed(f"veth {host} or bridge {conf.bridge} is missing on the node")
        if node.get_links(host_index)[0].get("master") != bridge_index:
            raise CheckFailed(f"veth {host} is not on bridge {conf.bridge}")


# -- helpers -----------------------------------------------------------------


def _require_netns(netns: str) -> None:
    if not os.path.exists(netns):
        raise ContainerUnknown(
            f"network namespace {netns} does not exist",
            "CNI_NETNS names a path that is not there: the sandbox is gone",
        )


@contextlib.contextmanager
def _open_netns(netns: str) -> Iterator[int]:
    try:
        fd = os.open(netns, os.O_RDONLY)
    except FileNotFoundError as e:
        raise ContainerUnknown(f"network namespace {netns} does not exist") from e
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def _netns_socket(netns: str) -> Iterator[Any]:
    """An IPRoute inside `netns`, made by this thread alone (threadns.py); never creates it."""
    _require_netns(netns)
    with threadns.made_in(netns, IPRoute) as ipr:
        yield ipr


@contextlib.contextmanager
def _kernel(what: str) -> Iterator[None]:
    """Turn a netlink error into a CNI error naming the step."""
    try:
        yield
    except NetlinkError as e:
        raise KernelError(f"{what}: {os.strerror(e.code)}", str(e)) from e


def _delete_link(ipr: Any, name: str, cmds: CommandLog, prefix: list[str]) -> None:
    """`ip link del NAME` if it exists (deleting a veth end deletes its peer too)."""
    index = link_index(ipr, name)
    if index is None or not cmds.change(*prefix, "ip", "link", "del", name):
        return
    try:
        ipr.link("del", index=index)
    except NetlinkError as e:
        if e.code != errno.ENODEV:
            raise KernelError(f"ip link del {name}: {os.strerror(e.code)}") from e


def _undo(what: str, func: Any, *args: Any) -> None:
    try:
        func(*args)
    except Exception as e:  # keep unwinding: report the original error, log this one
        log.error("undo failed", extra={"step": what, "error": str(e)})


def _mac(ipr: Any, index: int) -> str:
    return str(ipr.get_links(index)[0].get("address") or "")
