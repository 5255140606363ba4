"""From the runtime interface to Docker Engine API requests and back (dockershim's helpers).

Pure functions, no daemon: docker.py sends what these build and reads what
they parse, and the unit tests check them with plain dicts.

Names (dockershim's naming.go). Docker containers have unique names, and
dockershim put the CRI metadata in them, joined by `_`, with the prefix
`k8s` that marks the kubelet's own containers:

    sandbox     k8s_POD_<pod name>_<namespace>_<pod uid>_<attempt>
    container   k8s_<container name>_<pod name>_<namespace>_<pod uid>_<attempt>

e.g. `k8s_POD_web-5d8f_default_3f2a..._0` and `k8s_nginx_web-5d8f_default_3f2a..._1`
(the second start of container nginx). `_` cannot occur in a pod, namespace
or container name (RFC 1123), so the fields split back unambiguously; the
attempt is read from the name, as dockershim did. A name already taken (a
stale container of the same attempt) gets a random suffix `_<8 hex>`.

Labels (dockershim's docker_service.go and helpers.go). The CRI labels are
stored as Docker labels unchanged, annotations as labels prefixed
`annotation.`, plus two of dockershim's own:

    io.kubernetes.docker.type = podsandbox | container
    io.kubernetes.sandbox.id  = <pause container id>      (containers only)

so a restarted kubelet finds everything again with label filters alone:
`docker ps -a --filter label=io.kubernetes.pod.uid=<uid>`.

Sandbox (the pause container): network mode `none` (the kubelet runs CNI
on its netns afterwards) or `host` for hostNetwork pods, IPC `shareable`
(so the pod's containers may join it; `host` with hostIPC), PID `host` with
hostPID, the pod's hostname, restart policy no, the pod-level security
context (below), and the pod's DNS config as Docker's
Dns/DnsSearch/DnsOptions, from which Docker writes the resolv.conf every
container of the pod shares.

Containers: network and IPC `container:<pause id>` (Docker then also
shares the UTS namespace, hence the hostname), command as Entrypoint and
args as Cmd (Kubernetes' override rules: Docker keeps the image's Cmd only
when no Entrypoint is given), env, working dir, bind mounts, and the cgroup
limits of cri_convert.linux_resources: CpuPeriod/CpuQuota/CpuShares/Memory,
with MemorySwap = Memory (no swap, as dockershim set it). Ports are not
published: Docker refuses port publishing for a container that shares
another's network, and pods are reached at their own IP (hostPorts go to
CNI's portmap as runtimeConfig, cni_invoke.py). PID: the container's own,
`container:<pause id>` with shareProcessNamespace, `host` with hostPID.
stdin / stdinOnce / tty become OpenStdin / StdinOnce / Tty.

Log rotation is Docker's own: the container's log config is the json-file
driver with `max-size` (bytes) and `max-file` from the kubelet's
containerLogMaxSize and containerLogMaxFiles -- `{"Type": "json-file",
"Config": {"max-size": "10485760", "max-file": "5"}}` by default. Docker then
renames `<id>-json.log` to `.1` (and `.1` to `.2`, ...) once it passes
max-size and keeps max-file files, the current one included, as the kubelet
does for containerd (logrotation.py). A size of 0 or less: no rotation.

The security context becomes Config.User and HostConfig fields
(docker_security.py: user, groups, capabilities, privileged, read-only
rootfs, no-new-privileges, seccomp).

States (dockershim's toRuntimeAPIContainerState):

    Docker State.Status          interface ContainerState
    created                      CREATED
    running, paused, restarting  RUNNING
    exited, dead, removing       EXITED

with reason OOMKilled when State.OOMKilled, else Completed for exit code 0
and Error otherwise; State.Error is the message. Times are RFC 3339 with
nanoseconds; Docker's zero time `0001-01-01T00:00:00Z` means "never" (0.0).
"""

from __future__ import annotations

import calendar
import secrets
import time
from collections.abc import Mapping
from typing import Any

from kubelet.runtime.docker_security import (
    ReadProfile,
    apply_container_security,
    apply_sandbox_security,
    read_profile,
)
from kubelet.runtime.interface import (
    CONTAINER_NAME_LABEL,
    POD_NAME_LABEL,
    POD_NAMESPACE_LABEL,
    POD_UID_LABEL,
    Container,
    ContainerConfig,
    ContainerState,
    PodSandbox,
    PodSandboxConfig,
    SandboxState,
)

KUBE_PREFIX = "k8s"
SANDBOX_NAME = "POD"  # dockershim's name for the infra container
DELIMITER = "_"
TYPE_LABEL = "io.kubernetes.docker.type"
TYPE_SANDBOX = "podsandbox"
TYPE_CONTAINER = "container"
SANDBOX_ID_LABEL = "io.kubernetes.sandbox.id"
ANNOTATION_PREFIX = "annotation."
INTERNAL_LABELS = (TYPE_LABEL, SANDBOX_ID_LABEL)


# ---- names -------------------------------------------------------------------------------------


def sandbox_name(config: PodSandboxConfig) -> str:
    fields = (KUBE_PREFIX, SANDBOX_NAME, config.name, config.namespace, config.uid)
    return DELIMITER.join((*fields, str(config.attempt)))


def container_name(config: ContainerConfig, sandbox: PodSandboxConfig) -> str:
    fields = (KUBE_PREFIX, config.name, sandbox.name, sandbox.namespace, sandbox.uid)
    return DELIMITER.join((*fields, str(config.attempt)))


def randomized(name: str) -> str:
    """The name with a random suffix, for when a stale container holds the plain one."""
    return f"{name}{DELIMITER}{secrets.token_hex(4)}"


def parse_name(name: str) -> tuple[str, str, str, str, int]:
    """`/k8s_nginx_web_default_uid_1[_rand]` -> ("nginx", "web", "default", "uid", 1).

    A name that is not the kubelet's raises ValueError naming it.
    """
    parts = name.lstrip("/").split(DELIMITER)
    if len(parts) not in (6, 7) or parts[0] != KUBE_PREFIX:
        raise ValueError(f"container name {name!r} is not a kubelet name (k8s_..._<attempt>)")
    try:
        attempt = int(parts[5])
    except ValueError:
        raise ValueError(f"container name {name!r}: attempt {parts[5]!r} is not a number") from None
    return parts[1], parts[2], parts[3], parts[4], attempt


def attempt_of(name: str) -> int:
    try:
        return parse_name(name)[4]
    except ValueError:
        return 0


# ---- labels ------------------------------------------------------------------------------------


def sandbox_labels(config: PodSandboxConfig) -> dict[str, str]:
    labels = {f"{ANNOTATION_PREFIX}{k}": v for k, v in config.annotations.items()}
    labels.update(config.labels)
    labels.setdefault(POD_UID_LABEL, config.uid)
    labels.setdefault(POD_NAME_LABEL, config.name)
    labels.setdefault(POD_NAMESPACE_LABEL, config.namespace)
    labels[TYPE_LABEL] = TYPE_SANDBOX
    return labels


def container_labels(
    config: ContainerConfig, sandbox_id: str, sandbox: PodSandboxConfig
) -> dict[str, str]:
    labels = {f"{ANNOTATION_PREFIX}{k}": v for k, v in config.annotations.items()}
    labels.update(config.labels)
    labels.setdefault(POD_UID_LABEL, sandbox.uid)
    labels.setdefault(POD_NAME_LABEL, sandbox.name)
    labels.setdefault(POD_NAMESPACE_LABEL, sandbox.namespace)
    labels.setdefault(CONTAINER_NAME_LABEL, config.name)
    labels[TYPE_LABEL] = TYPE_CONTAINER
    labels[SANDBOX_ID_LABEL] = sandbox_id
    return labels


def split_labels(docker_labels: Mapping[str, str] | None) -> tuple[dict[str, str], dict[str, str]]:
    """Docker labels -> (CRI labels, annotations); dockershim's own labels are dropped."""
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    for key, value in (docker_labels or {}).items():
        if key in INTERNAL_LABELS:
            continue
        if key.startswith(ANNOTATION_PREFIX):
            annotations[key[len(ANNOTATION_PREFIX) :]] = value
        else:
            labels[key] = value
    return labels, annotations


# ---- times and states --------------------------------------------------------------------------


def parse_time(text: str | None) -> float:
    """Docker's RFC 3339 time (nanoseconds, `Z` or an offset) -> Unix seconds; zero time -> 0."""
    if not text or text.startswith("0001-01-01"):
        return 0.0
    main, _, rest = text.partition(".")
    offset = 0
    frac = ""
    if rest:
        frac = rest.rstrip("Z")
        for sign_char, sign in (("+", 1), ("-", -1)):
            if sign_char in frac:
                frac, _, tz = frac.partition(sign_char)
                hours, _, minutes = tz.partition(":")
                offset = sign * (int(hours) * 3600 + int(minutes or 0) * 60)
    else:
        main = main.rstrip("Z")
        if len(main) > 19:
            sign = 1 if main[19] == "+" else -1
            hours, _, minutes = main[20:].partition(":")
            offset = sign * (int(hours) * 3600 + int(minutes or 0) * 60)
            main = main[:19]
    base = calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S"))
    return base - offset + (float("0." + frac) if frac else 0.0)


_STATES = {
    "created": ContainerState.CREATED,
    "running": ContainerState.RUNNING,
    "paused": ContainerState.RUNNING,
    "restarting": ContainerState.RUNNING,
    "exited": ContainerState.EXITED,
    "dead": ContainerState.EXITED,
    "removing": ContainerState.EXITED,
}


def container_state(status: str) -> ContainerState:
    return _STATES.get(status, ContainerState.UNKNOWN)


def container_from_inspect(attrs: Mapping[str, Any], image_ref: str = "") -> Container:
    """GET /containers/<id>/json -> Container (all fields: times, exit code, reason)."""
    state = attrs.get("State") or {}
    config = attrs.get("Config") or {}
    docker_labels = config.get("Labels") or {}
    labels, annotations = split_labels(docker_labels)
    current = container_state(str(state.get("Status", "")))
    exit_code = int(state.get("ExitCode") or 0)
    reason = ""
    if current == ContainerState.EXITED:
        if state.get("OOMKilled"):
            reason = "OOMKilled"
        else:
            reason = "Completed" if exit_code == 0 else "Error"
    name = str(attrs.get("Name", ""))
    return Container(
        id=str(attrs["Id"]),
        sandbox_id=str(docker_labels.get(SANDBOX_ID_LABEL, "")),
        name=str(docker_labels.get(CONTAINER_NAME_LABEL, "")) or _field(name, 0),
        attempt=attempt_of(name),
        image=str(config.get("Image", "")),
        image_ref=image_ref or str(attrs.get("Image", "")),
        state=current,
        created_at=parse_time(attrs.get("Created")),
        started_at=parse_time(state.get("StartedAt")),
        finished_at=parse_time(state.get("FinishedAt")) if current != ContainerState.RUNNING else 0,
        exit_code=exit_code,
        reason=reason,
        message=str(state.get("Error") or ""),
        labels=labels,
        annotations=annotations,
        log_path=str(attrs.get("LogPath") or ""),
    )


def _field(name: str, index: int) -> str:
    try:
        return parse_name(name)[index]  # type: ignore[return-value]
    except ValueError:
        return ""


def sandbox_from_summary(item: Mapping[str, Any], ip: str) -> PodSandbox:
    """An entry of GET /containers/json (a pause container) -> PodSandbox."""
    names = item.get("Names") or [""]
    return _sandbox(
        str(item["Id"]),
        str(names[0]),
        item.get("Labels") or {},
        str(item.get("State", "")) == "running",
        float(item.get("Created") or 0),
        ip,
    )


def sandbox_from_inspect(attrs: Mapping[str, Any], ip: str) -> PodSandbox:
    """GET /containers/<pause id>/json -> PodSandbox."""
    state = attrs.get("State") or {}
    config = attrs.get("Config") or {}
    return _sandbox(
        str(attrs["Id"]),
        str(attrs.get("Name", "")),
        config.get("Labels") or {},
        bool(state.get("Running")),
        parse_time(attrs.get("Created")),
        ip,
    )


def _sandbox(
    sandbox_id: str,
    name: str,
    docker_labels: Mapping[str, str],
    running: bool,
    created: float,
    ip: str,
) -> PodSandbox:
    labels, annotations = split_labels(docker_labels)
    return PodSandbox(
        id=sandbox_id,
        name=labels.get(POD_NAME_LABEL, "") or _field(name, 1),
        namespace=labels.get(POD_NAMESPACE_LABEL, "") or _field(name, 2),
        pod_uid=labels.get(POD_UID_LABEL, "") or _field(name, 3),
        attempt=attempt_of(name),
        state=SandboxState.READY if running else SandboxState.NOTREADY,
        created_at=created,
        ip=ip if running else "",
        labels=labels,
        annotations=annotations,
    )


def container_from_summary(item: Mapping[str, Any]) -> tuple[str, ContainerState]:
    """An entry of GET /containers/json -> (id, state): what a relist compares."""
    return str(item["Id"]), container_state(str(item.get("State", "")))


# ---- create requests ---------------------------------------------------------------------------


def sandbox_create(
    config: PodSandboxConfig, pause_image: str, read: ReadProfile = read_profile
) -> dict[str, Any]:
    """Arguments of APIClient.create_container (+ `host_config` for create_host_config).

    `read` reads a Localhost seccomp profile (a file on the node).
    """
    host: dict[str, Any] = {
        "network_mode": "host" if config.host_network else "none",
        "ipc_mode": "host" if config.host_ipc else "shareable",
        "restart_policy": {"Name": "no"},
    }
    if config.host_pid:
        host["pid_mode"] = "host"
    request: dict[str, Any] = {
        "image": pause_image,
        "name": sandbox_name(config),
        "labels": sandbox_labels(config),
        "host_config": host,
    }
    apply_sandbox_security(request, config.security, read)
    if config.hostname and not config.host_network:
        request["hostname"] = config.hostname
    if config.dns is not None and not config.host_network:
        # Docker writes the pause container's resolv.conf from these; containers
        # joining its network (container:<pause id>) share that file.
        host["dns"] = list(config.dns.servers)
        host["dns_search"] = list(config.dns.searches)
        host["dns_opt"] = list(config.dns.options)
    return request


def container_create(
    config: ContainerConfig,
    sandbox_id: str,
    sandbox: PodSandboxConfig,
    read: ReadProfile = read_profile,
    log_limits: tuple[int, int] = (-1, 0),
) -> dict[str, Any]:
    """Arguments of APIClient.create_container for one container of the pod.

    `log_limits` is (max size in bytes, max files); a size of 0 or less: no rotation.
    """
    host: dict[str, Any] = {
        "network_mode": f"container:{sandbox_id}",
        "ipc_mode": "host" if sandbox.host_ipc else f"container:{sandbox_id}",
        "restart_policy": {"Name": "no"},
    }
    max_size, max_files = log_limits
    if max_size > 0:
        options = {"max-size": str(max_size), "max-file": str(max_files)}
        host["log_config"] = {"Type": "json-file", "Config": options}
    if sandbox.host_pid:
        host["pid_mode"] = "host"
    elif sandbox.share_process_namespace:
        host["pid_mode"] = f"container:{sandbox_id}"
    if config.mounts:
        host["binds"] = {
            m.host_path: {"bind": m.container_path, "mode": "ro" if m.read_only else "rw"}
            for m in config.mounts
        }
    res = config.resources
    if res is not None:
        if res.cpu_period:
            host["cpu_period"] = res.cpu_period
        if res.cpu_quota:
            host["cpu_quota"] = res.cpu_quota
        if res.cpu_shares:
            host["cpu_shares"] = res.cpu_shares
        if res.memory_limit_in_bytes:
            host["mem_limit"] = res.memory_limit_in_bytes
            host["memswap_limit"] = res.memory_limit_in_bytes
    request: dict[str, Any] = {
        "image": config.image,
        "name": container_name(config, sandbox),
        "labels": container_labels(config, sandbox_id, sandbox),
        "environment": [f"{k}={v}" for k, v in config.env],
        "host_config": host,
    }
    if config.command:
        request["entrypoint"] = list(config.command)
        request["command"] = list(config.args)
    elif config.args:
        request["command"] = list(config.args)
    if config.working_dir:
        request["working_dir"] = config.working_dir
    if config.stdin:
        request["stdin_open"] = True  # OpenStdin
        # The SDK sets StdinOnce (with the Attach* flags) for a create that is not detached.
        request["detach"] = not config.stdin_once
    if config.tty:
        request["tty"] = True
    apply_container_security(request, config.security, read)
    return request
