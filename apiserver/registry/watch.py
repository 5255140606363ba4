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

Sharing. A hundred watchers on one kind see the same storage events, so what
can be worked out once per event is, and kept in a small table per storage,
keyed by the event's (revision, key): within one storage's history that names
one event, the same in every watcher's stream whichever backend produced it
(two stores in one process, as in the tests, each get their own table):

* the decoded labels and fields of its value and previous value;
* each selector's verdict (ADDED, MODIFIED, DELETED or nothing), keyed by the
  selector's text: a hundred watchers with one selector filter it once;
* the packed object, and the `ApiEvent` itself, one per event type. The API's
  boundaries encode an `ApiEvent` once and keep the bytes on it (`encoded`):
  the gRPC service its WatchEvent's wire form, the HTTP API its JSON line.

So a watcher that keeps up costs one table lookup per event here; the rest is
its message. (Kubernetes' watch cache does the same with its cachingObject:
one serialization per event and encoding, shared by every watcher.)
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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
    # The event's encodings at the API's boundaries, made once and shared by every
    # watcher that is handed this same ApiEvent (servicer.py, httpapi/watchstream.py).
    encoded: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class ApiBatch:
    events: list[ApiEvent]
    revision: int  # the newest revision this batch accounts for, filtered events included
    bookmark: bool = False  # no events: a BOOKMARK at `revision` (servicer.py)


# Per-event shared work, by (revision, key) within one storage; a table is cleared
# whole when it reaches its size (a watcher far behind the others then recomputes
# what it needs: never wrong).
_SHARED_SIZE = 4096


class _Shared:
    """What every watcher of one storage event can share (module docstring)."""

    __slots__ = ("api", "attrs", "packed", "verdicts")

    def __init__(self) -> None:
        # Labels and fields of the event's value ("value") and previous value ("prev").
        self.attrs: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
        self.verdicts: dict[tuple[str, str], str] = {}
        self.packed: any_pb2.Any | None = None
        self.api: dict[str, ApiEvent] = {}


_SharedTable = dict[tuple[int, str], _Shared]
# One table per storage object, gone with it.
_tables: weakref.WeakKeyDictionary[object, _SharedTable] = weakref.WeakKeyDictionary()


def _table_for(storage: object) -> _SharedTable:
    table = _tables.get(storage)
    if table is None:
        table = _tables[storage] = {}
    return table


def _shared_for(table: _SharedTable, ev: Event) -> _Shared:
    k = (ev.revision, ev.key)
    hit = table.get(k)
    if hit is None:
        if len(table) >= _SHARED_SIZE:
            table.clear()
        hit = table[k] = _Shared()
    return hit


def _api_event(info: KindInfo, ev: Event, shared: _Shared, kind: str) -> ApiEvent:
    api = shared.api.get(kind)
    if api is None:
        if shared.packed is None:
            shared.packed = encoding.packed(info, ev.value, ev.revision)
        api = shared.api[kind] = ApiEvent(kind, shared.packed, ev.revision)
    return api


class _Filter:
    def __init__(self, info: KindInfo, label_selector: str, field_selector: str) -> None:
        self.info = info
        self.key = (label_selector, field_selector)
        self.labels = labels.parse(label_selector)
        self.fields = fields.parse(field_selector)
        fields.check_supported(self.fields, info.kind)
        self.everything = self.labels.empty() and self.fields.empty()

    def matches(self, value: bytes | None, shared: _Shared, which: str) -> bool:
        """Whether `value`, the event's "value" or "prev" (the name `shared` keeps it by),
        is in the selected set."""
        if value is None:
            return False
        attrs = shared.attrs.get(which)
        if attrs is None:
            obj = encoding.decode(self.info, value, 0)
            attrs = shared.attrs[which] = (
                dict(obj.metadata.labels),
                fields.object_fields(obj),
            )
        return bool(self.labels.matches(attrs[0]) and self.fields.matches(attrs[1]))


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
    table = _table_for(store.storage)
    stream = store.storage.watch_batches(scheme.prefix_key(info, namespace), start)
    try:
        async for batch in stream:
            out: list[ApiEvent] = []
            for ev in batch:
                shared = _shared_for(table, ev)
                if flt.everything:
                    kind = ev.type.value
                else:
                    verdict = shared.verdicts.get(flt.key)
                    if verdict is None:
                        verdict = shared.verdicts[flt.key] = _filtered_type(flt, ev, shared)
                    if not verdict:
                        continue
                    kind = verdict
                out.append(_api_event(info, ev, shared, kind))
            yield ApiBatch(out, batch[-1].revision)
    except Compacted as err:
        raise errors.Expired.too_old(err.requested, err.compacted) from None
    except WatcherTooSlow:
        return  # the stream ends; the client resumes from the last revision it saw
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


def _filtered_type(flt: _Filter, ev: Event, shared: _Shared) -> str:
    """The event type a filtered watcher sees, or "" when the change is outside its set."""
    after = ev.type != EventType.DELETED and flt.matches(ev.value, shared, "value")
    if ev.type == EventType.DELETED:
        before = flt.matches(ev.value, shared, "value")
    elif ev.type == EventType.ADDED:
        before = False
    else:
        prev = ev.prev_value
        before = flt.matches(prev, shared, "prev") if prev is not None else after
    if ev.type == EventType.MODIFIED and after and not before:
        return "ADDED"
    if ev.type == EventType.MODIFIED and before and not after:
        return "DELETED"
    if not (before or after):
        return ""
    return str(ev.type.value)
