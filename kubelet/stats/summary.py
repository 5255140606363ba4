"""From a collection of readings to the Summary message (stats/v1alpha1's shape).

The provider (provider.py) reads numbers; this module only arranges them, so
it is a pure function and easy to test. The layout, as Kubernetes' Summary:

    Summary
      node: NodeStats      node_name, scope, start_time, cpu, memory,
                           system_containers [kubelet, runtime, misc, pods]
      pods: [PodStats]     pod_ref {name, namespace, uid}, start_time,
                           containers [ContainerStats {name, cpu, memory}],
                           cpu and memory: the sum of its containers

Each CPUStats carries the cumulative usageCoreNanoSeconds of the reading and,
once the rate tracker has two readings of that key, usageNanoCores with the
window it spans. MemoryStats carries usage, working set and rss, and for the
node only, availableBytes (capacity less the working set) where the capacity
is known (a machine node).

Pods come sorted by namespace and name, containers by name, so two Summaries
of the same node read alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from google.protobuf import duration_pb2, timestamp_pb2

from kubelet.stats.cgroups import ZERO_MEMORY, MemoryUsage
from kubelet.stats.rates import Rate
from protos import metrics_pb2


@dataclass(frozen=True)
class PodKey:
    namespace: str
    name: str
    uid: str


@dataclass(frozen=True)
class Sample:
    """Cumulative CPU (ns) and memory of something at one reading."""

    cpu_ns: int
    memory: MemoryUsage
    available: int | None = None  # the node's availableBytes, when its capacity is known

    def __add__(self, other: Sample) -> Sample:
        return Sample(self.cpu_ns + other.cpu_ns, self.memory + other.memory)


@dataclass(frozen=True)
class ContainerSample:
    """One running container's reading."""

    id: str
    pod: PodKey
    name: str
    started_at: float
    cpu_ns: int
    memory: MemoryUsage


def timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromNanoseconds(round(seconds * 1e9))
    return out


def duration(seconds: float) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromNanoseconds(round(seconds * 1e9))
    return out


def cpu_stats(at: float, cpu_ns: int, rate: Rate | None) -> metrics_pb2.CPUStats:
    out = metrics_pb2.CPUStats(time=timestamp(at), usage_core_nano_seconds=cpu_ns)
    if rate is not None:
        out.usage_nano_cores = rate.nano_cores
        out.window.CopyFrom(duration(rate.window))
    return out


def memory_stats(
    at: float, memory: MemoryUsage, available: int | None = None
) -> metrics_pb2.MemoryStats:
    out = metrics_pb2.MemoryStats(
        time=timestamp(at),
        usage_bytes=memory.usage_bytes,
        working_set_bytes=memory.working_set_bytes,
        rss_bytes=memory.rss_bytes,
    )
    if available is not None:
        out.available_bytes = available
    return out


RateOf = Callable[[str], "Rate | None"]


def _pod_stats(
    pod: PodKey, samples: list[ContainerSample], at: float, started: float, rate_of: RateOf
) -> metrics_pb2.PodStats:
    out = metrics_pb2.PodStats(
        pod_ref=metrics_pb2.PodReference(name=pod.name, namespace=pod.namespace, uid=pod.uid)
    )
    if started:
        out.start_time.CopyFrom(timestamp(started))
    cpu, memory = 0, ZERO_MEMORY
    for sample in sorted(samples, key=lambda s: s.name):
        out.containers.append(
            metrics_pb2.ContainerStats(
                name=sample.name,
                start_time=timestamp(sample.started_at),
                cpu=cpu_stats(at, sample.cpu_ns, rate_of(f"container/{sample.id}")),
                memory=memory_stats(at, sample.memory),
            )
        )
        cpu, memory = cpu + sample.cpu_ns, memory + sample.memory
    out.cpu.CopyFrom(cpu_stats(at, cpu, rate_of(f"pod/{pod.uid}")))
    out.memory.CopyFrom(memory_stats(at, memory))
    return out


@dataclass
class Collection:
    """One pass over the node: the containers, the node, its system parts."""

    time: float
    node: Sample
    systems: dict[str, Sample] = field(default_factory=dict)
    containers: list[ContainerSample] = field(default_factory=list)
    pod_started: dict[str, float] = field(default_factory=dict)
    boot_time: float = 0.0  # the node's start time (Unix seconds; 0 unknown)


def build_summary(
    node_name: str, scope: str, collection: Collection, rate_of: RateOf
) -> metrics_pb2.Summary:
    """The Summary message of one collection, with the rates `rate_of(key)` knows."""
    at = collection.time
    node = metrics_pb2.NodeStats(
        node_name=node_name,
        scope=scope,
        cpu=cpu_stats(at, collection.node.cpu_ns, rate_of("node")),
        memory=memory_stats(at, collection.node.memory, collection.node.available),
    )
    if collection.boot_time:
        node.start_time.CopyFrom(timestamp(collection.boot_time))
    for name, system in collection.systems.items():
        node.system_containers.append(
            metrics_pb2.ContainerStats(
                name=name,
                cpu=cpu_stats(at, system.cpu_ns, rate_of(f"system/{name}")),
                memory=memory_stats(at, system.memory),
            )
        )
    by_pod: dict[PodKey, list[ContainerSample]] = {}
    for sample in collection.containers:
        by_pod.setdefault(sample.pod, []).append(sample)
    summary = metrics_pb2.Summary(node=node)
    for pod in sorted(by_pod, key=lambda p: (p.namespace, p.name, p.uid)):
        started = collection.pod_started.get(pod.uid, 0.0)
        summary.pods.append(_pod_stats(pod, by_pod[pod], at, started, rate_of))
    return summary
