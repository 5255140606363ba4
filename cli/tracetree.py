"""A trace as a tree of steps, its critical path, and the text and JSON `tinykube trace` prints.

Pure functions of the stored spans (protos/trace.proto), so they are tested
without a cluster. The tree follows parent links: each step under the step
that caused it, siblings by start time; a span whose parent is not in the
trace (its root was never exported, or was evicted) is shown at the top.

The critical path is the chain of causes of the step that ended last: that
span, its parent, its parent's parent, up to the root. The change was over
only when that last step was, and it could start only after each of its
causes had done its part, so these are the steps whose time the change as a
whole waited on. For the seed's `apply` it typically runs root ->
CreateReplicaSet -> CreatePod -> Bind -> SyncPod -> UpdatePodStatus ->
UpdateEndpoints -> SyncProxyRules on the node that programmed its table
last; a slow image pull shows up as a long SyncPod on that path.

The text, one line per step (columns shortened here):

    *  +0.000s   1.94s  apply                          tinykube               tinykube apply -f ...
    *  +0.031s     4ms  ├─ CreateReplicaSet web-ap...  deployment-controller  no ReplicaSet ...
       +0.080s    11ms  │  ├─ Bind web-app-7...-x9vnh  default-scheduler      chosen node2: ...
                        │  │     placement: node2: score 300 (...) <- chosen

`*` marks the critical path; offsets are from the trace's first span; the
last columns are the component, the node (for node-side steps) and the
step's one line "why". Under a step, its details: the placement record, the
kernel commands of a CNI ADD, the nft rule lines a proxy sync changed.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from protos import trace_pb2

NANO = 1_000_000_000
DETAILS = {
    "tinykube.placement": "placement",
    "tinykube.cni.commands": "kernel",
    "tinykube.nft.added": "nft +",
    "tinykube.nft.removed": "nft -",
}
MAX_DETAIL_LINES = 12


@dataclass
class Step:
    span: trace_pb2.Span
    children: list[Step] = field(default_factory=list)
    depth: int = 0
    critical: bool = False


def critical_path(spans: Iterable[trace_pb2.Span]) -> list[str]:
    """Span ids from the root to the step that ended last (see the module docstring)."""
    spans = list(spans)
    if not spans:
        return []
    by_id = {s.span_id: s for s in spans}
    last = max(spans, key=lambda s: (s.end_time_unix_nano, s.start_time_unix_nano))
    chain: list[str] = []
    at: trace_pb2.Span | None = last
    while at is not None and at.span_id not in chain:
        chain.append(at.span_id)
        at = by_id.get(at.parent_span_id)
    return chain[::-1]


def build(spans: Iterable[trace_pb2.Span]) -> list[Step]:
    """The roots of the tree, each with its descendants, siblings ordered by start."""
    steps = {s.span_id: Step(s) for s in spans}
    critical = set(critical_path(s.span for s in steps.values()))
    roots: list[Step] = []
    for step in steps.values():
        step.critical = step.span.span_id in critical
        parent = steps.get(step.span.parent_span_id)
        (parent.children if parent is not None else roots).append(step)

    def order(level: list[Step], depth: int) -> None:
        level.sort(key=lambda s: (s.span.start_time_unix_nano, s.span.span_id))
        for step in level:
            step.depth = depth
            order(step.children, depth + 1)

    order(roots, 0)
    return roots


def walk(roots: list[Step]) -> Iterator[tuple[Step, str, str]]:
    """Depth first: (step, its tree prefix, the prefix its details continue with)."""

    def visit(level: list[Step], indent: str, top: bool) -> Iterator[tuple[Step, str, str]]:
        for i, step in enumerate(level):
            last = i == len(level) - 1
            branch = "" if top else ("└─ " if last else "├─ ")
            below = indent + ("" if top else ("   " if last else "│  "))
            yield step, indent + branch, below
            yield from visit(step.children, below, False)

    yield from visit(roots, "", True)


def focus(spans: list[trace_pb2.Span], obj: str) -> list[trace_pb2.Span]:
    """The steps about `obj` (pods/default/web-0), with their causes and consequences:
    every ancestor of such a step, and every step below one."""
    by_id = {s.span_id: s for s in spans}
    about = {s.span_id for s in spans if s.object == obj}
    keep = set(about)
    for span_id in about:
        at = by_id.get(by_id[span_id].parent_span_id)
        while at is not None and at.span_id not in keep:
            keep.add(at.span_id)
            at = by_id.get(at.parent_span_id)
    below = set(about)
    for span in sorted(spans, key=lambda s: s.start_time_unix_nano):
        if span.parent_span_id in below:  # a parent starts before its children
            below.add(span.span_id)
    return [s for s in spans if s.span_id in keep | below]


def _short(obj: str) -> str:
    return obj.rsplit("/", 1)[-1] if obj else ""


def _duration(nanos: int) -> str:
    if nanos < NANO:
        return f"{nanos / 1e6:.0f}ms" if nanos >= 1_000_000 else f"{nanos / 1e6:.1f}ms"
    return f"{nanos / NANO:.2f}s"


def when(nanos: int) -> str:
    moment = datetime.datetime.fromtimestamp(nanos / NANO, tz=datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def render(trace: trace_pb2.Trace, details: bool = True) -> str:
    """The trace as text (see the module docstring)."""
    spans = list(trace.spans)
    if not spans:
        return f"trace {trace.trace_id}: no spans\n"
    start = min(s.start_time_unix_nano for s in spans)
    end = max(s.end_time_unix_nano for s in spans)
    roots = build(spans)
    rows = []
    for step, prefix, below in walk(roots):
        s = step.span
        label = f"{prefix}{s.name} {_short(s.object)}".rstrip()
        component = s.component + (f" @{s.node}" if s.node else "")
        why = s.why + (f" [error: {s.error}]" if s.error else "")
        offset = f"+{(s.start_time_unix_nano - start) / NANO:.3f}s"
        took = _duration(s.end_time_unix_nano - s.start_time_unix_nano)
        rows.append(("*" if step.critical else " ", offset, took, label, component, why, s, below))
    width = max(len(r[3]) for r in rows)
    comp_width = max(len(r[4]) for r in rows)
    head = (
        f"trace {trace.trace_id}: {len(spans)} steps in {_duration(end - start)}, "
        f"from {when(start)}\n"
        "(* the critical path: the chain of causes of the step that ended last)\n\n"
    )
    lines = []
    for mark, offset, took, label, component, why, s, below in rows:
        lines.append(
            f"{mark} {offset:>9} {took:>7}  {label:<{width}}  {component:<{comp_width}}  {why}"
        )
        if details:
            for line in _detail_lines(s):
                lines.append(f"  {'':>9} {'':>7}  {below}   {line}")
    return head + "\n".join(line.rstrip() for line in lines) + "\n"


def _detail_lines(span: trace_pb2.Span) -> list[str]:
    out = []
    for attr in span.attributes:
        tag = DETAILS.get(attr.key)
        if tag is None:
            continue
        values = list(attr.values)
        for value in values[:MAX_DETAIL_LINES]:
            out.append(f"{tag}: {value}")
        if len(values) > MAX_DETAIL_LINES:
            out.append(f"{tag}: ... {len(values) - MAX_DETAIL_LINES} more (-o json has them all)")
    return out


def to_json(trace: trace_pb2.Trace) -> dict[str, Any]:
    """The trace for `-o json`: every span, in tree order, with its depth and critical mark."""
    spans = list(trace.spans)
    start = min((s.start_time_unix_nano for s in spans), default=0)
    end = max((s.end_time_unix_nano for s in spans), default=0)
    out = []
    for step, _, _ in walk(build(spans)):
        s = step.span
        out.append(
            {
                "spanId": s.span_id,
                "parentSpanId": s.parent_span_id,
                "name": s.name,
                "component": s.component,
                "node": s.node,
                "why": s.why,
                "object": s.object,
                "startTime": when(s.start_time_unix_nano),
                "offsetSeconds": round((s.start_time_unix_nano - start) / NANO, 6),
                "durationSeconds": round((s.end_time_unix_nano - s.start_time_unix_nano) / NANO, 6),
                "depth": step.depth,
                "critical": step.critical,
                "attributes": {a.key: list(a.values) for a in s.attributes},
                "links": [{"traceId": li.trace_id, "spanId": li.span_id} for li in s.links],
                "error": s.error,
                "service": s.service,
            }
        )
    return {
        "traceId": trace.trace_id,
        "startTime": when(start) if spans else "",
        "durationSeconds": round((end - start) / NANO, 6),
        "criticalPath": critical_path(spans),
        "spans": out,
    }
