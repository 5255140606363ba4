"""The kubelet's own CNI calls, for runtimes without a CRI network (libcni + dockershim's cni).

containerd's CRI plugin calls the CNI plugin inside RunPodSandbox. Docker
has no such step: with `--network none` a pause container gets a network
namespace holding only `lo`, and Kubernetes' dockershim then ran the CNI
plugins itself (pkg/kubelet/dockershim/network/cni, on top of libcni). This
module is that caller, following the CNI specification:

1. Configuration: the lexicographically first `*.conflist`, `*.conf` or
   `*.json` in the conf dir (libcni's ConfFiles, sorted). A `.conflist` is
   `{"cniVersion", "name", "plugins": [...]}`; a `.conf` is one plugin,
   treated as a list of one. No file is NetworkNotReady: the node's network
   plugin has not written its config yet.
2. ADD: for each plugin in order, exec `<bin dir>/<type>` with

       CNI_COMMAND=ADD CNI_CONTAINERID=<pause id> CNI_NETNS=/proc/<pid>/ns/net
       CNI_IFNAME=eth0 CNI_PATH=<bin dirs> CNI_ARGS=K8S_POD_NAMESPACE=..;K8S_POD_NAME=..;...

   and on stdin the plugin's own object plus the list's `cniVersion` and
   `name`, plus `prevResult` (the previous plugin's result) for every plugin
   after the first: chaining, so `portmap` or `tuning` see the interfaces
   `bridge` made. The last plugin's result is the network's result; the pod
   IP is the first address in its `ips` (`ip4.ip` for 0.2 results).
3. DEL: the same calls in reverse order with CNI_COMMAND=DEL and, as
   `prevResult`, the result cached at ADD time. DEL must succeed on
   something already gone, so the kubelet may repeat it (a pause container
   whose process died has no netns path any more: CNI_NETNS is then empty,
   which the spec allows for DEL, and IPAM still frees the address).
4. Errors: a plugin that exits non-zero prints `{"code", "msg", "details"}`
   on stdout; CNIError carries `msg` (and `details`) so the pod's event reads
   like Kubernetes' "failed to set up sandbox container network: ...".
   A failed ADD is undone with a DEL of the whole list, as libcni's
   callers do, so no IP stays allocated.

Capabilities (libcni's CapabilityArgs): a plugin that declares
`"capabilities": {"portMappings": true}` (Debian's `portmap`) gets the pod's
hostPorts as `"runtimeConfig": {"portMappings": [{"hostPort": 8080,
"containerPort": 80, "protocol": "tcp"}]}` in its input, on ADD and on DEL;
other plugins never see them.

Result cache (libcni's /var/lib/cni/results): `<cache dir>/<network>-<id>-eth0`
holds `{"kind": "cniCacheV1", "containerId", "ifName", "networkName",
"capabilityArgs", "result"}`, so DEL has its prevResult and the same
runtimeConfig as ADD even after a kubelet restart, and the adapter can tell
a sandbox's IP without entering its namespace.

Worked example, Debian's bridge + host-local and a conflist of one plugin:

    $ echo '{"cniVersion":"1.0.0","name":"net","type":"bridge","bridge":"tk0",
             "ipam":{"type":"host-local","ranges":[[{"subnet":"10.99.0.0/24"}]]}}' |
      CNI_COMMAND=ADD CNI_CONTAINERID=abc CNI_NETNS=/proc/4242/ns/net CNI_IFNAME=eth0 \\
      CNI_PATH=/usr/lib/cni /usr/lib/cni/bridge
    {"cniVersion":"1.0.0","interfaces":[...],"ips":[{"address":"10.99.0.2/24",...}],...}

gives the pod 10.99.0.2; `CNI_COMMAND=DEL` with the same input (plus
`prevResult`) deletes the veth and frees the address.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubelet.errors import ContainerRuntimeError, NetworkNotReady
from kubelet.runtime.interface import PortMapping

log = logging.getLogger(__name__)

IFNAME = "eth0"
PLUGIN_TIMEOUT = 60.0
CONFIG_SUFFIXES = (".conflist", ".conf", ".json")


class CNIError(ContainerRuntimeError):
    """A CNI plugin failed; the message is the plugin's own `msg` (and `details`)."""

    reason = "NetworkPluginError"

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class NetworkConfig:
    """One network: its name, version and plugin objects (a .conf becomes a list of one)."""

    name: str
    cni_version: str
    plugins: tuple[dict[str, Any], ...]
    path: str = ""


@dataclass(frozen=True)
class PodNetworkArgs:
    """Who the sandbox belongs to (CNI_ARGS, as the kubelet passes them)."""

    namespace: str = ""
    name: str = ""
    infra_container_id: str = ""
    port_mappings: tuple[PortMapping, ...] = ()

    def capability_args(self) -> dict[str, Any]:
        """libcni's CapabilityArgs: the hostPorts, for plugins declaring portMappings."""
        ports = [
            {
                "hostPort": p.host_port,
                "containerPort": p.container_port,
                "protocol": (p.protocol or "TCP").lower(),
                **({"hostIP": p.host_ip} if p.host_ip else {}),
            }
            for p in self.port_mappings
            if p.host_port > 0
        ]
        return {"portMappings": ports} if ports else {}

    def cni_args(self) -> str:
        pairs = [
            ("IgnoreUnknown", "1"),
            ("K8S_POD_NAMESPACE", self.namespace),
            ("K8S_POD_NAME", self.name),
            ("K8S_POD_INFRA_CONTAINER_ID", self.infra_container_id),
        ]
        return ";".join(f"{k}={v}" for k, v in pairs)


@dataclass
class CNIResult:
    """The final ADD result and the pod IP found in it."""

    ip: str
    raw: dict[str, Any] = field(default_factory=dict)


def load_config(conf_dir: str | Path) -> NetworkConfig:
    """The lexicographically first config file in `conf_dir`, parsed and checked."""
    directory = Path(conf_dir)
    try:
        names = sorted(p.name for p in directory.iterdir() if p.suffix in CONFIG_SUFFIXES)
    except FileNotFoundError:
        names = []
    if not names:
        raise NetworkNotReady(f"no CNI configuration file in {directory}")
    path = directory / names[0]
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise NetworkNotReady(f"CNI configuration {path} is unreadable: {err}") from None
    return parse_config(doc, str(path))


def parse_config(doc: object, path: str = "") -> NetworkConfig:
    """A conflist or a single-plugin conf -> NetworkConfig; bad input names what is wrong."""
    where = path or "CNI configuration"
    if not isinstance(doc, dict):
        raise NetworkNotReady(f"{where}: expected a JSON object")
    version = str(doc.get("cniVersion", ""))
    name = str(doc.get("name", ""))
    if "plugins" in doc:
        plugins = doc["plugins"]
        if not isinstance(plugins, list) or not plugins:
            raise NetworkNotReady(f"{where}: 'plugins' must be a non-empty list")
    elif "type" in doc:
        plugins = [{k: v for k, v in doc.items() if k not in ("cniVersion", "name")}]
    else:
        raise NetworkNotReady(f"{where}: neither 'plugins' nor 'type' is set")
    if not name:
        raise NetworkNotReady(f"{where}: 'name' is missing")
    for index, plugin in enumerate(plugins):
        if not isinstance(plugin, dict) or not isinstance(plugin.get("type"), str):
            raise NetworkNotReady(f"{where}: plugins[{index}] has no 'type'")
    return NetworkConfig(name, version or "0.4.0", tuple(plugins), path)


def plugin_input(
    network: NetworkConfig,
    plugin: dict[str, Any],
    prev_result: dict[str, Any] | None,
    capability_args: dict[str, Any] | None = None,
) -> bytes:
    """The JSON a plugin reads on stdin: its object + the list's version and name
    (+ prevResult, + runtimeConfig for the capabilities it declares)."""
    doc = dict(plugin)
    doc["cniVersion"] = network.cni_version
    doc["name"] = network.name
    if prev_result is not None:
        doc["prevResult"] = prev_result
    declared = plugin.get("capabilities")
    if isinstance(declared, dict) and capability_args:
        runtime_config = {
            key: value for key, value in capability_args.items() if declared.get(key) is True
        }
        if runtime_config:
            doc["runtimeConfig"] = runtime_config
    return json.dumps(doc).encode()


def result_ip(result: dict[str, Any]) -> str:
    """The first IP of a result: `ips[].address` (0.3+) or `ip4.ip` (0.2), without the prefix."""
    for entry in result.get("ips") or []:
        address = str(entry.get("address", ""))
        if address:
            return address.split("/", 1)[0]
    legacy = result.get("ip4") or {}
    address = str(legacy.get("ip", ""))
    return address.split("/", 1)[0]


def _error_message(plugin: str, command: str, rc: int, stdout: bytes, stderr: bytes) -> CNIError:
    try:
        doc = json.loads(stdout or b"{}")
    except ValueError:
        doc = {}
    if isinstance(doc, dict) and doc.get("msg"):
        text = str(doc["msg"])
        if doc.get("details"):
            text += f": {doc['details']}"
        return CNIError(f"plugin {plugin} failed ({command}): {text}", int(doc.get("code", 0)))
    detail = (stderr or stdout).decode(errors="replace").strip() or f"exit status {rc}"
    return CNIError(f"plugin {plugin} failed ({command}): {detail}")


class CNIInvoker:
    """ADD and DEL of one pod network through the plugins in `bin_dirs`."""

    def __init__(
        self,
        conf_dir: str | Path,
        bin_dirs: str | Path | tuple[str, ...],
        cache_dir: str | Path,
        *,
        timeout: float = PLUGIN_TIMEOUT,
    ) -> None:
        self.conf_dir = Path(conf_dir)
        if isinstance(bin_dirs, tuple):
            self.bin_dirs = tuple(str(d) for d in bin_dirs)
        else:
            self.bin_dirs = tuple(str(bin_dirs).split(os.pathsep))
        self.cache_dir = Path(cache_dir)
        self.timeout = timeout

    def ready(self) -> tuple[bool, str]:
        """(True, "") when a usable config exists, else (False, why): the NetworkReady condition."""
        try:
            load_config(self.conf_dir)
        except NetworkNotReady as err:
            return False, f"NetworkPluginNotReady: {err}"
        return True, ""

    def _find(self, plugin_type: str) -> str:
        for directory in self.bin_dirs:
            candidate = Path(directory) / plugin_type
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
        raise CNIError(f'failed to find plugin "{plugin_type}" in path {list(self.bin_dirs)}')

    async def _exec(
        self,
        command: str,
        plugin: dict[str, Any],
        stdin: bytes,
        container_id: str,
        netns: str,
        args: PodNetworkArgs,
    ) -> dict[str, Any]:
        binary = self._find(str(plugin["type"]))
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": netns,
            "CNI_IFNAME": IFNAME,
            "CNI_PATH": os.pathsep.join(self.bin_dirs),
            "CNI_ARGS": args.cni_args(),
        }
        proc = await asyncio.create_subprocess_exec(
            binary,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(stdin), self.timeout)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise CNIError(f"plugin {plugin['type']} timed out ({command})") from None
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            raise
        rc = proc.returncode or 0
        if rc != 0:
            raise _error_message(str(plugin["type"]), command, rc, stdout, stderr)
        if not stdout.strip():
            return {}
        try:
            result = json.loads(stdout)
        except ValueError:
            raise CNIError(f"plugin {plugin['type']} printed no JSON result ({command})") from None
        return result if isinstance(result, dict) else {}

    # ---- the result cache -------------------------------------------------------------------

    def _cache_path(self, network: str, container_id: str) -> Path:
        return self.cache_dir / f"{network}-{container_id}-{IFNAME}"

    def cached_entry(self, container_id: str) -> dict[str, Any] | None:
        """The cache entry for this container on any network, if one is there."""
        for path in sorted(self.cache_dir.glob(f"*-{container_id}-{IFNAME}")):
            with contextlib.suppress(OSError, ValueError):
                doc = json.loads(path.read_text())
                if isinstance(doc, dict):
                    return doc
        return None

    def cached_result(self, container_id: str) -> dict[str, Any] | None:
        """The ADD result cached for this container, if one is there."""
        entry = self.cached_entry(container_id)
        if entry is None:
            return None
        result = entry.get("result")
        return result if isinstance(result, dict) else None

    def cached_ip(self, container_id: str) -> str:
        result = self.cached_result(container_id)
        return result_ip(result) if result else ""

    # ---- ADD / DEL ----------------------------------------------------------------------------

    async def add(self, container_id: str, netns: str, args: PodNetworkArgs) -> CNIResult:
        """Run ADD through the whole list; on failure undo it with DEL and raise CNIError."""
        network = await asyncio.to_thread(load_config, self.conf_dir)
        capabilities = args.capability_args()
        prev: dict[str, Any] | None = None
        try:
            for plugin in network.plugins:
                stdin = plugin_input(network, plugin, prev, capabilities)
                prev = await self._exec("ADD", plugin, stdin, container_id, netns, args)
        except BaseException:
            with contextlib.suppress(Exception):
                await self._delete(network, container_id, netns, args, prev, capabilities)
            raise
        result = prev or {}
        ip = result_ip(result)
        if not ip:
            await self._delete(network, container_id, netns, args, result, capabilities)
            raise CNIError(f"network {network.name}: the ADD result has no IP address")
        entry = {
            "kind": "cniCacheV1",
            "containerId": container_id,
            "ifName": IFNAME,
            "networkName": network.name,
            "capabilityArgs": capabilities,
            "result": result,
        }
        await asyncio.to_thread(self._write_cache, network.name, container_id, entry)
        log.info(
            "pod network added",
            extra={"container": container_id, "network": network.name, "ip": ip},
        )
        return CNIResult(ip, result)

    def _write_cache(self, network: str, container_id: str, entry: dict[str, Any]) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        path = self._cache_path(network, container_id)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(entry))
        tmp.replace(path)

    async def delete(self, container_id: str, netns: str, args: PodNetworkArgs) -> None:
        """DEL through the list in reverse order; repeatable. The cache entry goes afterwards."""
        try:
            network = await asyncio.to_thread(load_config, self.conf_dir)
        except NetworkNotReady:
            # No config any more: nothing can be called; forget the cached result.
            await asyncio.to_thread(self._drop_cache, container_id)
            return
        entry = await asyncio.to_thread(self.cached_entry, container_id) or {}
        prev = entry.get("result") if isinstance(entry.get("result"), dict) else None
        capabilities = entry.get("capabilityArgs") or args.capability_args()
        await self._delete(network, container_id, netns, args, prev, capabilities)
        await asyncio.to_thread(self._drop_cache, container_id)

    async def _delete(
        self,
        network: NetworkConfig,
        container_id: str,
        netns: str,
        args: PodNetworkArgs,
        prev: dict[str, Any] | None,
        capabilities: dict[str, Any] | None = None,
    ) -> None:
        for plugin in reversed(network.plugins):
            stdin = plugin_input(network, plugin, prev, capabilities)
            await self._exec("DEL", plugin, stdin, container_id, netns, args)
        log.info("pod network deleted", extra={"container": container_id, "network": network.name})

    def _drop_cache(self, container_id: str) -> None:
        for path in self.cache_dir.glob(f"*-{container_id}-{IFNAME}"):
            with contextlib.suppress(OSError):
                path.unlink()
