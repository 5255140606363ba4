"""The scheduler's cache of nodes and the pods on them, and the snapshot a cycle reads.

Kubernetes' scheduler keeps its own cache (pkg/scheduler/internal/cache),
fed by the pod and node informers, holding one NodeInfo per node with the
running totals of what the pods on it request. It is updated incrementally:
a pod bound to node1 adds its requests to node1's totals once, when the
event arrives, instead of every cycle summing every pod.

Assumed pods. Binding is asynchronous: as soon as a cycle picks node1, the
pod is *assumed* onto node1 in the cache, and the next cycle (maybe a
sibling replica) already sees node1 as fuller -- long before the Binding
write returns and the informer reports the pod bound. Then:

    assume(web-1, node1)   cache: node1 has web-1 (assumed)
    informer: web-1 bound  cache: node1 has web-1 (confirmed; nothing added twice)
    or bind fails          forget(web-1): node1 no longer has it

If the informer reports the pod on a different node than assumed (another
scheduler won), the confirmed placement replaces the assumed one.

Snapshot. Kubernetes copies the changed NodeInfos into a per-cycle snapshot
because its cycle runs concurrently with the informers' goroutines. Here the
cycle is synchronous code on the event loop: between taking the snapshot and
assuming the pod it never awaits, so no informer handler can run and change
the cache under it. The snapshot is therefore a view, not a copy: the list
of NodeInfos (rebuilt only when nodes come or go) and a dict by name. That
is what lets a cycle over 5000 nodes start in microseconds.

Topology counts. Beside the NodeInfos the cache keeps a TopologyIndex
(topology.py): pods matching a selector per domain of a node label, and
placed pods' affinity terms per domain. `_place`/`_unplace` keep it current;
a node added, removed or relabelled makes it recount on next use.

Placeholders: a pod can be reported on a node the node informer has not
delivered yet; its NodeInfo exists with `node=None` and is left out of the
snapshot until the Node arrives.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from protos import core_pb2
from scheduler.topology import TopologyIndex
from scheduler.types import NodeInfo, PodInfo

log = logging.getLogger(__name__)


class Snapshot:
    """The nodes one scheduling cycle considers (a read-only view; see the module notes)."""

    def __init__(
        self,
        node_infos: list[NodeInfo],
        by_name: dict[str, NodeInfo],
        *,
        tainted: int | None = None,
        prefer_no_schedule: int | None = None,
        topology: TopologyIndex | None = None,
        placed: Mapping[str, object] | None = None,
    ) -> None:
        self.node_infos = node_infos
        self._by_name = by_name
        # pods per topology domain, kept by the cache (topology.py); a bare snapshot gets
        # its own index over its nodes
        self.topology = topology if topology is not None else TopologyIndex(by_name)
        self._placed = placed
        # how many nodes carry NoSchedule/NoExecute taints, and PreferNoSchedule ones:
        # when none do, TaintToleration has nothing to check for any pod (PreFilter Skip)
        if tainted is None:
            tainted = sum(1 for n in node_infos if n.taints)
        if prefer_no_schedule is None:
            prefer_no_schedule = sum(1 for n in node_infos if n.prefer_no_schedule)
        self.tainted = tainted
        self.prefer_no_schedule = prefer_no_schedule

    def is_placed(self, key: str) -> bool:
        """Whether the pod `namespace/name` is on some node of the cache (bound or assumed)."""
        if self._placed is not None:
            return key in self._placed
        return any(key in ni.pods for ni in self._by_name.values())

    def get(self, name: str) -> NodeInfo | None:
        info = self._by_name.get(name)
        return info if info is not None and info.node is not None else None

    def __len__(self) -> int:
        return len(self.node_infos)

    def __iter__(self) -> Iterator[NodeInfo]:
        return iter(self.node_infos)

    @classmethod
    def build(cls, nodes: Iterable[core_pb2.Node], pods: Iterable[core_pb2.Pod]) -> Snapshot:
        """A standalone snapshot of some Nodes and the (bound) Pods on them."""
        cache = Cache()
        for node in nodes:
            cache.add_node(node)
        for pod in pods:
            if pod.spec.node_name:
                cache.add_pod(pod)
        return cache.snapshot()


@dataclass
class _PodState:
    """Where the cache has placed one pod, and whether only by assumption."""

    info: PodInfo
    node: str
    assumed: bool


def is_terminal(pod: core_pb2.Pod) -> bool:
    """A pod that has finished (Succeeded or Failed) holds no resources."""
    return pod.status.phase in ("Succeeded", "Failed")


class Cache:
    """NodeInfos kept current from informer events plus the scheduler's own assumptions."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self._pods: dict[str, _PodState] = {}
        self._list: list[NodeInfo] | None = None
        self._tainted = 0
        self._prefer = 0
        self.topology = TopologyIndex(self.nodes)

    # ---- nodes ------------------------------------------------------------------------------

    def add_node(self, node: core_pb2.Node) -> NodeInfo:
        name = node.metadata.name
        info = self.nodes.get(name)
        if info is None:
            info = self.nodes[name] = NodeInfo(name)
        before = (info.taints, info.prefer_no_schedule)
        old_labels = info.labels
        if info.node is None:
            self._list = None
            self.topology.nodes_changed()
        info.set_node(node)
        if info.labels != old_labels:
            self.topology.nodes_changed()  # domains moved: recount on next use
        if (info.taints, info.prefer_no_schedule) != before:
            self._list = None  # recount the tainted nodes
        return info

    update_node = add_node

    def remove_node(self, name: str) -> None:
        info = self.nodes.get(name)
        if info is None:
            return
        self._list = None
        self.topology.nodes_changed()
        if info.pods:
            info.node = None  # pods still point here until their own deletes arrive
        else:
            del self.nodes[name]

    # ---- pods -------------------------------------------------------------------------------

    def _place(self, info: PodInfo, node: str, assumed: bool) -> None:
        ni = self.nodes.get(node)
        if ni is None:
            ni = self.nodes[node] = NodeInfo(node)
        ni.add_pod(info)
        self.topology.pod_added(info, ni)
        self._pods[info.key] = _PodState(info, node, assumed)

    def _unplace(self, key: str) -> _PodState | None:
        state = self._pods.pop(key, None)
        if state is None:
            return None
        ni = self.nodes.get(state.node)
        if ni is not None:
            ni.remove_pod(key)
            self.topology.pod_removed(state.info, ni)
            if ni.node is None and not ni.pods:
                del self.nodes[state.node]
        return state

    def add_pod(self, pod: core_pb2.Pod) -> None:
        """A pod the informer reports bound (confirms an assumed pod)."""
        if is_terminal(pod):
            self.remove_pod(pod)  # finished pods hold no resources
            return
        meta = pod.metadata
        state = self._pods.get(f"{meta.namespace}/{meta.name}")
        if (
            state is not None
            and state.assumed
            and state.node == pod.spec.node_name
            and state.info.uid == meta.uid
            and state.info.labels == meta.labels
        ):
            # The Binding we assumed came back: confirm it. Its spec is what we scheduled
            # (a pod's spec is immutable but for what the scheduler does not count), so the
            # digest is reused, not parsed again (Kubernetes' cache confirms the same way).
            state.info.pod, state.info.node_name = pod, pod.spec.node_name
            state.assumed = False
            return
        info = PodInfo.of(pod)
        self._unplace(info.key)
        self._place(info, pod.spec.node_name, assumed=False)

    update_pod = add_pod

    def remove_pod(self, pod: core_pb2.Pod) -> None:
        self._unplace(f"{pod.metadata.namespace}/{pod.metadata.name}")

    def assume_pod(self, info: PodInfo, node: str) -> None:
        """Count `info` on `node` now, before the Binding is written."""
        self._unplace(info.key)
        self._place(info, node, assumed=True)

    def forget_pod(self, key: str) -> None:
        """Undo assume_pod after a failed Binding (a confirmed placement is kept)."""
        state = self._pods.get(key)
        if state is not None and state.assumed:
            self._unplace(key)

    def is_assumed(self, key: str) -> bool:
        state = self._pods.get(key)
        return state is not None and state.assumed

    def pod_node(self, key: str) -> str | None:
        state = self._pods.get(key)
        return state.node if state is not None else None

    def pod_count(self) -> int:
        return len(self._pods)

    # ---- snapshot ---------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        if self._list is None:
            self._list = [ni for ni in self.nodes.values() if ni.node is not None]
            self._tainted = sum(1 for n in self._list if n.taints)
            self._prefer = sum(1 for n in self._list if n.prefer_no_schedule)
        return Snapshot(
            self._list,
            self.nodes,
            tainted=self._tainted,
            prefer_no_schedule=self._prefer,
            topology=self.topology,
            placed=self._pods,
        )
