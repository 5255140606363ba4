"""The placement record: why the scheduler put a pod where it did.

Each decision is written into the pod itself, as the JSON annotation
`scheduler.tinykube.io/placement`, in the same Binding write that assigns
the node (apiserver/registry/binding.py merges the Binding's annotations),
so the record can never describe a placement other than the pod's own.
`tinykube describe pod` prints it through `describe_lines`.

Schema (version 1; keys in the API's camelCase):

    {
      "version": 1,
      "scheduler": "default-scheduler",
      "time": "2024-05-01T10:00:00Z",
      "chosen": "node1",                      # "" when no node fits
      "nodes": {"total": 3,                   # nodes in the snapshot
                "evaluated": 3,               # run through Filter (sampling may stop early)
                "feasible": 2},               # passed every Filter
      "weights": {"SelectorSpread": 2, ...},
      "scored": [                             # best first, at most `limit`
        {"node": "node1", "total": 287,
         "scores": {"NodeResourcesLeastAllocated": 95, "SelectorSpread": 200, ...}}
      ],                                      # scores are weighted: they add up to total
      "scoredOmitted": 0,                     # feasible nodes scored but not listed
      "rejected": [                           # in evaluation order, at most `limit`
        {"node": "node3", "plugin": "NodeUnschedulable",
         "reason": "node(s) were unschedulable"}
      ],
      "rejectedOmitted": {"NodeResourcesFit: Insufficient cpu": 12},
      "tieBreak": {"count": 2, "candidates": ["node1", "node2"],          # only on a tie;
                   "chosen": "node1"},                    # candidates: the first `limit`
      "note": "only one feasible node: scoring skipped"                    # optional
    }

Why a limit: annotations share a 256 KiB budget per object, and a cluster of
5000 nodes would otherwise put hundreds of entries into every pod. The
listed nodes are the ones a reader asks about (the best candidates, the
first rejections); the rest are counted.

`describe_lines` renders it:

    chosen node1: 2 of 3 nodes feasible, 3 evaluated
    node1: score 287 (LeastAllocated 95, BalancedAllocation 92, Spread 200) <- chosen
    node2: score 92 (LeastAllocated 92, BalancedAllocation 0, Spread 0)
    node3: rejected by NodeUnschedulable: node(s) were unschedulable
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from protos import core_pb2

ANNOTATION = "scheduler.tinykube.io/placement"
VERSION = 1
DEFAULT_LIMIT = 10

SHORT_NAMES = {
    "NodeResourcesLeastAllocated": "LeastAllocated",
    "NodeResourcesBalancedAllocation": "BalancedAllocation",
    "SelectorSpread": "Spread",
    "PodTopologySpread": "TopologySpread",
    "TaintToleration": "TaintToleration",
    "NodeAffinity": "NodeAffinity",
}


@dataclass
class NodeScore:
    """One scored node: its weighted total and the weighted score of each plugin."""

    node: str
    total: int
    scores: dict[str, int]


@dataclass
class Rejection:
    """One node a Filter rejected, and why."""

    node: str
    plugin: str
    reason: str


@dataclass
class PlacementRecord:
    """One scheduling decision, as stored in the pod's placement annotation."""

    scheduler: str
    chosen: str
    total: int
    evaluated: int
    feasible: int
    weights: dict[str, int] = field(default_factory=dict)
    scored: list[NodeScore] = field(default_factory=list)
    scored_omitted: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    rejected_omitted: dict[str, int] = field(default_factory=dict)
    tie_candidates: list[str] = field(default_factory=list)  # the first `limit` of them
    tie_count: int = 0  # how many nodes shared the best total (0: no tie)
    note: str = ""
    time: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": VERSION,
            "scheduler": self.scheduler,
            "time": self.time,
            "chosen": self.chosen,
            "nodes": {"total": self.total, "evaluated": self.evaluated, "feasible": self.feasible},
            "weights": self.weights,
            "scored": [{"node": s.node, "total": s.total, "scores": s.scores} for s in self.scored],
            "scoredOmitted": self.scored_omitted,
            "rejected": [
                {"node": r.node, "plugin": r.plugin, "reason": r.reason} for r in self.rejected
            ],
            "rejectedOmitted": self.rejected_omitted,
        }
        if self.tie_count > 1:
            out["tieBreak"] = {
                "count": self.tie_count,
                "candidates": self.tie_candidates,
                "chosen": self.chosen,
            }
        if self.note:
            out["note"] = self.note
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlacementRecord:
        nodes = data.get("nodes", {})
        tie = data.get("tieBreak") or {}
        return cls(
            scheduler=str(data.get("scheduler", "")),
            chosen=str(data.get("chosen", "")),
            total=int(nodes.get("total", 0)),
            evaluated=int(nodes.get("evaluated", 0)),
            feasible=int(nodes.get("feasible", 0)),
            weights=dict(data.get("weights", {})),
            scored=[
                NodeScore(str(s["node"]), int(s["total"]), dict(s.get("scores", {})))
                for s in data.get("scored", [])
            ],
            scored_omitted=int(data.get("scoredOmitted", 0)),
            rejected=[
                Rejection(str(r["node"]), str(r["plugin"]), str(r["reason"]))
                for r in data.get("rejected", [])
            ],
            rejected_omitted=dict(data.get("rejectedOmitted", {})),
            tie_candidates=list(tie.get("candidates", [])),
            tie_count=int(tie.get("count", len(tie.get("candidates", [])))),
            note=str(data.get("note", "")),
            time=str(data.get("time", "")),
        )

    @classmethod
    def from_json(cls, text: str) -> PlacementRecord:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("placement record is not a JSON object")
        return cls.from_dict(data)

    def lines(self) -> list[str]:
        """The record as describe prints it (see the module notes)."""
        head = f"chosen {self.chosen}" if self.chosen else "no node chosen"
        out = [
            f"{head}: {self.feasible} of {self.total} nodes feasible, {self.evaluated} evaluated"
        ]
        for s in self.scored:
            parts = ", ".join(f"{SHORT_NAMES.get(k, k)} {v}" for k, v in s.scores.items())
            line = f"{s.node}: score {s.total}" + (f" ({parts})" if parts else "")
            if s.node == self.chosen:
                line += " <- chosen"
            out.append(line)
        if self.chosen and not any(s.node == self.chosen for s in self.scored):
            out.append(f"{self.chosen}: not scored <- chosen")
        if self.scored_omitted:
            out.append(f"... {self.scored_omitted} more feasible node(s) with lower scores")
        for r in self.rejected:
            out.append(f"{r.node}: rejected by {r.plugin}: {r.reason}")
        for reason, count in sorted(self.rejected_omitted.items()):
            out.append(f"... {count} more node(s) rejected by {reason}")
        if self.tie_count > 1:
            names = ", ".join(self.tie_candidates)
            if self.tie_count > len(self.tie_candidates):
                names += f" and {self.tie_count - len(self.tie_candidates)} more"
            out.append(f"tie between {names} broken at random: {self.chosen}")
        if self.note:
            out.append(self.note)
        return out


def from_pod(pod: core_pb2.Pod) -> PlacementRecord | None:
    """The record stored on `pod`, or None if it has none (or an unreadable one)."""
    text = pod.metadata.annotations.get(ANNOTATION)
    if not text:
        return None
    try:
        return PlacementRecord.from_json(text)
    except (ValueError, KeyError, TypeError):
        return None


def describe_lines(pod: core_pb2.Pod) -> list[str]:
    """What `tinykube describe pod` prints under "Scheduling:" (empty if no record)."""
    text = pod.metadata.annotations.get(ANNOTATION)
    if not text:
        return []
    record = from_pod(pod)
    if record is None:
        return [f"unreadable {ANNOTATION} annotation"]
    return record.lines()
