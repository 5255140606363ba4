"""The overlay's kernel side: read the VXLAN device and its entries, make the changes.

Everything here is netlink through pyroute2, in the network namespace the
process runs in (the agent runs in the node's namespace). Each change is first
recorded on the CommandLog as the `ip` / `bridge` command that makes it by
hand; in a dry run the log is all that happens. The computations -- which
device, which entries, which changes -- are in overlay/device.py and
overlay/network.py; this module only reads and writes.

Reading back what the plugin owns, so that a reconcile is desired minus actual:

    routes      main table, IPv4, with a gateway   ip route show dev tinykube.1
    neighbours  IPv4, NUD_PERMANENT                ip neigh show dev tinykube.1 nud permanent
    FDB         with a remote dst                  bridge fdb show dev tinykube.1

The kernel's own routes on the device (its /32 local route) have no gateway,
and ARP-learnt neighbours are not permanent, so neither is mistaken for ours.

Calls are blocking: the agent runs them through asyncio.to_thread, one
reconcile at a time. A netlink error (the device vanished under us, an entry
already there) propagates, and the agent's work queue retries the whole
reconcile with backoff -- which re-reads the kernel first.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from netplugin.commands import CommandLog
from netplugin.overlay.device import VxlanLink, VxlanSpec, device_action, device_fixes
from netplugin.overlay.network import (
    Change,
    FdbEntry,
    NeighEntry,
    OverlayState,
    RouteEntry,
    normalize_mac,
)

log = logging.getLogger(__name__)

RT_TABLE_MAIN = 254
RTNH_F_ONLINK = 4
NUD_PERMANENT = 0x80
NUD_NOARP = 0x40
NTF_SELF = 0x02
ENODEV = 19
ESRCH = 3
ENOENT = 2


def _link_index(ipr: Any, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return int(found[0]) if found else None


def read_device(name: str) -> VxlanLink | None:
    """The link called `name` with its VXLAN parameters, or None (`ip -d link show NAME`)."""
    with IPRoute() as ipr:
        index = _link_index(ipr, name)
        if index is None:
            return None
        link = ipr.link("get", index=index)[0]
        info = link.get_attr("IFLA_LINKINFO")
        kind = str(info.get_attr("IFLA_INFO_KIND")) if info is not None else ""
        data = info.get_attr("IFLA_INFO_DATA") if info is not None else None
        ipv4 = tuple(
            f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
            for a in ipr.get_addr(family=socket.AF_INET, index=index)
        )
        base = VxlanLink(
            name=name,
            index=index,
            kind=kind,
            mac=str(link.get_attr("IFLA_ADDRESS") or ""),
            mtu=int(link.get_attr("IFLA_MTU") or 0),
            up=bool(link["flags"] & 1),  # IFF_UP
            ipv4=ipv4,
        )
        if kind != "vxlan" or data is None:
            return base
        lower = data.get_attr("IFLA_VXLAN_LINK")
        lower_name = ""
        if lower:
            lower_link = ipr.link("get", index=int(lower))[0]
            lower_name = str(lower_link.get_attr("IFLA_IFNAME"))
        return dataclasses.replace(
            base,
            vni=int(data.get_attr("IFLA_VXLAN_ID") or 0),
            port=int(data.get_attr("IFLA_VXLAN_PORT") or 0),
            local=str(data.get_attr("IFLA_VXLAN_LOCAL") or ""),
            link=lower_name,
            learning=bool(data.get_attr("IFLA_VXLAN_LEARNING")),
        )


def delete_link(name: str, cmds: CommandLog) -> bool:
    """`ip link del NAME` if it exists (its routes, neighbours and FDB go with it)."""
    with IPRoute() as ipr:
        index = _link_index(ipr, name)
        if index is None:
            return False
        if cmds.change("ip", "link", "del", name):
            ipr.link("del", index=index)
        return True


def ensure_device(spec: VxlanSpec, cmds: CommandLog) -> VxlanLink | None:
    """Create, replace or reuse the VXLAN device; the device as it now is (None in a dry run
    that would have created it)."""
    actual = read_device(spec.name)
    action = device_action(spec, actual)
    if action != "reuse":
        log.info(
            "vxlan device",
            extra={"action": action, "device": spec.name, "local": spec.local, "dev": spec.link},
        )
    with IPRoute() as ipr:
        if action == "replace":
            assert actual is not None
            if cmds.change("ip", "link", "del", spec.name):
                ipr.link("del", index=actual.index)
            actual = None
        if action != "reuse":
            lower = _link_index(ipr, spec.link)
            if lower is None:
                raise RuntimeError(f"interface {spec.link} not found")
            if cmds.change(*spec.create_argv()):
                ipr.link(
                    "add",
                    ifname=spec.name,
                    kind="vxlan",
                    vxlan_id=spec.vni,
                    vxlan_local=spec.local,
                    vxlan_link=lower,
                    vxlan_port=spec.port,
                    vxlan_learning=0,
                    mtu=spec.mtu,
                )
        fixes = device_fixes(spec, actual)
        index = _link_index(ipr, spec.name)  # None only in a dry run that "created" it
        name = spec.name
        mtu = fixes.mtu
        if mtu is not None and cmds.change("ip", "link", "set", name, "mtu", str(mtu)) and index:
            ipr.link("set", index=index, mtu=mtu)
        for op, cidrs in (("del", fixes.del_addresses), ("add", fixes.add_addresses)):
            for cidr in cidrs:
                if cmds.change("ip", "addr", op, cidr, "dev", name) and index is not None:
                    ip, _, plen = cidr.partition("/")
                    ipr.addr(op, index=index, address=ip, prefixlen=int(plen))
        if fixes.set_up and cmds.change("ip", "link", "set", name, "up") and index is not None:
            ipr.link("set", index=index, state="up")
    return read_device(spec.name)


def read_state(device: str) -> OverlayState:
    """The plugin's routes, permanent neighbours and FDB entries on `device` (empty if absent)."""
    with IPRoute() as ipr:
        index = _link_index(ipr, device)
        if index is None:
            return OverlayState()
        routes = []
        for r in ipr.get_routes(family=socket.AF_INET, oif=index, table=RT_TABLE_MAIN):
            gateway = r.get_attr("RTA_GATEWAY")
            if gateway and r.get_attr("RTA_OIF") == index:
                routes.append(RouteEntry(f"{r.get_attr('RTA_DST')}/{r['dst_len']}", str(gateway)))
        neighbours = []
        for n in ipr.get_neighbours(family=socket.AF_INET, ifindex=index):
            if n["ifindex"] == index and n["state"] & NUD_PERMANENT and n.get_attr("NDA_LLADDR"):
                mac = normalize_mac(str(n.get_attr("NDA_LLADDR")))
                neighbours.append(NeighEntry(str(n.get_attr("NDA_DST")), mac))
        fdb = []
        for f in ipr.fdb("dump", ifindex=index):
            dst, mac = f.get_attr("NDA_DST"), f.get_attr("NDA_LLADDR")
            if f["ifindex"] == index and dst and mac and mac != "00:00:00:00:00:00":
                fdb.append(FdbEntry(normalize_mac(str(mac)), str(dst)))
    return OverlayState(tuple(sorted(routes)), tuple(sorted(neighbours)), tuple(sorted(fdb)))


def apply(device: str, changes: list[Change], cmds: CommandLog) -> None:
    """Make each change (logged first); deleting what is already gone is not an error."""
    with IPRoute() as ipr:
        index = _link_index(ipr, device)
        for change in changes:
            if not cmds.change(*change.argv(device)) or index is None:
                continue
            try:
                _apply_one(ipr, index, change)
            except NetlinkError as err:
                if change.op == "del" and err.code in (ENOENT, ESRCH, ENODEV):
                    continue
                raise


def _apply_one(ipr: Any, index: int, change: Change) -> None:
    e, op = change.entry, change.op
    if isinstance(e, RouteEntry):
        if op == "del":
            ipr.route("del", dst=e.dst, gateway=e.gateway, oif=index, table=RT_TABLE_MAIN)
        else:
            ipr.route(op, dst=e.dst, gateway=e.gateway, oif=index, flags=RTNH_F_ONLINK)
    elif isinstance(e, NeighEntry):
        if op == "del":
            ipr.neigh("del", dst=e.ip, ifindex=index)
        else:
            ipr.neigh(op, dst=e.ip, lladdr=e.mac, ifindex=index, state=NUD_PERMANENT)
    elif op == "del":
        ipr.fdb("del", ifindex=index, lladdr=e.mac, dst=e.dst)
    else:  # pyroute2 fills in state and flags for "add" only: give them for both
        state, flags = NUD_PERMANENT | NUD_NOARP, NTF_SELF
        ipr.fdb(op, ifindex=index, lladdr=e.mac, dst=e.dst, state=state, flags=flags)
