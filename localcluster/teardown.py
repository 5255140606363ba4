"""Deleting a local cluster: everything `tinykube up` made, even after a crash (kind delete).

`down` cannot rely on anything being alive: after `kill -9` of every process
the state file (localcluster.clusterstate) and the exact namespace names
(`tk-<name>-ul`, `tk-<name>-node<N>`) are all there is. Every step below is
idempotent and runs whatever the previous one managed, in this order:

1. the kubelets (each with its network agent), all nodes at once (SIGTERM to
   each process group, SIGKILL after 10 s): nothing restarts or rewires pods
   from here on;
2. each node's runtime, all nodes at once (LocalNode.stop_runtime): through
   the runtime's API if it answers, stop and remove the pods (CNI DEL frees
   their addresses); stop the daemon; kill the shims and runc containers it
   left, found by its socket path and runc root; unmount what it mounted;
3. with several control planes, the schedulers and controller-managers; then
   the API server(s), the etcd members and the registry;
4. any process still inside one of the cluster's namespaces, found by
   comparing /proc/PID/ns/net with the namespace's inode -- only what the
   cluster started can be there (a `node-shell` someone left open, a CNI
   plugin caught mid-call);
5. the namespaces: `ip netns del` takes their links, addresses, routes,
   VXLAN devices and nftables tables with them, so nothing of the network
   needs undoing one by one;
6. every mount left under the cluster directory (deepest first), then the
   directory itself (but logs/ when asked to keep it).

Equivalent commands for node1 of cluster "demo":

    kill -TERM -<kubelet pid>
    crictl -r unix:///var/lib/tinykube/clusters/demo/node1/containerd/containerd.sock rmp -af
    kill -TERM -<containerd pid>
    kill -TERM -<apiserver pid> -<registry pid>
    ip netns pids tk-demo-node1 | xargs -r kill -KILL
    ip netns del tk-demo-node1
    umount -l <each mount under the cluster dir>; rm -rf /var/lib/tinykube/clusters/demo
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from localcluster import clusterstate
from localcluster.clusterstate import ClusterState
from localcluster.containerd import unmount_under
from localcluster.netns import NETNS_DIR, NetNS
from localcluster.node import LocalNode, stop_process

log = logging.getLogger(__name__)
CONTROL = ("-scheduler", "-controller-manager")  # stopped before the API servers


def _all_at_once(calls: Sequence[Callable[[], Any]]) -> None:
    """Run the calls in parallel threads; a failure is logged, the others go on."""

    def guarded(call: Callable[[], Any]) -> None:
        try:
            call()
        except Exception as err:
            log.warning("teardown step failed", extra={"error": str(err)})

    if calls:
        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            list(pool.map(guarded, calls))


def delete_cluster(state: ClusterState, nodes: Sequence[LocalNode], keep_logs: bool) -> None:
    """The module docstring's steps for the cluster described by `state`."""
    records = state.processes
    kubelets = [records[k] for k in (f"{n.name}-kubelet" for n in nodes) if k in records]
    _all_at_once([partial(stop_process, r, 10.0) for r in kubelets])
    _all_at_once([partial(n.stop_runtime, records.get(n.key(n.runtime_component))) for n in nodes])
    node_keys = {f"{n.name}-{part}" for n in nodes for part in ("kubelet", n.runtime_component)}
    control = [r for k, r in records.items() if k not in node_keys and k.endswith(CONTROL)]
    _all_at_once([partial(stop_process, r, 10.0) for r in control])
    servers = [r for k, r in records.items() if k not in node_keys and not k.endswith(CONTROL)]
    _all_at_once([partial(stop_process, r, 10.0) for r in servers])
    owned = {ns for ns in namespaces() if clusterstate.owns_namespace(state.prefix, ns)}
    names = sorted(set(state.namespaces) | owned)
    kill_processes_in(names)
    for name in names:
        NetNS(name).delete()
    directory = state.directory
    unmount_under(directory)
    if keep_logs and directory.is_dir():
        for child in directory.iterdir():
            if child == state.log_dir:
                continue
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
    else:
        shutil.rmtree(directory, ignore_errors=True)


def namespaces() -> list[str]:
    """Every named network namespace on the host (/run/netns)."""
    return sorted(p.name for p in NETNS_DIR.iterdir()) if NETNS_DIR.is_dir() else []


def kill_processes_in(names: Sequence[str]) -> list[int]:
    """SIGKILL every process whose network namespace is one of `names`; their pids."""
    inodes = set()
    for name in names:
        with contextlib.suppress(OSError):
            inodes.add(os.stat(NETNS_DIR / name).st_ino)
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            inode = os.stat(entry / "ns" / "net").st_ino
        except OSError:
            continue
        if inode in inodes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
                log.info("killed process left in a namespace", extra={"pid": entry.name})
    return killed
