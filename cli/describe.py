"""`describe`: a human page per object (kubectl/pkg/describe).

How it is built, in two halves that never mix:

- `gather(client, info, obj)` does all the I/O: the Events whose
  involvedObject is this object (field selector
  `involvedObject.name=...,involvedObject.kind=...`), and per kind the
  related objects kubectl shows (a Deployment's ReplicaSets, a ReplicaSet's
  Pods, a Service's Endpoints, the Pods on a Node). A failure to fetch
  related objects is not fatal -- the page prints without them, as kubectl
  prints `Events: <none>` when it may not list events.
- `describe(obj, related, now)` is pure text: tests build objects and
  `Related` by hand and compare strings.

Text goes through a `Writer` of tab-separated lines at kubectl's indent
levels (0, 2, 4, 6 spaces), then through the tab writer (padding 2), which
gives describe's look: `Name:` and `Namespace:` values line up, and each
nested block lines up on its own. For example

    Name:         web-app
    Namespace:    default
    Labels:       app=web-app
                  tier=frontend
    Annotations:  <none>

A kind without a describer of its own (`DESCRIBERS` in cli.describers) gets
the generic page: the metadata block, then every other field of the
object's JSON form with keys turned into words (`holderIdentity` ->
`Holder Identity:`), which is what kubectl's generic describer does too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from apimachinery import errors, scheme
from cli import printers, tabwriter

if TYPE_CHECKING:
    from apimachinery.client import Client

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
            self.line(level, f"{title}:", printers.NONE)
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
        w.line(0, "CreationTimestamp:", printers.format_time(meta, "creation_timestamp"))


def controlled_by(w: Writer, obj: Any) -> None:
    for ref in obj.metadata.owner_references:
        if ref.HasField("controller") and ref.controller:
            w.line(0, "Controlled By:", f"{ref.kind}/{ref.name}")


def event_age(ev: Any, now: float) -> str:
    """`10s`, or `3m (x5 over 10m)` for a repeated event."""
    last = next(
        (f for f in ("last_timestamp", "event_time", "first_timestamp") if ev.HasField(f)), ""
    )
    age = printers.age_of(ev, last, now) if last else printers.UNKNOWN
    if ev.count > 1 and ev.HasField("first_timestamp"):
        return f"{age} (x{ev.count} over {printers.age_of(ev, 'first_timestamp', now)})"
    return age


def events_section(w: Writer, events: list[Any], now: float) -> None:
    if not events:
        w.line(0, "Events:", printers.NONE)
        return

    def when(ev: Any) -> float:
        for f in ("last_timestamp", "event_time", "first_timestamp"):
            at = printers.timestamp_seconds(ev, f)
            if at is not None:
                return at
        return 0.0

    w.line(0, "Events:")
    w.line(1, "Type", "Reason", "Age", "From", "Message")
    w.line(1, "----", "------", "----", "----", "-------")
    from cli.columns import event_source

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


# ------------------------------------------------------------------ generic


def words(key: str) -> str:
    """`holderIdentity` -> `Holder Identity`, `podCIDR` -> `Pod CIDR` (kubectl's smartLabelFor)."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", key)
    return " ".join(p[:1].upper() + p[1:] for p in spaced.split(" "))


def nested(w: Writer, level: int, value: Any) -> None:
    """A JSON value as describe's nested `Key:  value` lines (generic describer)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                w.line(level, f"{words(key)}:")
                nested(w, min(level + 1, len(LEVEL) - 1), item)
            else:
                w.line(level, f"{words(key)}:", _scalar(item))
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                nested(w, level, item)
            else:
                w.line(level, _scalar(item))
    else:
        w.line(level, _scalar(value))


def _scalar(value: Any) -> str:
    if value is None or value == {} or value == []:
        return printers.NONE
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def describe_generic(obj: Any, related: Related, now: float) -> str:
    from apimachinery import codec

    w = Writer()
    object_meta(w, obj)
    body = {
        k: v for k, v in codec.to_dict(obj).items() if k not in ("apiVersion", "kind", "metadata")
    }
    nested(w, 0, body)
    events_section(w, related.events, now)
    return w.text()


# ------------------------------------------------------------------ entry points


Describer = Callable[[Any, Related, float], str]


def describe(obj: Any, related: Related, now: float) -> str:
    """The describe page for `obj` (kind-specific when there is a describer, else generic)."""
    from cli.describers import DESCRIBERS

    info = scheme.for_message(obj)
    return DESCRIBERS.get(info.kind, describe_generic)(obj, related, now)


def owned_by(obj: Any, owner: Any) -> bool:
    uid = owner.metadata.uid
    return any(ref.uid == uid for ref in obj.metadata.owner_references)


async def gather(client: Client, info: scheme.KindInfo, obj: Any) -> Related:
    """Fetch the events and related objects `describe` shows for `obj` (see docstring)."""
    related = Related()
    meta = obj.metadata
    ns = meta.namespace if info.namespaced else ""
    selector = f"involvedObject.name={meta.name},involvedObject.kind={info.kind}"
    try:
        related.events, _ = await client.list("events", ns, field_selector=selector)
        if info.kind == "Deployment":
            rss, _ = await client.list("replicasets", ns)
            related.replica_sets = [rs for rs in rss if owned_by(rs, obj)]
        elif info.kind == "ReplicaSet":
            pods, _ = await client.list("pods", ns)
            related.pods = [p for p in pods if owned_by(p, obj)]
        elif info.kind == "Node":
            related.pods, _ = await client.list(
                "pods", "", field_selector=f"spec.nodeName={meta.name}"
            )
        elif info.kind == "Service":
            try:
                related.endpoints = await client.get("endpoints", meta.name, ns)
            except errors.NotFound:
                related.endpoints = None
    except errors.ServiceUnavailable:
        raise
    except errors.StatusError:
        pass  # describe what we have; the object itself was fetched
    return related
