"""From a pod spec to what a real runtime needs: env, mounts, cgroup limits, security
(kuberuntime's generateContainerConfig, makeMounts, and the resource rules).

The runtime interface's ContainerConfig carries what every runtime can use
(command, args, env values). A runtime that starts real processes needs more,
all of it computed on the kubelet's side because only the kubelet knows the
pod, its IP and the API objects it refers to:

* env (container_env.py): the Service variables, `envFrom`, then `env`
  with `valueFrom` (fieldRef, resourceFieldRef with the node's allocatable
  for unset limits, configMapKeyRef, secretKeyRef through lookups the
  caller passes) and `$(VAR)` references expanded as Kubernetes does;
  command and args expanded against the result;
* mounts: each volumeMount as a host path -- the volume's directory, set
  up by kubelet/volume_plugins.py under the kubelet's root dir -- and
  read-only when asked, and always for configMap and secret volumes (as
  Kubernetes mounts them). A subPath is joined lexically here; on a real
  node the volume manager hands in the pinned, symlink-checked path
  instead (kubelet/subpath.py). A volumeMount naming no volume is a
  VolumeError (reason FailedMount);
* requests/limits as CRI LinuxContainerResources (Kubernetes' rules):

      cpu_shares = requests.cpu in millicores * 1024 / 1000, at least 2
                   (no request: the limit if any, else 2 -- BestEffort)
      cpu_period = 100000 (100 ms, CFS)
      cpu_quota  = limits.cpu in millicores * period / 1000, at least 1000
      memory_limit_in_bytes = limits.memory

  Worked example: requests.cpu 250m, limits.cpu 500m, limits.memory 128Mi
  gives shares 256, period 100000, quota 50000 (half a CPU each 100 ms),
  memory 134217728;
* the security context, pod and container merged (security_context.py),
  after the runAsNonRoot check: a container that would run as root is
  refused here, before anything is created (CreateContainerConfigError).

The result is the interface's ContainerConfig with mounts, resources, ports
and security filled in, so any runtime can take it and the fake simply
records the extras. `container_config()` is what the kubelet's runtime
manager calls.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence

from apimachinery import quantity
from kubelet.errors import ContainerConfigError, VolumeError
from kubelet.runtime.container_env import Lookup, Warn, expand, field_value, resolve_env
from kubelet.runtime.interface import (
    CONTAINER_NAME_LABEL,
    POD_NAME_LABEL,
    POD_NAMESPACE_LABEL,
    POD_UID_LABEL,
    ContainerConfig,
    ImageUser,
    LinuxResources,
    Mount,
    PortMapping,
)
from kubelet.runtime.security_context import (
    DEFAULT_SECCOMP_ROOT,
    container_security,
    verify_run_as_non_root,
)
from protos import core_pb2

__all__ = [
    "ContainerConfigError",
    "LinuxResources",
    "Mount",
    "ResolvedContainerConfig",
    "VolumeError",
    "container_config",
    "container_mounts",
    "expand",
    "field_value",
    "resolve_env",
]

CPU_PERIOD = 100_000  # microseconds
MIN_SHARES = 2
MIN_QUOTA = 1000

# The interface's ContainerConfig carries mounts, resources and ports itself now; the old
# name stays for callers that spelt it out.
ResolvedContainerConfig = ContainerConfig


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


# ---- mounts ----------------------------------------------------------------------------------


def api_data_volumes(pod: core_pb2.Pod) -> set[str]:
    """The pod's configMap and secret volumes: always mounted read-only (mustMountRO)."""
    return {v.name for v in pod.spec.volumes if v.HasField("config_map") or v.HasField("secret")}


def container_mounts(
    pod: core_pb2.Pod,
    spec: core_pb2.Container,
    volume_paths: Mapping[str, str],
    subpaths: Mapping[int, str] | None = None,
) -> tuple[Mount, ...]:
    """The container's volumeMounts as host paths (makeMounts), without touching the disk.

    A subPath is the volume's path joined with it, unless `subpaths` (the
    volume manager's pins, by volumeMount index) gives the checked path:
    on a real node only a pinned subPath is safe (kubelet/subpath.py).
    """
    read_only = api_data_volumes(pod)
    mounts = []
    for index, vm in enumerate(spec.volume_mounts):
        host = volume_paths.get(vm.name)
        if host is None:
            raise VolumeError(f"volumeMount {vm.name!r} names no volume of the pod")
        if vm.sub_path:
            host = (subpaths or {}).get(index) or posixpath.join(host, vm.sub_path)
        mounts.append(Mount(vm.mount_path, host, vm.read_only or vm.name in read_only))
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
    mounts: tuple[Mount, ...] | None = None,
    configmaps: Lookup | None = None,
    secrets: Lookup | None = None,
    service_env: Sequence[tuple[str, str]] = (),
    image_user: ImageUser | None = None,
    seccomp_root: str = DEFAULT_SECCOMP_ROOT,
    extra_mounts: Sequence[Mount] = (),
    allocatable: Mapping[str, str] | None = None,
    warn: Warn | None = None,
) -> ContainerConfig:
    """generateContainerConfig: env resolved, command/args expanded, mounts, resources,
    security context -- after verifyRunAsNonRoot.

    `mounts` (the volume manager's, with subPaths pinned) wins over mounts
    computed from `volume_paths`, and `extra_mounts` (the kubelet's own: /etc/hosts)
    follow them; `image_user` is the image's user when the
    caller asked the runtime (security_context.needs_image_user); `allocatable` the
    node's, for a resourceFieldRef to a limit not set; `warn` records a Warning event
    on the pod (envFrom keys skipped).
    """
    verify_run_as_non_root(pod, spec, image_user)
    env = resolve_env(
        pod,
        spec,
        pod_ip=pod_ip,
        host_ip=host_ip,
        configmaps=configmaps,
        secrets=secrets,
        service_env=service_env,
        allocatable=allocatable,
        warn=warn,
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
        mounts=(
            *(mounts if mounts is not None else container_mounts(pod, spec, volume_paths or {})),
            *extra_mounts,
        ),
        resources=linux_resources(spec),
        ports=tuple(
            PortMapping(p.container_port, p.protocol or "TCP", p.host_port, p.host_ip)
            for p in spec.ports
        ),
        security=container_security(pod, spec, image_user, seccomp_root),
        stdin=spec.stdin,
        stdin_once=spec.stdin_once,
        tty=spec.tty,
    )
