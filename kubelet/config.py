"""The kubelet's configuration (Kubernetes' KubeletConfiguration, the part tinykube uses).

One dataclass, filled from `tinykube kubelet` flags or by tests and the
in-process cluster harness directly. Defaults are Kubernetes' own where it has
one, so a reader can compare timings:

    lease_duration_seconds       40 s   how long the node's Lease is valid
    lease_renew_interval         10 s   a quarter of the duration, as the kubelet's lease controller
    node_status_update_frequency 10 s   how often the node status is computed (written on change)
    node_status_report_frequency 300 s  a status write even without a change
    sync_frequency               60 s   every pod is re-synced at least this often (syncFrequency)
    housekeeping_interval         2 s   how often orphaned sandboxes are looked for
    pleg_relist_period            1 s   how often the PLEG relists the runtime
    crash_backoff_initial/max  10/300 s CrashLoopBackOff (backOffPeriod, MaxContainerBackOff)
    image_backoff_initial/max  10/300 s ImagePullBackOff
    probe_time_unit               1 s   what one second of a probe's periodSeconds,
                                        initialDelaySeconds, timeoutSeconds is (tests: 0.05)
    kubelet_address:kubelet_port 0.0.0.0:10250  the kubelet server (logs, exec);
                                        port 0 picks a free port (tests)
    container_log_max_size      "10Mi"  a container's log file is rotated past this size
                                        (a quantity; negative: never rotated)
                                        containerLogMaxSize, --container-log-max-size
    container_log_max_files         5   log files kept per container, the current one
                                        included (at least 2)
                                        containerLogMaxFiles, --container-log-max-files
    container_log_monitor_interval 10 s how often the sizes are looked at (logrotation.py)

Capacity is what the node has; allocatable is what pods may use: capacity
minus system-reserved minus kube-reserved, per resource, never below zero.
Worked example: capacity cpu "4", memory "8Gi"; kube_reserved cpu "500m",
memory "512Mi" gives allocatable cpu "3500m", memory "7680Mi" (pods "110" is
untouched). The scheduler fits pods against allocatable.

Hollow nodes: with the `fake` runtime nothing on the machine is measured, so
capacity is whatever the flags say (4 CPUs, 8Gi, 110 pods by default), as
kubemark's hollow kubelets report configured figures.
"""

from __future__ import annotations

import platform
import re
import socket
from dataclasses import dataclass, field
from fractions import Fraction

from apimachinery import quantity
from kubelet.errors import ConfigError

KUBELET_VERSION = "v0.1.0"

LABEL_HOSTNAME = "kubernetes.io/hostname"
LABEL_OS = "kubernetes.io/os"
LABEL_ARCH = "kubernetes.io/arch"

TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

# Go's GOARCH names, which Kubernetes publishes in kubernetes.io/arch.
_GOARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
}

_NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def host_arch() -> str:
    machine = platform.machine().lower()
    return _GOARCH.get(machine, machine or "amd64")


def default_node_ip() -> str:
    """The address the host name resolves to, else loopback (the kubelet's fallback order)."""
    try:
        addr = socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"
    return addr or "127.0.0.1"


def default_capacity() -> dict[str, str]:
    return {"cpu": "4", "memory": "8Gi", "pods": "110"}


@dataclass(frozen=True)
class TaintSpec:
    """One `--register-with-taints` entry: key=value:Effect (value optional)."""

    key: str
    value: str
    effect: str

    @classmethod
    def parse(cls, text: str) -> TaintSpec:
        """Parse `dedicated=gpu:NoSchedule` or `node-role/master:NoSchedule`."""
        head, sep, effect = text.rpartition(":")
        if not sep or not head:
            raise ConfigError(f"invalid taint {text!r}: expected key[=value]:Effect")
        key, _, value = head.partition("=")
        if effect not in TAINT_EFFECTS:
            raise ConfigError(
                f"invalid taint {text!r}: effect must be one of {', '.join(TAINT_EFFECTS)}"
            )
        if not key:
            raise ConfigError(f"invalid taint {text!r}: empty key")
        return cls(key, value, effect)


@dataclass
class KubeletConfig:
    """Everything a kubelet is told at start: its node, capacity, timings, labels, taints."""

    node_name: str
    node_ip: str = ""  # empty: default_node_ip() at validation
    capacity: dict[str, str] = field(default_factory=default_capacity)
    system_reserved: dict[str, str] = field(default_factory=dict)
    kube_reserved: dict[str, str] = field(default_factory=dict)
    # Extra node labels (--node-labels); the well-known ones are added by node_labels().
    labels: dict[str, str] = field(default_factory=dict)
    register_with_taints: list[TaintSpec] = field(default_factory=list)
    lease_duration_seconds: int = 40
    lease_renew_interval: float = 10.0
    node_status_update_frequency: float = 10.0
    node_status_report_frequency: float = 300.0
    sync_frequency: float = 60.0
    housekeeping_interval: float = 2.0
    kubelet_port: int = 10250  # 0: any free port (several kubelets on one host)
    kubelet_address: str = "0.0.0.0"
    # Pods' volume directories live under <root_dir>/pods/<uid>/volumes (a real runtime only).
    root_dir: str = "/var/lib/kubelet"
    pleg_relist_period: float = 1.0
    crash_backoff_initial: float = 10.0
    crash_backoff_max: float = 300.0
    image_backoff_initial: float = 10.0
    image_backoff_max: float = 300.0
    probe_time_unit: float = 1.0
    # Pods' resolv.conf (kubelet/network_dns.py): the cluster DNS servers and domain.
    cluster_dns: tuple[str, ...] = ()
    cluster_domain: str = "cluster.local"
    # Grace period when a pod names none (Kubernetes' terminationGracePeriodSeconds default).
    default_termination_grace_seconds: int = 30
    # Container log rotation: containerLogMaxSize, -MaxFiles, -MonitorInterval (logrotation.py).
    container_log_max_size: str = "10Mi"
    container_log_max_files: int = 5
    container_log_monitor_interval: float = 10.0

    def validate(self) -> None:
        """Raise ConfigError for values that cannot work; fill in the node IP if missing."""
        if not self.node_name or len(self.node_name) > 253 or not _NODE_NAME.match(self.node_name):
            raise ConfigError(
                f"invalid node name {self.node_name!r}: must be a lowercase RFC 1123 subdomain"
            )
        for name, table in (
            ("capacity", self.capacity),
            ("system-reserved", self.system_reserved),
            ("kube-reserved", self.kube_reserved),
        ):
            for resource, amount in table.items():
                if not quantity.is_valid(amount):
                    raise ConfigError(f"invalid {name} {resource}={amount!r}: not a quantity")
        for interval in (
            self.lease_renew_interval,
            self.node_status_update_frequency,
            self.sync_frequency,
            self.housekeeping_interval,
            self.pleg_relist_period,
            self.crash_backoff_initial,
            self.image_backoff_initial,
            self.probe_time_unit,
            self.container_log_monitor_interval,
        ):
            if interval <= 0:
                raise ConfigError("intervals must be positive")
        if (
            self.crash_backoff_max < self.crash_backoff_initial
            or self.image_backoff_max < self.image_backoff_initial
        ):
            raise ConfigError("a backoff maximum must not be below its initial value")
        if not 0 <= self.kubelet_port <= 65535:
            raise ConfigError(f"invalid kubelet port {self.kubelet_port}")
        if not self.root_dir:
            raise ConfigError("root dir must not be empty")
        if self.lease_duration_seconds <= 0:
            raise ConfigError("lease duration must be positive")
        if self.container_log_max_files <= 1:
            raise ConfigError("invalid configuration: containerLogMaxFiles must be greater than 1")
        self.container_log_max_bytes()
        if not self.node_ip:
            self.node_ip = default_node_ip()

    def container_log_max_bytes(self) -> int:
        """containerLogMaxSize in bytes: "10Mi" -> 10485760 (ConfigError if not a quantity)."""
        text = self.container_log_max_size
        try:
            size = quantity.parse_quantity(text)
        except quantity.QuantityError as exc:
            raise ConfigError(f'failed to parse container log max size "{text}": {exc}') from None
        if size.denominator != 1:
            raise ConfigError(
                f'failed to parse container log max size "{text}": invalid max log size'
            )
        return int(size)

    def allocatable(self) -> dict[str, str]:
        """Capacity minus system- and kube-reserved, per resource (see the module docstring)."""
        out: dict[str, str] = {}
        for resource, amount in self.capacity.items():
            value, fmt = quantity.parse_with_format(amount)
            reserved = Fraction(0)
            for table in (self.system_reserved, self.kube_reserved):
                if resource in table:
                    reserved += quantity.parse_quantity(table[resource])
            if reserved == 0:
                out[resource] = amount
                continue
            left = max(Fraction(0), value - reserved)
            out[resource] = quantity.format_quantity(left, fmt)
        return out

    def node_labels(self) -> dict[str, str]:
        """The well-known labels every kubelet sets, then --node-labels."""
        labels = {
            LABEL_HOSTNAME: self.node_name,
            LABEL_OS: "linux",
            LABEL_ARCH: host_arch(),
        }
        labels.update(self.labels)
        return labels
