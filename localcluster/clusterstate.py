"""A local cluster's directory and state file: what `tinykube up` made, for `down` and the CLI.

kind keeps a cluster's facts in Docker (container labels) and in kubeconfig;
tinykube's namespace nodes have no daemon that could remember them, so `up`
writes them down as it goes, and every later command -- `down`, `status`,
`node-shell`, and the CLI looking for its server -- reads them back:

    /var/lib/tinykube/clusters/               ($TINYKUBE_CLUSTERS_DIR overrides it)
        current                               the name of the most recent cluster
        <name>/
            state.json                        this module's ClusterState
            api.sock                          the API server's socket for the host's CLI
            api-node2.sock, api-node3.sock    with --control-planes 3: the others' sockets
            logs/<component>.log              one log per process (apiserver, node1-kubelet, ...)
            apiserver/                        the API server's SQLite store
            registry/                         the image mirror's storage
            node1/, node2/                    each node's directories (nodeconfig.NodePaths.under)

state.json, written atomically (temporary file + rename) after every process
`up` starts, so a crash half-way leaves a file that still names everything
made so far:

    {"name": "demo", "runtime": "containerd", "prefix": "tk-demo",
     "subnet": "10.201.0.0/24", "created": 1700000000.0, "nodes": ["node1", "node2"],
     "namespaces": ["tk-demo-ul", "tk-demo-node1", "tk-demo-node2"],
     "server": "10.201.0.11:6443", "socket": "/var/lib/tinykube/clusters/demo/api.sock",
     "fast_failover": false, "control_planes": 1,
     "processes": {"node1-kubelet": {"pid": 4242, "start_time": 123456, "node": "node1",
                   "argv": [...], "log": ".../logs/node1-kubelet.log"}, ...}}

Process identity. A pid alone may be reused after a crash and a reboot; each
record also keeps the process's start time (field 22 of /proc/PID/stat, in
clock ticks since boot), and a process counts as ours only when both match.
So `down` never signals a stranger that happens to hold an old pid.

Names. A cluster name is 1-20 characters of [a-z0-9] (a dash inside is
allowed), because it becomes part of namespace names (`tk-<name>-node1`).
The namespace prefix is matched exactly (`tk-<name>-ul`, `tk-<name>-node<N>`),
so cluster "a" never claims the namespaces of cluster "a-2".
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_ROOT = "/var/lib/tinykube/clusters"
ENV_ROOT = "TINYKUBE_CLUSTERS_DIR"
DEFAULT_NAME = "tinykube"
STATE_FILE = "state.json"
CURRENT_FILE = "current"

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?$")


class ClusterStateError(RuntimeError):
    """A cluster name is unusable, or its state file is missing or unreadable."""


def validate_name(name: str) -> str:
    if not _NAME.match(name):
        raise ClusterStateError(
            f"cluster name {name!r} must be 1-20 characters of a-z, 0-9 and '-' (not at either end)"
        )
    return name


def clusters_root(env: Mapping[str, str] | None = None) -> Path:
    """$TINYKUBE_CLUSTERS_DIR (from `env`, else the process's), else /var/lib/tinykube/clusters."""
    env = os.environ if env is None else env
    return Path(env.get(ENV_ROOT) or os.environ.get(ENV_ROOT) or DEFAULT_ROOT)


def cluster_dir(name: str, env: Mapping[str, str] | None = None) -> Path:
    return clusters_root(env) / validate_name(name)


def namespace_prefix(name: str) -> str:
    """`demo` -> `tk-demo`: the prefix of every namespace of the cluster."""
    return f"tk-{validate_name(name)}"


def owns_namespace(prefix: str, namespace: str) -> bool:
    """Whether `namespace` is one `tinykube up` made for the cluster with this prefix."""
    return re.fullmatch(re.escape(prefix) + r"-(ul|node[0-9]+)", namespace) is not None


def process_start_time(pid: int, zombie_ok: bool = False) -> int:
    """Field 22 of /proc/PID/stat (start time in ticks since boot); 0 when there is no such pid.

    A zombie counts as no process, unless `zombie_ok` (recording a child that died at once).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat.rsplit(")", 1)[-1].split()
    if fields and fields[0] == "Z" and not zombie_ok:  # a zombie is as good as dead
        return 0
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return 0


@dataclass
class ProcessRecord:
    """One process `up` started: enough to find it, check it, stop it and read its log."""

    pid: int
    start_time: int
    argv: list[str]
    log: str
    node: str = ""  # "" for the cluster-wide ones (registry, apiserver)

    def alive(self) -> bool:
        return (
            self.pid > 0 and self.start_time > 0 and process_start_time(self.pid) == self.start_time
        )

    def rss_kib(self) -> int:
        """The process's resident memory (VmRSS) in KiB; 0 when unknown."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            pass
        return 0


@dataclass
class ClusterState:
    """Everything `up` made; `save()` after each step."""

    name: str
    runtime: str = "containerd"
    subnet: str = "10.201.0.0/24"
    created: float = field(default_factory=time.time)
    nodes: list[str] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    server: str = ""  # the API server as the nodes reach it (HOST:PORT)
    fast_failover: bool = False
    processes: dict[str, ProcessRecord] = field(default_factory=dict)
    root: str = ""  # clusters_root() when created; "" = the default
    control_planes: int = 1  # nodes running etcd + a control plane (localcluster/stacked.py)

    @property
    def directory(self) -> Path:
        base = Path(self.root) if self.root else clusters_root()
        return base / self.name

    @property
    def prefix(self) -> str:
        return namespace_prefix(self.name)

    @property
    def socket(self) -> Path:
        return self.directory / "api.sock"

    @property
    def sockets(self) -> list[Path]:
        """Each API server's socket for the host: api.sock (node1's), api-node2.sock, ..."""
        others = self.nodes[1 : self.control_planes]
        return [self.socket, *(self.directory / f"api-{n}.sock" for n in others)]

    @property
    def client_address(self) -> str:
        """Where the host's CLI reaches the API server (no host address needed); with
        several control planes, every server's socket, comma-separated (the client fails
        over between them)."""
        return ",".join(f"unix:{s}" for s in self.sockets)

    @property
    def log_dir(self) -> Path:
        return self.directory / "logs"

    @property
    def path(self) -> Path:
        return self.directory / STATE_FILE

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["prefix"] = self.prefix
        data["socket"] = str(self.socket)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClusterState:
        try:
            processes = {
                key: ProcessRecord(**value) for key, value in dict(data["processes"]).items()
            }
            return cls(
                name=str(data["name"]),
                runtime=str(data.get("runtime", "containerd")),
                subnet=str(data.get("subnet", "10.201.0.0/24")),
                created=float(data.get("created", 0.0)),
                nodes=[str(n) for n in data.get("nodes", [])],
                namespaces=[str(n) for n in data.get("namespaces", [])],
                server=str(data.get("server", "")),
                fast_failover=bool(data.get("fast_failover", False)),
                processes=processes,
                root=str(data.get("root", "")),
                control_planes=int(data.get("control_planes", 1)),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ClusterStateError(f"state file is malformed: {err}") from None

    def save(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{STATE_FILE}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n")
        tmp.replace(self.path)


def load(name: str, env: Mapping[str, str] | None = None) -> ClusterState:
    """The state of cluster `name`; ClusterStateError naming the file if there is none."""
    path = cluster_dir(name, env) / STATE_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ClusterStateError(f"no cluster named {name!r} ({path} does not exist)") from None
    except OSError as err:
        raise ClusterStateError(f"cannot read {path}: {err.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ClusterStateError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ClusterStateError(f"{path} is not a JSON object")
    state = ClusterState.from_json(data)
    if not state.root:
        state.root = str(clusters_root(env))
    return state


def list_clusters(env: Mapping[str, str] | None = None) -> list[str]:
    """Names of clusters with a state file, oldest first."""
    root = clusters_root(env)
    if not root.is_dir():
        return []
    found = [p.parent for p in root.glob(f"*/{STATE_FILE}") if _NAME.match(p.parent.name)]
    return [p.name for p in sorted(found, key=lambda d: (d / STATE_FILE).stat().st_mtime)]


def set_current(name: str, env: Mapping[str, str] | None = None) -> None:
    root = clusters_root(env)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{CURRENT_FILE}.tmp"
    tmp.write_text(validate_name(name) + "\n")
    tmp.replace(root / CURRENT_FILE)


def current(env: Mapping[str, str] | None = None) -> str:
    """The most recent cluster (the `current` file), "" if none or if it is gone.

    Only `tinykube up` sets it (tests' clusters do not), so a test run never
    redirects a user's CLI.
    """
    root = clusters_root(env)
    try:
        name = (root / CURRENT_FILE).read_text().strip()
    except OSError:
        return ""
    if name and _NAME.match(name) and (root / name / STATE_FILE).exists():
        return name
    return ""


def clear_current(name: str, env: Mapping[str, str] | None = None) -> None:
    """Forget `name` as the current cluster (after `down`)."""
    path = clusters_root(env) / CURRENT_FILE
    with contextlib.suppress(OSError):
        if path.read_text().strip() == name:
            path.unlink()
