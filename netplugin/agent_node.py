"""The node-local pieces the agent sets up once it knows its podCIDR, and removes on --cleanup.

    ip forwarding   sysctl -w net.ipv4.ip_forward=1       (pods' traffic is routed by the node)
    the bridge      ip link add tk0 type bridge; ip addr add 10.244.1.1/24 dev tk0; up
                    (netplugin/cni/bridge.py: the CNI plugin needs it for every pod)
    the CNI config  /etc/cni/net.d/10-tinykube.conflist    (containerd only starts pods
                    once a config is there: the node stays NotReady for pods until then,
                    as with flannel's 10-flannel.conflist); it names the agent's CNI
                    socket (`agentSocket`, netplugin/cni/server.py) when the agent serves one
    masquerade      nft table ip tinykube-nat              (netplugin/masquerade.py)

Each step is idempotent and changes nothing when already right, which is what
makes an agent restart invisible to running pods. Each change is logged as its
shell command; writing the config file is logged as `cat > FILE <<'EOF'` with
its content, so a dry run shows it too.

`cleanup` undoes everything the plugin created on the node, in reverse: the
cluster DNS link, the proxy's nft table, the masquerade table, the CNI socket a killed
agent left, the conflist, tk0, the VXLAN device
(with its routes, neighbours and FDB entries). Pods' veths go with tk0's
ports; their addresses stay reserved in the CNI data dir (removed by the CNI
plugin's DEL as the runtime tears pods down), because removing reservations of
pods that may still run would hand their IPs out twice. It is idempotent: a
second run finds nothing and logs nothing.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from pathlib import Path

from netplugin import masquerade
from netplugin.commands import CommandLog
from netplugin.constants import BRIDGE, CNI_CONF_FILE, CNI_DATA_DIR, VXLAN_DEVICE

log = logging.getLogger(__name__)

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def enable_ip_forward(cmds: CommandLog, path: Path = IP_FORWARD) -> bool:
    """net.ipv4.ip_forward=1 in this namespace; True if it was changed."""
    if path.read_text().strip() == "1":
        return False
    if cmds.change("sysctl", "-w", "net.ipv4.ip_forward=1"):
        path.write_text("1\n")
    return True


def gateway_cidr(pod_cidr: str) -> str:
    """The bridge's address: the podCIDR's first host, with its prefix (10.244.1.1/24)."""
    network = ipaddress.IPv4Network(pod_cidr)
    return f"{network.network_address + 1}/{network.prefixlen}"


def ensure_bridge(pod_cidr: str, mtu: int, cmds: CommandLog) -> None:
    from netplugin.cni.bridge import ensure_bridge as cni_ensure_bridge

    cni_ensure_bridge(BRIDGE, gateway_cidr(pod_cidr), mtu, cmds)


def ensure_conflist(
    pod_cidr: str,
    mtu: int,
    conf_dir: str,
    cmds: CommandLog,
    data_dir: str = CNI_DATA_DIR,
    agent_socket: str = "",
) -> bool:
    """conf_dir/10-tinykube.conflist for this podCIDR; True if it was (or would be) written.
    `agent_socket` (the agent's CNI server) goes in for the thin tinykube-cni to find."""
    from netplugin.cni.config import render_conflist, write_conflist

    conflist = render_conflist(pod_cidr, mtu=mtu, data_dir=data_dir, agent_socket=agent_socket)
    path = Path(conf_dir) / CNI_CONF_FILE
    try:
        if json.loads(path.read_text()) == conflist:
            return False
    except (OSError, ValueError):
        pass
    text = json.dumps(conflist, indent=2, sort_keys=True)
    if cmds.script(f"cat > {path}", text):
        write_conflist(conf_dir, conflist)
    return True


def cleanup(cmds: CommandLog, conf_dir: str, *, proxy: bool = True) -> None:
    """Remove everything the plugin created on this node; idempotent."""
    from netplugin import dns
    from netplugin.overlay import kernel

    dns.cleanup(cmds)
    if proxy:
        from netplugin import proxy as proxy_module

        proxy_module.cleanup(cmds)
    masquerade.cleanup(cmds)
    path = Path(conf_dir) / CNI_CONF_FILE
    _remove_agent_socket(path, cmds)
    if path.exists() and cmds.change("rm", "-f", str(path)):
        path.unlink(missing_ok=True)
    kernel.delete_link(BRIDGE, cmds)
    kernel.delete_link(VXLAN_DEVICE, cmds)


def _remove_agent_socket(conflist_path: Path, cmds: CommandLog) -> None:
    """The CNI socket the conflist names, if a stopped agent left it (a running one removes
    its own on exit); a path that is not a socket is left alone."""
    try:
        plugins = json.loads(conflist_path.read_text()).get("plugins", [])
        socket = Path(next(p["agentSocket"] for p in plugins if p.get("agentSocket")))
    except (OSError, ValueError, AttributeError, TypeError, StopIteration):
        return
    if socket.is_socket() and cmds.change("rm", "-f", str(socket)):
        socket.unlink(missing_ok=True)
