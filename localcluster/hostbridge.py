"""A pod network on the host for one runtime under test: a Linux bridge with a private
subnet, and the CNI config using it.

The runtime integration tests and the single-node pod-startup benchmark
(bench/pod_startup.py) run one containerd or dockerd on the host itself, not
in a node namespace, so their pods need a network of their own that touches
nothing else. containerd's CRI plugin (or the kubelet, for Docker) calls a
CNI plugin for every sandbox; here it is Debian's containernetworking-plugins
(`bridge` + `host-local`), configured so that nothing leaves the network's
own addresses:

* the bridge is made here and gets the subnet's first address (10.99.0.1/24
  by default): the host reaches pods through it, and only those addresses;
* the plugin runs with `isGateway: false` and `ipMasq: false`, so it neither
  enables IP forwarding nor adds NAT rules, and the pods get no default
  route: they can talk to the host's bridge address and to each other,
  nothing else;
* host-local keeps its leases under the caller's directory, not
  /var/lib/cni.

`teardown()` deletes the bridge (which takes any leftover veth with it) and
puts net.ipv4.ip_forward back to what it was, should anything have turned
it on. A run that was killed never got to its teardown: `setup()` first
deletes any earlier test bridge (a `tkt` name) that still holds the
subnet's gateway address, as two bridges with one subnet would split its
route and leave the host unable to reach the new pods.

The whole local cluster (cluster.py) uses tinykube-cni in node namespaces
instead.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import subprocess
from pathlib import Path

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class HostBridgeNetwork:
    """One bridge + one CNI conflist; `setup()` then `teardown()` (idempotent)."""

    def __init__(self, conf_dir: Path, data_dir: Path, subnet: str = "10.99.0.0/24") -> None:
        self.conf_dir = conf_dir
        self.data_dir = data_dir
        self.subnet = ipaddress.ip_network(subnet)
        self.gateway = str(next(self.subnet.hosts()))
        self.bridge = f"tkt{os.getpid() % 100000}"
        self._forward = ""

    def conflist(self) -> dict[str, object]:
        return {
            "cniVersion": "1.0.0",
            "name": "tinykube-test",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": False,
                    "ipMasq": False,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": str(self.subnet), "gateway": self.gateway}]],
                        "dataDir": str(self.data_dir),
                    },
                }
            ],
        }

    def setup(self) -> None:
        self._forward = IP_FORWARD.read_text().strip()
        self.teardown_bridge()
        for stale in self.stale_bridges():
            _ip("link", "del", stale, check=False)
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.conf_dir / "10-tinykube-test.conflist").write_text(json.dumps(self.conflist()))

    def stale_bridges(self) -> list[str]:
        """Test bridges left by an earlier, killed run that hold this subnet's gateway."""
        out = _ip("-j", "addr", "show", "type", "bridge", check=False).stdout or "[]"
        return [
            link["ifname"]
            for link in json.loads(out)
            if link.get("ifname", "").startswith("tkt")
            and link["ifname"] != self.bridge
            and any(a.get("local") == self.gateway for a in link.get("addr_info", []))
        ]

    def teardown_bridge(self) -> None:
        _ip("link", "del", self.bridge, check=False)

    def teardown(self) -> None:
        self.teardown_bridge()
        if self._forward:
            with contextlib.suppress(OSError):
                if IP_FORWARD.read_text().strip() != self._forward:
                    IP_FORWARD.write_text(self._forward)
