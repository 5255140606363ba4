"""What every describe page is made of: the Writer, the fetched Related objects, shared sections.

kubectl's describe package has one describer per kind and, beside them, the
pieces they all use: the PrefixWriter that indents and tab-aligns lines, the
object-meta block every page starts with, the Events table every page ends
with. Here the entry point and the generic page are cli.describe, the kind
pages cli.describers, and these shared pieces sit below both, so describe
can look a kind's page up in describers while describers builds on the
pieces without importing describe back.

    describe.py     describe(obj, related, now): DESCRIBERS[kind] or the generic page;
                    gather(client, ...) -> Related
    describers.py   DESCRIBERS: the Pod, Deployment, ... pages
    this module     Related, Writer, object_meta, controlled_by, events_section,
                    conditions_table; Describer, the type of a page function

A `Writer` holds tab-separated lines at kubectl's indent levels (0, 2, 4, 6
spaces); `text()` aligns them with the tab writer (minimum width 0, padding
2), which gives describe's look, e.g. a repeated event in the Events table:

    Events:
      Type    Reason             Age                From                   Message
      ----    ------             ----               ----                   -------
      Normal  ScalingReplicaSet  60s (x3 over 10m)  deployment-controller  Scaled up ...

(its age is the last time it happened, then how often over how long).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from apimachinery import scheme
from cli import cells, tabwriter
from cli.columns import event_source

LEVEL = ("", "  ", "    ", "      ", "        ")


@dataclass
class Related:
    """What `gather` fetched beside the object itself."""

    events: list[Any] = field(default_factory=list)
    replica_sets: list[Any] = field(default_factory=list)  # a Deployment's
    pods: list[Any] = field(default_factory=list)  # a ReplicaSet's, or those on a Node
    endpoints: Any = None  # a Service's


class Writer:
    """kubectl's PrefixWriter: lines at an indent level, cells split by tabs."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def line(self, level: int, *cells: object) -> None:
        self.lines.append(LEVEL[level] + "\t".join(str(c) for c in cells))

    def blank(self) -> None:
        self.lines.append("")

    def map_lines(self, level: int, title: str, data: Mapping[str, str], sep: str = "=") -> None:
        """`Labels:  a=b` then one more aligned line per extra entry; `<none>` when empty."""
        if not data:
            self.line(level, f"{title}:", cells.NONE)
            return
        for i, key in enumerate(sorted(data)):
            self.line(level, f"{title}:" if i == 0 else "", f"{key}{sep}{data[key]}")

    def text(self) -> str:
        """The aligned page; trailing blanks (a padded cell before an empty value) trimmed."""
        aligned = tabwriter.align(
            self.lines,
            min_width=tabwriter.DESCRIBE_MIN_WIDTH,
            padding=tabwriter.DESCRIBE_PADDING,
        )
        return "".join(line.rstrip() + "\n" for line in aligned)


# ------------------------------------------------------------------ shared sections


def object_meta(w: Writer, obj: Any, *, created: bool = True) -> None:
    """Name, Namespace, Labels, Annotations (+ CreationTimestamp): every page starts so."""
    meta = obj.metadata
    w.line(0, "Name:", meta.name)
    if scheme.for_message(obj).namespaced:
        w.line(0, "Namespace:", meta.namespace)
    w.map_lines(0, "Labels", meta.labels)
    w.map_lines(0, "Annotations", meta.annotations, sep=": ")
    if created:
        w.line(0, "CreationTimestamp:", cells.format_time(meta, "creation_timestamp"))


def controlled_by(w: Writer, obj: Any) -> None:
    for ref in obj.metadata.owner_references:
        if ref.HasField("controller") and ref.controller:
            w.line(0, "Controlled By:", f"{ref.kind}/{ref.name}")


def event_age(ev: Any, now: float) -> str:
    """`10s`, or `3m (x5 over 10m)` for a repeated event."""
    last = next(
        (f for f in ("last_timestamp", "event_time", "first_timestamp") if ev.HasField(f)), ""
    )
    age = cells.age_of(ev, last, now) if last else cells.UNKNOWN
    if ev.count > 1 and ev.HasField("first_timestamp"):
        return f"{age} (x{ev.count} over {cells.age_of(ev, 'first_timestamp', now)})"
    return age


def events_section(w: Writer, events: list[Any], now: float) -> None:
    if not events:
        w.line(0, "Events:", cells.NONE)
        return

    def when(ev: Any) -> float:
        for f in ("last_timestamp", "event_time", "first_timestamp"):
            at = cells.timestamp_seconds(ev, f)
            if at is not None:
                return at
        return 0.0

    w.line(0, "Events:")
    w.line(1, "Type", "Reason", "Age", "From", "Message")
    w.line(1, "----", "------", "----", "----", "-------")
    for ev in sorted(events, key=when):
        w.line(1, ev.type, ev.reason, event_age(ev, now), event_source(ev), ev.message.strip())


def conditions_table(w: Writer, conditions: Any, extra: tuple[str, ...] = ("Reason",)) -> None:
    """`Conditions:` then a Type/Status[/Reason] table (kubectl's deployment/RS form)."""
    if not conditions:
        return
    w.line(0, "Conditions:")
    w.line(1, "Type", "Status", *extra)
    w.line(1, "----", "------", *("-" * len(e) for e in extra))
    for c in conditions:
        cells = [getattr(c, e.lower()) for e in extra]
        w.line(1, c.type, c.status, *cells)


Describer = Callable[[Any, Related, float], str]
