"""The CNI result an ADD prints, in the configuration's cniVersion.

For a pod on node1 (podCIDR 10.244.1.0/24) the 1.0.0 result is:

    {"cniVersion": "1.0.0",
     "interfaces": [{"name": "tk0", "mac": "4a:..."},
                    {"name": "veth3f9c0d2e7a1", "mac": "be:..."},
                    {"name": "eth0", "mac": "02:...", "sandbox": "/run/netns/cni-1234"}],
     "ips": [{"address": "10.244.1.2/24", "gateway": "10.244.1.1", "interface": 2}],
     "routes": [{"dst": "0.0.0.0/0", "gw": "10.244.1.1"}],
     "dns": {}}

`interface` is an index into `interfaces` (the pod's eth0 is the third, 2).
containerd reads the address of the entry whose interface has a `sandbox` to
report the pod IP. Results for 0.3.x/0.4.0 configurations are the same except
that each IP carries "version": "4" (1.0 dropped the field).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Interface:
    name: str
    mac: str
    sandbox: str = ""

    def to_json(self) -> dict[str, str]:
        out = {"name": self.name, "mac": self.mac}
        if self.sandbox:
            out["sandbox"] = self.sandbox
        return out


def add_result(
    cni_version: str,
    interfaces: list[Interface],
    address: ipaddress.IPv4Interface,
    gateway: ipaddress.IPv4Address,
    pod_interface: int,
) -> dict[str, Any]:
    """The result of a successful ADD."""
    ip: dict[str, Any] = {
        "address": str(address),
        "gateway": str(gateway),
        "interface": pod_interface,
    }
    if not cni_version.startswith("1."):
        ip = {"version": "4", **ip}
    return {
        "cniVersion": cni_version,
        "interfaces": [i.to_json() for i in interfaces],
        "ips": [ip],
        "routes": [{"dst": "0.0.0.0/0", "gw": str(gateway)}],
        "dns": {},
    }


def prev_result_addresses(prev: dict[str, Any] | None) -> list[ipaddress.IPv4Interface]:
    """The IPv4 addresses a prevResult (CHECK, DEL) says ADD configured."""
    out: list[ipaddress.IPv4Interface] = []
    for ip in (prev or {}).get("ips", []) or []:
        if isinstance(ip, dict) and isinstance(ip.get("address"), str):
            try:
                address = ipaddress.ip_interface(ip["address"])
            except ValueError:
                continue
            if isinstance(address, ipaddress.IPv4Interface):
                out.append(address)
    return out
