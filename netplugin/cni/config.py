"""The CNI network configuration: rendering the conflist, parsing what arrives on stdin.

Two sides of one file. The node agent (netplugin/agent.py) renders the
conflist once its Node has a podCIDR and writes it into containerd's CNI conf
dir (`/etc/cni/net.d/10-tinykube.conflist`):

    {"cniVersion": "1.0.0", "name": "tinykube",
     "plugins": [{"type": "tinykube-cni", "bridge": "tk0",
                  "subnet": "10.244.1.0/24", "gateway": "10.244.1.1",
                  "mtu": 1450, "hairpinMode": true,
                  "dataDir": "/var/lib/tinykube/cni"}]}

The runtime then runs `tinykube-cni` with one plugin's configuration on stdin:
the plugin object with the list's `name` and `cniVersion` copied in (and,
for CHECK and DEL, the `prevResult` of the ADD). For convenience when run by
hand, a whole conflist on stdin is accepted too: its first `tinykube-cni`
plugin is used.

Every field is checked, and a bad one is a CNI error 7 naming the field:
`subnet "10.244.1.0/33" is not an IPv4 CIDR`. The gateway defaults to the
subnet's first address (.1), which is what the node's bridge holds; the MTU
defaults to 1500 (the agent renders the VXLAN MTU, underlay - 50).
`agentSocket`, when the agent serves CNI calls, is the unix socket the thin
client (thin.py) hands each call to; the plugin itself ignores it.

write_conflist() replaces the file atomically (write a temporary file in the
same directory, fsync, rename): containerd watches the directory and must never
read half a file.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netplugin.cni.errors import DecodeFailure, IncompatibleVersion, InvalidConfig
from netplugin.constants import (
    BRIDGE,
    CNI_CONF_FILE,
    CNI_DATA_DIR,
    CNI_NETWORK_NAME,
    CNI_PLUGIN_TYPE,
    CNI_VERSION,
)

# cniVersions whose configurations this plugin accepts; results are printed in the
# config's version (0.3.x/0.4.0 results carry "version": "4" on each IP).
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0")
MAX_IFNAME = 15  # IFNAMSIZ - 1


@dataclass(frozen=True)
class NetConf:
    """One plugin's configuration, validated."""

    cni_version: str
    name: str
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    bridge: str = BRIDGE
    mtu: int = 1500
    hairpin_mode: bool = True
    data_dir: str = CNI_DATA_DIR
    prev_result: dict[str, Any] | None = None

    @property
    def gateway_cidr(self) -> str:
        """The bridge's address: "10.244.1.1/24"."""
        return f"{self.gateway}/{self.subnet.prefixlen}"


def render_conflist(
    subnet: str,
    *,
    mtu: int = 1450,
    data_dir: str = CNI_DATA_DIR,
    bridge: str = BRIDGE,
    agent_socket: str = "",
) -> dict[str, Any]:
    """The conflist for a node whose podCIDR is `subnet` (validated like stdin would be);
    `agent_socket`: where the node's agent serves thin-client calls (server.py)."""
    network = _subnet({"subnet": subnet})
    plugin: dict[str, Any] = {
        "type": CNI_PLUGIN_TYPE,
        "bridge": bridge,
        "subnet": str(network),
        "gateway": str(network.network_address + 1),
        "mtu": mtu,
        "hairpinMode": True,
        "dataDir": data_dir,
    }
    if agent_socket:
        plugin["agentSocket"] = agent_socket
    conflist = {"cniVersion": CNI_VERSION, "name": CNI_NETWORK_NAME, "plugins": [plugin]}
    parse_netconf(conflist)  # a bad bridge name or MTU fails here, not in every ADD
    return conflist


def write_conflist(conf_dir: str, conflist: dict[str, Any]) -> bool:
    """Write `conflist` as conf_dir/10-tinykube.conflist atomically; False if already so."""
    directory = Path(conf_dir)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / CNI_CONF_FILE
    text = json.dumps(conflist, indent=2, sort_keys=True) + "\n"
    try:
        if target.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    import tempfile  # not at the top: every CNI call imports this module, few write

    fd, tmp = tempfile.mkstemp(prefix=f".{CNI_CONF_FILE}.", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def parse_netconf(raw: bytes | str | dict[str, Any]) -> NetConf:
    """Validate the configuration from stdin (bytes) or an already decoded object."""
    if isinstance(raw, dict):
        data = raw
    else:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise DecodeFailure("network configuration on stdin is not valid JSON", str(e)) from e
        if not isinstance(data, dict):
            raise DecodeFailure("network configuration on stdin is not a JSON object")
    if "plugins" in data:
        data = _plugin_from_list(data)
    version = data.get("cniVersion")
    if not isinstance(version, str) or not version:
        raise InvalidConfig('field "cniVersion" is missing or not a string')
    if version not in SUPPORTED_VERSIONS:
        raise IncompatibleVersion(
            f'cniVersion "{version}" is not supported',
            "supported versions: " + ", ".join(SUPPORTED_VERSIONS),
        )
    name = data.get("name")
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise InvalidConfig(f'field "name" must be a non-empty name without "/", got {name!r}')
    kind = data.get("type", CNI_PLUGIN_TYPE)
    if not isinstance(kind, str):
        raise InvalidConfig(f'field "type" must be a string, got {kind!r}')
    subnet = _subnet(data)
    prev = data.get("prevResult")
    if prev is not None and not isinstance(prev, dict):
        raise InvalidConfig('field "prevResult" must be an object')
    return NetConf(
        cni_version=version,
        name=name,
        subnet=subnet,
        gateway=_gateway(data, subnet),
        bridge=_bridge(data),
        mtu=_mtu(data),
        hairpin_mode=_bool(data, "hairpinMode", True),
        data_dir=_data_dir(data),
        prev_result=prev,
    )


def _plugin_from_list(conflist: dict[str, Any]) -> dict[str, Any]:
    plugins = conflist.get("plugins")
    if not isinstance(plugins, list):
        raise InvalidConfig('field "plugins" must be a list')
    for plugin in plugins:
        if isinstance(plugin, dict) and plugin.get("type") == CNI_PLUGIN_TYPE:
            merged = dict(plugin)
            for key in ("cniVersion", "name"):
                if key in conflist:
                    merged[key] = conflist[key]
            return merged
    raise InvalidConfig(f'field "plugins" has no plugin of type "{CNI_PLUGIN_TYPE}"')


def _subnet(data: dict[str, Any]) -> ipaddress.IPv4Network:
    value = data.get("subnet")
    if not isinstance(value, str) or not value:
        raise InvalidConfig('field "subnet" is missing (the node\'s podCIDR, e.g. 10.244.1.0/24)')
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as e:
        raise InvalidConfig(f'field "subnet" {value!r} is not an IPv4 CIDR', str(e)) from e
    if not isinstance(network, ipaddress.IPv4Network):
        raise InvalidConfig(f'field "subnet" {value!r} is not IPv4 (IPv6 is not supported)')
    if network.prefixlen > 30:
        raise InvalidConfig(
            f'field "subnet" {value!r} is too small: a /30 is the smallest '
            "(network, gateway, one pod, broadcast)"
        )
    return network


def _gateway(data: dict[str, Any], subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    value = data.get("gateway")
    if value is None:
        return subnet.network_address + 1
    try:
        gateway = ipaddress.IPv4Address(value)
    except ValueError as e:
        raise InvalidConfig(f'field "gateway" {value!r} is not an IPv4 address') from e
    if gateway not in subnet or gateway in (subnet.network_address, subnet.broadcast_address):
        raise InvalidConfig(f'field "gateway" {value} is not a host address in subnet {subnet}')
    return gateway


def _bridge(data: dict[str, Any]) -> str:
    value = data.get("bridge", BRIDGE)
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_IFNAME
        or any(c in value for c in "/ \t\n:")
    ):
        raise InvalidConfig(
            f'field "bridge" must be an interface name of 1-{MAX_IFNAME} characters '
            f"without spaces, '/' or ':', got {value!r}"
        )
    return value


def _mtu(data: dict[str, Any]) -> int:
    value = data.get("mtu", 1500)
    if isinstance(value, bool) or not isinstance(value, int) or not 576 <= value <= 65535:
        raise InvalidConfig(f'field "mtu" must be an integer from 576 to 65535, got {value!r}')
    return value


def _bool(data: dict[str, Any], key: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise InvalidConfig(f'field "{key}" must be true or false, got {value!r}')
    return value


def _data_dir(data: dict[str, Any]) -> str:
    value = data.get("dataDir", CNI_DATA_DIR)
    if not isinstance(value, str) or not value.startswith("/"):
        raise InvalidConfig(f'field "dataDir" must be an absolute path, got {value!r}')
    return value
