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

The Writer, `Related` and the sections every page shares (metadata, events,
conditions) are in cli.describe_sections, below both this module and the
kind pages. A kind without a describer of its own (`DESCRIBERS` in
cli.describers) gets
the generic page: the metadata block, then every other field of the
object's JSON form with keys turned into words (`holderIdentity` ->
`Holder Identity:`), which is what kubectl's generic describer does too.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from apimachinery import errors, scheme
from cli import cells
from cli.describe_sections import LEVEL, Writer, events_section, object_meta
from cli.describe_sections import Related as Related  # describe()'s argument, gather()'s answer
from cli.describers import DESCRIBERS

if TYPE_CHECKING:
    from apimachinery.client import Client

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
        return cells.NONE
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


def describe(obj: Any, related: Related, now: float) -> str:
    """The describe page for `obj` (kind-specific when there is a describer, else generic)."""
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
