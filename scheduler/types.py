"""What the scheduler knows about one pod and one node (pkg/scheduler/framework/types.go).

The scheduling cycle asks the same questions about thousands of nodes per
pod: how much CPU is already requested here, which taints does it carry,
how many pods of this ReplicaSet run on it. Asking them of protobuf
messages would re-parse quantities ("500m", "128Mi") and walk repeated
fields every time. So each object is turned once, when its event arrives,
into a plain record of exactly the facts the plugins read:

* `PodInfo`: the pod's summed requests in integer units (millicores,
  bytes, counts), the "non-zero" requests used for scoring, its tolerations,
  its controller owner, its podAffinity/podAntiAffinity terms parsed
  (topology.py), and flags saying which plugins have anything to do
  for it (a pod without a nodeSelector need not run NodeAffinity).
* `NodeInfo`: the node's allocatable resources, its NoSchedule/NoExecute
  taints, labels, and the running totals of the pods placed on it:
  requested resources, a count of pods per controller owner (for
  spreading), the pods themselves.

Requests, as Kubernetes computes them (resource.PodRequests): per
resource, the larger of the sum over app containers and the largest init
container (init containers run one at a time, before the app containers).
Worked example: containers ask 250m + 250m CPU, one init container 1 CPU
-> the pod requests max(500m, 1000m) = 1000m.

Non-zero requests (scoring only): a container that requests no CPU counts
as 100m and no memory as 200Mi (schedutil.GetNonzeroRequests), so a node
packed with best-effort pods does not look empty to LeastAllocated.

Units: CPU in millicores, everything else in whole units (bytes for memory),
rounded up as Quantity.MilliValue()/Value() do. A quantity that does not
parse counts as zero: validation rejects those before they are stored, and
the scheduler must not crash on one that slipped through.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from apimachinery import quantity
from protos import core_pb2
from scheduler.affinity_terms import PodAffinityInfo

CPU = "cpu"
MEMORY = "memory"
PODS = "pods"

DEFAULT_MILLI_CPU_REQUEST = 100  # schedutil.DefaultMilliCPURequest
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024  # schedutil.DefaultMemoryRequest

TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
NO_SCHEDULE = "NoSchedule"
NO_EXECUTE = "NoExecute"
PREFER_NO_SCHEDULE = "PreferNoSchedule"


def amount(resource: str, text: str) -> int:
    """A quantity in the scheduler's integer unit for `resource` (0 if it does not parse)."""
    try:
        return quantity.milli_value(text) if resource == CPU else quantity.value(text)
    except (quantity.QuantityError, ValueError, ZeroDivisionError):
        return 0


def _container_requests(container: core_pb2.Container) -> dict[str, int]:
    return {k: amount(k, v) for k, v in container.resources.requests.items()}


def pod_requests(spec: core_pb2.PodSpec) -> tuple[dict[str, int], int, int]:
    """(requests by resource, non-zero milli CPU, non-zero memory) of a PodSpec."""
    total: dict[str, int] = {}
    nz_cpu = nz_mem = 0
    for c in spec.containers:
        req = _container_requests(c)
        for k, v in req.items():
            total[k] = total.get(k, 0) + v
        nz_cpu += req.get(CPU) or DEFAULT_MILLI_CPU_REQUEST
        nz_mem += req.get(MEMORY) or DEFAULT_MEMORY_REQUEST
    for c in spec.init_containers:
        req = _container_requests(c)
        for k, v in req.items():
            if v > total.get(k, 0):
                total[k] = v
        nz_cpu = max(nz_cpu, req.get(CPU) or DEFAULT_MILLI_CPU_REQUEST)
        nz_mem = max(nz_mem, req.get(MEMORY) or DEFAULT_MEMORY_REQUEST)
    return total, nz_cpu, nz_mem


@dataclass(frozen=True)
class Toleration:
    """A pod's toleration, as plain strings (v1.Toleration without tolerationSeconds)."""

    key: str
    operator: str  # "Exists" or "Equal" ("" means Equal)
    value: str
    effect: str  # "" tolerates every effect

    def tolerates(self, key: str, value: str, effect: str) -> bool:
        """v1.Toleration.ToleratesTaint."""
        if self.effect and self.effect != effect:
            return False
        if self.key and self.key != key:
            return False
        if self.operator == "Exists":
            return True
        if self.operator in ("", "Equal"):
            return self.value == value
        return False


def tolerates(tolerations: tuple[Toleration, ...], key: str, value: str, effect: str) -> bool:
    """Whether any of `tolerations` tolerates the taint key=value:effect."""
    return any(t.tolerates(key, value, effect) for t in tolerations)


@dataclass(eq=False)
class PodInfo:
    """One pod, pre-digested for the scheduling cycle (framework.PodInfo)."""

    pod: core_pb2.Pod
    key: str
    namespace: str
    name: str
    uid: str
    labels: dict[str, str]
    priority: int
    requests: dict[str, int]
    cpu: int  # milli
    memory: int
    extended: tuple[tuple[str, int], ...]  # requests other than cpu/memory (ephemeral-storage...)
    nz_cpu: int
    nz_memory: int
    owner_uid: str  # the controller ownerReference's uid, "" if none
    tolerations: tuple[Toleration, ...]
    node_name: str  # spec.nodeName: the node it is bound to, or asked for
    has_node_affinity: bool  # nodeSelector or nodeAffinity present
    has_spread_constraints: bool
    affinity: PodAffinityInfo | None = None  # podAffinity / podAntiAffinity, parsed

    @classmethod
    def of(cls, pod: core_pb2.Pod) -> PodInfo:
        meta, spec = pod.metadata, pod.spec
        requests, nz_cpu, nz_mem = pod_requests(spec)
        owner = next((r.uid for r in meta.owner_references if r.controller), "")
        affinity = spec.affinity.node_affinity
        return cls(
            pod=pod,
            key=f"{meta.namespace}/{meta.name}",
            namespace=meta.namespace,
            name=meta.name,
            uid=meta.uid,
            labels=dict(meta.labels),
            priority=spec.priority if spec.HasField("priority") else 0,
            requests=requests,
            cpu=requests.get(CPU, 0),
            memory=requests.get(MEMORY, 0),
            extended=tuple(
                (k, v) for k, v in sorted(requests.items()) if v and k not in (CPU, MEMORY, PODS)
            ),
            nz_cpu=nz_cpu,
            nz_memory=nz_mem,
            owner_uid=owner,
            tolerations=tuple(
                Toleration(t.key, t.operator, t.value, t.effect) for t in spec.tolerations
            ),
            node_name=spec.node_name,
            has_node_affinity=bool(
                spec.node_selector
                or affinity.HasField("required_during_scheduling_ignored_during_execution")
                or len(affinity.preferred_during_scheduling_ignored_during_execution)
            ),
            has_spread_constraints=bool(len(spec.topology_spread_constraints)),
            affinity=PodAffinityInfo.of(pod),
        )


@dataclass(frozen=True)
class Taint:
    """A node's taint, as plain strings (v1.Taint without timeAdded)."""

    key: str
    value: str
    effect: str

    def __str__(self) -> str:
        return f"{{{self.key}: {self.value}}}"


@dataclass(eq=False, slots=True)
class NodeInfo:
    """One node and the pods placed on it, with running totals (framework.NodeInfo).

    `node` is None for a placeholder: pods the informer reported bound to a
    node the cache has not seen yet (events of two informers arrive in any
    order). Placeholders are never offered to the plugins.
    """

    name: str
    node: core_pb2.Node | None = None
    labels: dict[str, str] = field(default_factory=dict)
    unschedulable: bool = False
    taints: tuple[Taint, ...] = ()  # NoSchedule and NoExecute: the filter's concern
    prefer_no_schedule: tuple[Taint, ...] = ()  # the score's concern
    allocatable: dict[str, int] = field(default_factory=dict)
    alloc_cpu: int = 0
    alloc_memory: int = 0
    alloc_pods: int = 0
    # running totals of the pods on this node
    requested: dict[str, int] = field(default_factory=dict)
    req_cpu: int = 0
    req_memory: int = 0
    nz_cpu: int = 0
    nz_memory: int = 0
    pod_count: int = 0
    # derived for the score plugins' inner loops (kept current by the methods below)
    free_nz_cpu: int = 0  # alloc_cpu - nz_cpu
    free_nz_memory: int = 0
    inv_cpu: float = 0.0  # 1 / alloc_cpu (0 when the node has none)
    inv_memory: float = 0.0
    # every number the resource scores read, as one string (hashed once, when it changes):
    # nodes with equal `res_key` score alike for a pod, so a score is computed once per key
    res_key: str = ""
    pods: dict[str, PodInfo] = field(default_factory=dict)
    owners: Counter[str] = field(default_factory=Counter)
    generation: int = 0

    def set_node(self, node: core_pb2.Node) -> None:
        status = node.status
        alloc_src = status.allocatable or status.capacity
        self.node = node
        self.labels = dict(node.metadata.labels)
        self.unschedulable = node.spec.unschedulable
        taints = [Taint(t.key, t.value, t.effect) for t in node.spec.taints]
        self.taints = tuple(t for t in taints if t.effect in (NO_SCHEDULE, NO_EXECUTE))
        self.prefer_no_schedule = tuple(t for t in taints if t.effect == PREFER_NO_SCHEDULE)
        self.allocatable = {k: amount(k, v) for k, v in alloc_src.items()}
        self.alloc_cpu = self.allocatable.get(CPU, 0)
        self.alloc_memory = self.allocatable.get(MEMORY, 0)
        self.alloc_pods = self.allocatable.get(PODS, 0)
        self.inv_cpu = 1.0 / self.alloc_cpu if self.alloc_cpu else 0.0
        self.inv_memory = 1.0 / self.alloc_memory if self.alloc_memory else 0.0
        self._derive()

    def _derive(self) -> None:
        self.free_nz_cpu = self.alloc_cpu - self.nz_cpu
        self.free_nz_memory = self.alloc_memory - self.nz_memory
        self.pod_count = len(self.pods)
        self.res_key = (
            f"{self.alloc_cpu},{self.alloc_memory},{self.req_cpu},{self.req_memory},"
            f"{self.nz_cpu},{self.nz_memory}"
        )
        self.generation += 1

    def add_pod(self, info: PodInfo) -> None:
        if info.key in self.pods:
            self.remove_pod(info.key)
        self.pods[info.key] = info
        for k, v in info.requests.items():
            self.requested[k] = self.requested.get(k, 0) + v
        self.req_cpu += info.cpu
        self.req_memory += info.memory
        self.nz_cpu += info.nz_cpu
        self.nz_memory += info.nz_memory
        if info.owner_uid:
            self.owners[info.owner_uid] += 1
        self._derive()

    def remove_pod(self, key: str) -> PodInfo | None:
        info = self.pods.pop(key, None)
        if info is None:
            return None
        for k, v in info.requests.items():
            self.requested[k] = self.requested.get(k, 0) - v
        self.req_cpu -= info.cpu
        self.req_memory -= info.memory
        self.nz_cpu -= info.nz_cpu
        self.nz_memory -= info.nz_memory
        if info.owner_uid:
            self.owners[info.owner_uid] -= 1
            if self.owners[info.owner_uid] <= 0:
                del self.owners[info.owner_uid]
        self._derive()
        return info
