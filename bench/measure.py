"""What both pod-startup benchmarks measure the same way: "Running" and percentiles.

bench/pod_startup.py times one kubelet; its `--local-cluster` mode
(bench/pod_startup_cluster.py) times a whole `tinykube up` cluster. Their
figures are printed side by side in docs/performance.md, so they must mean
the same thing, and the two definitions they share live here, where both
import them (the single-node bench only hands its `--local-cluster` flag on to
the cluster bench).

Running, as a user sees it: the pod's phase is Running AND every container
reports state.running. The phase alone is not enough: Kubernetes calls a pod
Running once all its containers are created and at least one is running or
still starting, so a pod with one container up and another not yet started is
Running already. A pod whose containerStatuses are still empty is not
running either, whatever its phase says.

Percentiles are nearest-rank: the smallest value with at least q% of the
values at or below it, always one of the samples (no interpolation). Worked
example with 30 samples sorted ascending, s[1] .. s[30]:

    p50: rank ceil(0.50 * 30) = 15   -> s[15]
    p90: rank ceil(0.90 * 30) = 27   -> s[27]
    p99: rank ceil(0.99 * 30) = 30   -> s[30], the slowest

so with fewer than 100 samples p99 is the maximum: an honest figure for a
small run, never better than what was seen.
"""

from __future__ import annotations

import math

from protos import core_pb2


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q% of the values at or below."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def is_running(pod: core_pb2.Pod) -> bool:
    """Phase Running and every container running (see the module docstring)."""
    statuses = pod.status.container_statuses
    return (
        pod.status.phase == "Running"
        and bool(statuses)
        and all(s.state.HasField("running") for s in statuses)
    )
