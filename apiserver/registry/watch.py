"""Watch: storage events become API events, filtered by label and field selectors.

Storage knows keys and bytes; a watcher asked for "pods on node1" or "pods
with app=web-app". Kubernetes' rule for a filtered watch is that the watcher
sees the filtered *set* change, so an object's event type depends on whether
it matched before and after the write:

    before  after   event sent
    no      yes     ADDED      (a pod just got bound to node1)
    yes     yes     MODIFIED
    yes     no      DELETED    (the pod left the set: its labels changed)
    no      no      nothing    (progress only: the revision still advances)

That is why storage hands every MODIFIED event its previous value.

Starting point. An empty resourceVersion (or "0") means "the current state,
then changes": the watch lists, sends an ADDED event per object, and follows
from the list's revision, with no gap between the two (storage's watch starts
strictly after that revision). A number N means "every change after N"; if N
is older than storage's compacted history the watch fails with 410 Expired
"too old resource version", and the client must list again.

Batches. Storage hands over everything buffered for a watcher at once, and
this layer keeps the batch together (`ApiBatch`), so the server sends one
gRPC message per batch: a watcher that keeps up gets one event per message,
one that falls behind catches up in a few large messages instead of paying
the per-message cost for each event. Each batch also carries the last
revision it covers, filtered-out events included, which is what a BOOKMARK
reports: the newest revision the watcher can safely resume from.

Sharing. A hundred watchers on one kind see the same storage events; the
packed wire form of each event and, for filtered watchers, its decoded labels
and fields are computed once and shared (small caches keyed by the event's
value object).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from google.protobuf import any_pb2

from apimachinery import errors, fields, labels, scheme
from apimachinery.scheme import KindInfo
from apiserver import encoding
from apiserver.registry.store import parse_resource_version
from apiserver.storage.interface import Compacted, Event, EventType, WatcherTooSlow

if TYPE_CHECKING:
    from apiserver.registry.store import Store

_LIST_CHUNK = 500


@dataclass(frozen=True)
class ApiEvent:
    type: str
    object: any_pb2.Any
    revision: int


@dataclass(frozen=True)
class ApiBatch:
    events: list[ApiEvent]
    revision: int  # the newest revision this batch accounts for, filtered events included


# Decoded (labels, fields) of recently seen values, shared by every filtered watcher:
# a hundred watchers with selectors on one kind decode each write once, not a hundred times.
# Keyed by the value bytes object itself (storage hands all watchers the same Event).
_ATTRS_CACHE_SIZE = 4096
_attrs_cache: dict[int, tuple[bytes, dict[str, str], dict[str, str]]] = {}


_packed_cache: dict[int, tuple[bytes, any_pb2.Any]] = {}


def _packed(info: KindInfo, value: bytes, revision: int) -> any_pb2.Any:
    hit = _packed_cache.get(id(value))
    if hit is not None and hit[0] is value:
        return hit[1]
    packed = encoding.packed(info, value, revision)
    if len(_packed_cache) >= _ATTRS_CACHE_SIZE:
        _packed_cache.clear()
    _packed_cache[id(value)] = (value, packed)
    return packed


def _attributes(info: KindInfo, value: bytes) -> tuple[dict[str, str], dict[str, str]]:
    hit = _attrs_cache.get(id(value))
    if hit is not None and hit[0] is value:
        return hit[1], hit[2]
    obj = encoding.decode(info, value, 0)
    attrs = (dict(obj.metadata.labels), fields.object_fields(obj))
    if len(_attrs_cache) >= _ATTRS_CACHE_SIZE:
        _attrs_cache.clear()
    _attrs_cache[id(value)] = (value, *attrs)
    return attrs


class _Filter:
    def __init__(self, info: KindInfo, label_selector: str, field_selector: str) -> None:
        self.info = info
        self.labels = labels.parse(label_selector)
        self.fields = fields.parse(field_selector)
        fields.check_supported(self.fields, info.kind)
        self.everything = self.labels.empty() and self.fields.empty()

    def matches(self, value: bytes | None) -> bool:
        if value is None:
            return False
        obj_labels, obj_fields = _attributes(self.info, value)
        return bool(self.labels.matches(obj_labels) and self.fields.matches(obj_fields))


async def watch(
    store: Store,
    info: KindInfo,
    namespace: str,
    resource_version: str,
    label_selector: str = "",
    field_selector: str = "",
) -> AsyncIterator[ApiBatch]:
    flt = _Filter(info, label_selector, field_selector)
    if resource_version in ("", "0"):
        items, start = await store.list_packed(info, namespace, label_selector, field_selector)
        for i in range(0, len(items), _LIST_CHUNK):
            chunk = items[i : i + _LIST_CHUNK]
            yield ApiBatch([ApiEvent("ADDED", item, start) for item in chunk], start)
    else:
        start = parse_resource_version(resource_version, "resourceVersion")
    stream = store.storage.watch_batches(scheme.prefix_key(info, namespace), start)
    try:
        async for batch in stream:
            out: list[ApiEvent] = []
            for ev in batch:
                kind = ev.type.value
                if not flt.everything:
                    kind = _filtered_type(flt, ev)
                    if not kind:
                        continue
                out.append(ApiEvent(kind, _packed(info, ev.value, ev.revision), ev.revision))
            yield ApiBatch(out, batch[-1].revision)
    except Compacted as err:
        raise errors.Expired.too_old(err.requested, err.compacted) from None
    except WatcherTooSlow:
        return  # the stream ends; the client resumes from the last revision it saw
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


def _filtered_type(flt: _Filter, ev: Event) -> str:
    """The event type a filtered watcher sees, or "" when the change is outside its set."""
    after = ev.type != EventType.DELETED and flt.matches(ev.value)
    if ev.type == EventType.DELETED:
        before = flt.matches(ev.value)
    elif ev.type == EventType.ADDED:
        before = False
    else:
        before = flt.matches(ev.prev_value) if ev.prev_value is not None else after
    if ev.type == EventType.MODIFIED and after and not before:
        return "ADDED"
    if ev.type == EventType.MODIFIED and before and not after:
        return "DELETED"
    if not (before or after):
        return ""
    return str(ev.type.value)
