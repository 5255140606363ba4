"""From a pod spec to what a real runtime needs: env, mounts, cgroup limits (kuberuntime's
generateContainerConfig, the volume manager's host paths, and the resource rules).

The runtime interface's ContainerConfig carries what every runtime can use
(command, args, env values). A runtime that starts real processes needs more,
all of it computed on the kubelet's side because only the kubelet knows the
pod, its IP and the API objects it refers to:

* env with `valueFrom`: `fieldRef` (metadata.name, metadata.namespace,
  metadata.uid, metadata.labels['k'], metadata.annotations['k'],
  spec.nodeName, spec.serviceAccountName, status.podIP, status.hostIP),
  `configMapKeyRef` and `secretKeyRef` through lookups the caller passes;
  then `$(VAR)` references expanded as Kubernetes does (see expand());
* volumes prepared on the host under the kubelet's root dir, Kubernetes'
  layout, and bind-mounted:

      emptyDir   <root>/pods/<uid>/volumes/kubernetes.io~empty-dir/<name>/
      configMap  <root>/pods/<uid>/volumes/kubernetes.io~configmap/<name>/<key>
      secret     <root>/pods/<uid>/volumes/kubernetes.io~secret/<name>/<key>
      hostPath   the path itself (created for DirectoryOrCreate / FileOrCreate)

  a volume with no known source is a VolumeError (reason FailedMount), a
  missing non-optional configMap too;
* requests/limits as CRI LinuxContainerResources (Kubernetes' rules):

      cpu_shares = requests.cpu in millicores * 1024 / 1000, at least 2
                   (no request: the limit if any, else 2 -- BestEffort)
      cpu_period = 100000 (100 ms, CFS)
      cpu_quota  = limits.cpu in millicores * period / 1000, at least 1000
      memory_limit_in_bytes = limits.memory

  Worked example: requests.cpu 250m, limits.cpu 500m, limits.memory 128Mi
  gives shares 256, period 100000, quota 50000 (half a CPU each 100 ms),
  memory 134217728.

The result is the interface's ContainerConfig with mounts, resources and
ports filled in, so any runtime can take it and the fake simply ignores the
extras. `container_config()` is what the kubelet's runtime manager calls.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from apimachinery import quantity
from kubelet.errors import ContainerRuntimeError
from kubelet.runtime.interface import (
    CONTAINER_NAME_LABEL,
    POD_NAME_LABEL,
    POD_NAMESPACE_LABEL,
    POD_UID_LABEL,
    ContainerConfig,
    LinuxResources,
    Mount,
    PortMapping,
)
from protos import core_pb2

__all__ = [
    "ContainerConfigError",
    "LinuxResources",
    "Mount",
    "ResolvedContainerConfig",
    "VolumeError",
    "container_config",
    "prepare_volumes",
    "resolve_env",
]

CPU_PERIOD = 100_000  # microseconds
MIN_SHARES = 2
MIN_QUOTA = 1000

# name -> data; None when the object does not exist.
Lookup = Callable[[str], Mapping[str, str | bytes] | None]


class ContainerConfigError(ContainerRuntimeError):
    """The container cannot be configured: a missing configMap key, a bad fieldRef."""

    reason = "CreateContainerConfigError"


class VolumeError(ContainerRuntimeError):
    """A volume cannot be set up: unknown type, missing source, a hostPath of the wrong kind."""

    reason = "FailedMount"


# The interface's ContainerConfig carries mounts, resources and ports itself now; the old
# name stays for callers that spelt it out.
ResolvedContainerConfig = ContainerConfig


# ---- env -------------------------------------------------------------------------------------

_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: known names are replaced, `$$` is a literal `$`,
    unknown references stay as written.

    expand("http://$(HOST):$(PORT)/$(NOPE) costs $$5", {"HOST": "a", "PORT": "80"})
    == "http://a:80/$(NOPE) costs $5"
    """

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        return env.get(name, match.group(0))

    return _REF.sub(sub, text)


_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")


def field_value(pod: core_pb2.Pod, path: str, pod_ip: str, host_ip: str) -> str:
    """The value of a downward-API fieldRef."""
    meta = pod.metadata
    simple = {
        "metadata.name": meta.name,
        "metadata.namespace": meta.namespace,
        "metadata.uid": meta.uid,
        "spec.nodeName": pod.spec.node_name,
        "spec.serviceAccountName": pod.spec.service_account_name,
        "status.podIP": pod_ip,
        "status.hostIP": host_ip,
    }
    if path in simple:
        return str(simple[path])
    match = _SUBSCRIPT.match(path)
    if match:
        table = meta.labels if match.group(1) == "labels" else meta.annotations
        return str(table.get(match.group(2), ""))
    raise ContainerConfigError(f"unsupported fieldRef fieldPath {path!r}")


def _key(lookup: Lookup | None, kind: str, name: str, key: str, optional: bool) -> str | None:
    data = lookup(name) if lookup is not None else None
    if data is None or key not in data:
        if optional:
            return None
        what = f'{kind} "{name}" not found' if data is None else f'key "{key}" not in {kind} {name}'
        raise ContainerConfigError(f"couldn't find key {key}: {what}")
    value = data[key]
    return value.decode() if isinstance(value, bytes) else value


def resolve_env(
    pod: core_pb2.Pod,
    spec: core_pb2.Container,
    *,
    pod_ip: str = "",
    host_ip: str = "",
    configmaps: Lookup | None = None,
    secrets: Lookup | None = None,
    service_env: Sequence[tuple[str, str]] = (),
) -> tuple[tuple[str, str], ...]:
    """The container's env as (name, value) pairs, in order, references expanded.

    `service_env` (kubelet/envvars.py) comes first, so the container's own
    variables can refer to it and override it."""
    env: dict[str, str] = dict(service_env)
    for var in spec.env:
        source = var.value_from if var.HasField("value_from") else None
        value: str | None
        if source is None:
            value = expand(var.value, env)
        elif source.HasField("field_ref"):
            value = field_value(pod, source.field_ref.field_path, pod_ip, host_ip)
        elif source.HasField("config_map_key_ref"):
            ref = source.config_map_key_ref
            value = _key(configmaps, "configmap", ref.name, ref.key, ref.optional)
        elif source.HasField("secret_key_ref"):
            secret_ref = source.secret_key_ref
            value = _key(secrets, "secret", secret_ref.name, secret_ref.key, secret_ref.optional)
        else:
            raise ContainerConfigError(f"env {var.name}: valueFrom names no source")
        if value is not None:
            env[var.name] = value
    return tuple(env.items())


# ---- resources -------------------------------------------------------------------------------


def linux_resources(spec: core_pb2.Container) -> LinuxResources:
    """CRI cgroup settings from requests/limits (the rules in the module docstring)."""
    limits = spec.resources.limits
    requests = spec.resources.requests
    cpu_request = requests.get("cpu") or limits.get("cpu")
    shares = MIN_SHARES
    if cpu_request:
        shares = max(MIN_SHARES, quantity.milli_value(cpu_request) * 1024 // 1000)
    quota = period = 0
    if limits.get("cpu"):
        period = CPU_PERIOD
        quota = max(MIN_QUOTA, quantity.milli_value(limits["cpu"]) * CPU_PERIOD // 1000)
    memory = quantity.value(limits["memory"]) if limits.get("memory") else 0
    return LinuxResources(period, quota, shares, memory)


# ---- volumes ---------------------------------------------------------------------------------


def pod_volumes_dir(root_dir: str | Path, pod_uid: str) -> Path:
    return Path(root_dir) / "pods" / pod_uid / "volumes"


def _write_files(
    target: Path,
    data: Mapping[str, str | bytes],
    items: Sequence[core_pb2.KeyToPath],
    mode: int | None,
) -> None:
    """Project keys to files (items selects and renames), replacing each file atomically."""
    target.mkdir(parents=True, exist_ok=True)
    pairs = [(i.key, i.path) for i in items] if items else [(k, k) for k in data]
    for key, rel in pairs:
        if key not in data:
            raise VolumeError(f"configuration key {key!r} not found")
        value = data[key]
        content = value.encode() if isinstance(value, str) else value
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(content)
        os.chmod(tmp, mode if mode is not None else 0o644)
        tmp.replace(path)


def _host_path(source: core_pb2.HostPathVolumeSource) -> str:
    path = Path(source.path)
    kind = source.type
    if kind == "DirectoryOrCreate":
        path.mkdir(parents=True, exist_ok=True, mode=0o755)
    elif kind == "FileOrCreate":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
    elif kind == "Directory" and not path.is_dir():
        raise VolumeError(f"hostPath type check failed: {path} is not a directory")
    elif kind == "File" and not path.is_file():
        raise VolumeError(f"hostPath type check failed: {path} is not a file")
    elif kind == "Socket" and not path.is_socket():
        raise VolumeError(f"hostPath type check failed: {path} is not a socket")
    return str(path)


def prepare_volumes(
    pod: core_pb2.Pod,
    root_dir: str | Path,
    *,
    configmaps: Lookup | None = None,
    secrets: Lookup | None = None,
) -> dict[str, str]:
    """Set up every volume of the pod on the host; volume name -> host path. Idempotent."""
    base = pod_volumes_dir(root_dir, pod.metadata.uid)
    paths: dict[str, str] = {}
    for volume in pod.spec.volumes:
        if volume.HasField("empty_dir"):
            path = base / "kubernetes.io~empty-dir" / volume.name
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o777)
            paths[volume.name] = str(path)
        elif volume.HasField("host_path"):
            paths[volume.name] = _host_path(volume.host_path)
        elif volume.HasField("config_map"):
            src = volume.config_map
            path = base / "kubernetes.io~configmap" / volume.name
            data = configmaps(src.name) if configmaps is not None else None
            if data is None and not src.optional:
                raise VolumeError(f'configmap "{src.name}" not found (volume {volume.name})')
            mode = src.default_mode if src.HasField("default_mode") else None
            _write_files(path, data or {}, src.items, mode)
            paths[volume.name] = str(path)
        elif volume.HasField("secret"):
            sec = volume.secret
            path = base / "kubernetes.io~secret" / volume.name
            data = secrets(sec.secret_name) if secrets is not None else None
            if data is None and not sec.optional:
                raise VolumeError(f'secret "{sec.secret_name}" not found (volume {volume.name})')
            mode = sec.default_mode if sec.HasField("default_mode") else None
            _write_files(path, data or {}, sec.items, mode)
            paths[volume.name] = str(path)
        else:
            raise VolumeError(f"volume {volume.name!r} has an unsupported volume type")
    return paths


def container_mounts(
    spec: core_pb2.Container, volume_paths: Mapping[str, str]
) -> tuple[Mount, ...]:
    mounts = []
    for vm in spec.volume_mounts:
        host = volume_paths.get(vm.name)
        if host is None:
            raise VolumeError(f"volumeMount {vm.name!r} names no volume of the pod")
        if vm.sub_path:
            sub = Path(host) / vm.sub_path
            if ".." in Path(vm.sub_path).parts:
                raise VolumeError(f"subPath {vm.sub_path!r} must not contain '..'")
            if not sub.exists():
                sub.mkdir(parents=True, exist_ok=True)
            host = str(sub)
        mounts.append(Mount(vm.mount_path, host, vm.read_only))
    return tuple(mounts)


# ---- the whole config ------------------------------------------------------------------------


def container_config(
    pod: core_pb2.Pod,
    spec: core_pb2.Container,
    attempt: int = 0,
    *,
    pod_ip: str = "",
    host_ip: str = "",
    volume_paths: Mapping[str, str] | None = None,
    configmaps: Lookup | None = None,
    secrets: Lookup | None = None,
    service_env: Sequence[tuple[str, str]] = (),
) -> ContainerConfig:
    """generateContainerConfig: env resolved, command/args expanded, mounts, resources."""
    env = resolve_env(
        pod,
        spec,
        pod_ip=pod_ip,
        host_ip=host_ip,
        configmaps=configmaps,
        secrets=secrets,
        service_env=service_env,
    )
    table = dict(env)
    return ContainerConfig(
        name=spec.name,
        image=spec.image,
        command=tuple(expand(c, table) for c in spec.command),
        args=tuple(expand(a, table) for a in spec.args),
        working_dir=spec.working_dir,
        env=env,
        attempt=attempt,
        labels={
            POD_UID_LABEL: pod.metadata.uid,
            POD_NAME_LABEL: pod.metadata.name,
            POD_NAMESPACE_LABEL: pod.metadata.namespace,
            CONTAINER_NAME_LABEL: spec.name,
        },
        mounts=container_mounts(spec, volume_paths or {}),
        resources=linux_resources(spec),
        ports=tuple(
            PortMapping(p.container_port, p.protocol or "TCP", p.host_port, p.host_ip)
            for p in spec.ports
        ),
    )
