"""Explain a placement on today's state: `tinykube explain-placement pod/web-x [--node node3]`.

The placement record (record.py) says why the scheduler chose as it did *at
the time*. A user asking "why not node3?" an hour later wants the answer
for the cluster as it is now: node3 may have been cordoned, filled up, or
tainted since. `explain` re-runs the same framework, locally, on Nodes and
Pods just listed from the API server, with two differences from a real
cycle, both to answer the question fully:

* every Filter is run on every node asked about, not only up to the first
  rejection, so all the reasons a node is unfit are shown at once;
* no sampling: every node is filtered, and the feasible ones scored, so a
  node's score and rank are against the whole cluster.

The pod is evaluated as if it were pending: its own current placement is
left out of the node totals, and a nodeName that a scheduler wrote (by
binding) is not treated as a request for that node.

Output, one block per node:

    pod default/web-x (bound to node1), on 3 nodes now
    node3: rejected
      Filter NodeUnschedulable: rejected (UnschedulableAndUnresolvable): node(s) were unschedulable
      Filter NodeName: skipped (nothing to check for this pod)
      Filter TaintToleration: passed
      ...
    node1: feasible, total 397 (rank 1 of 2 feasible)
      ...
      Score NodeResourcesLeastAllocated: 97 x 1 = 97
      Score SelectorSpread: 100 x 2 = 200
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from protos import core_pb2
from scheduler.framework import CycleState, Framework, Scores, Status
from scheduler.plugins import new_framework
from scheduler.snapshot import Snapshot, is_terminal
from scheduler.types import NodeInfo, PodInfo


def explain(
    pod: core_pb2.Pod,
    nodes: list[core_pb2.Node],
    pods: list[core_pb2.Pod],
    node_name: str | None = None,
    *,
    services: Iterable[core_pb2.Service] = (),
    framework: Framework | None = None,
) -> list[str]:
    """Every plugin's verdict (and score) for `pod` on `node_name`, or on every node."""
    services = list(services)
    fwk = framework or new_framework(lambda: services)
    key = (pod.metadata.namespace, pod.metadata.name)
    others = [
        p
        for p in pods
        if (p.metadata.namespace, p.metadata.name) != key
        and p.spec.node_name
        and not is_terminal(p)
    ]
    snapshot = Snapshot.build(nodes, others)
    info = PodInfo.of(pod)
    bound = pod.spec.node_name
    if bound:
        info = dataclasses.replace(info, node_name="")
    where = f" (bound to {bound})" if bound else " (pending)"
    lines = [
        f"pod {pod.metadata.namespace}/{pod.metadata.name}{where}, on {len(snapshot)} nodes now"
    ]
    if node_name is not None and snapshot.get(node_name) is None:
        lines.append(f'node "{node_name}" not found')
        return lines
    state = CycleState()
    pre = fwk.run_pre_filter(state, info, snapshot)
    if pre is not None:
        lines.append(
            f"PreFilter {pre.plugin}: {pre.code.title}: {pre.message} (this rejects every node)"
        )
    verdicts = {n.name: fwk.run_each_filter(state, info, n) for n in snapshot}
    feasible = [
        n for n in snapshot if pre is None and all(st is None for _, st in verdicts[n.name])
    ]
    scores = fwk.run_score(state, info, feasible, snapshot) if feasible else None
    targets = [snapshot.get(node_name)] if node_name is not None else list(snapshot)
    for node in targets:
        assert node is not None
        lines.extend(_node_lines(fwk, state, node, verdicts[node.name], feasible, scores))
    return lines


def _node_lines(
    fwk: Framework,
    state: CycleState,
    node: NodeInfo,
    verdicts: list[tuple[str, Status | None]],
    feasible: list[NodeInfo],
    scores: Scores | None,
) -> list[str]:
    out: list[str] = []
    if node in feasible and scores is not None:
        i = feasible.index(node)
        total = scores.totals[i]
        rank = 1 + sum(1 for t in scores.totals if t > total)
        ranked = f"rank {rank} of {len(feasible)} feasible"
        out.append(f"{node.name}: feasible, total {total} ({ranked})")
    else:
        out.append(f"{node.name}: rejected")
    for name, st in verdicts:
        if name in state.skip_filter:
            out.append(f"  Filter {name}: skipped (nothing to check for this pod)")
        elif st is None:
            out.append(f"  Filter {name}: passed")
        else:
            out.append(f"  Filter {name}: rejected ({st.code.title}): {st.message}")
    if node in feasible and scores is not None:
        i = feasible.index(node)
        for p in fwk.score_plugins:
            weight = fwk.weights.get(p.name, 1)
            if p.name not in scores.by_plugin:
                out.append(f"  Score {p.name}: skipped (same for every node)")
                continue
            weighted = scores.by_plugin[p.name][i]
            raw = weighted // weight if weight else 0
            out.append(f"  Score {p.name}: {raw} x {weight} = {weighted}")
    return out
