"""The informer: a local, always-current copy of one kind, and events for its changes.

client-go's informer is how every Kubernetes controller sees the cluster: it
lists the objects once, then watches for changes from the list's
resourceVersion, keeps every object in a local cache (the Store/Indexer in
apimachinery/cache.py) and tells registered handlers what changed. Handlers
only enqueue keys into a work queue (apimachinery/workqueue.py); the
controller's sync(key) later reads the cache. This keeps the API server's
load to one list plus one watch per informer, however often controllers look.

The loop (`run`), as client-go's Reflector.ListAndWatch:

    list  -> replace the cache (diffing against what it held) -> watch from the list's RV
    watch ends cleanly            -> watch again from the last RV seen (nothing lost)
    watch fails with Expired      -> the RV was compacted: list again and diff
    watch/list fails otherwise    -> list again and diff (the stream may have lost events)

Every retry waits first: 0.2 s, doubling to 30 s while failures continue,
back to 0.2 s after a quiet minute (client-go's backoff manager does the
same). So a down server is polled gently, and a server that closes each
watch at once is not hammered.

Why diff on relist: while the watch was down, objects may have been created,
changed or deleted and the events are gone. Comparing the new list with the
cache recovers them, so handlers never miss a change. Worked example: the
cache holds a (RV 5) and b (RV 6); the watch breaks; meanwhile a is modified
(RV 9), b is deleted, c is created (RV 10). The relist returns a@9 and c@10,
so the informer calls on_update(a@5, a@9), on_add(c@10) and on_delete(b@6)
(b's last known state, as client-go's DeletedFinalStateUnknown carries). An
object whose uid changed (deleted and re-created under the same name) is
reported as a delete followed by an add. Unchanged objects (same RV) produce
no call; periodic resync (below) is the way to revisit everything.

Resync: every `resync_period` seconds (0 = never), on_update(obj, obj) is
called for every cached object, so a controller also repairs drift that no
event announces (an external system changed, a previous sync gave up).

Handlers are plain synchronous callables, run inside the informer's task;
they must be quick (enqueue a key) and must treat the objects they are given
as read-only: they are the cached objects themselves, shared with every
other reader. Copy before mutating (`new = type(o)(); new.CopyFrom(o)`). A
handler that raises is logged and does not stop the informer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, overload

from google.protobuf.message import Message

from apimachinery import errors
from apimachinery.cache import Indexer, meta_namespace_key, split_key
from apimachinery.client import Client, DynamicRef, M, ResourceRef, WatchEvent, scheme_info
from protos import meta_pb2

__all__ = [
    "Informer",
    "meta_namespace_key",
    "split_key",
    "wait_for_cache_sync",
]

log = logging.getLogger(__name__)

# Handlers receive objects of the informer's kind: an Informer[core_pb2.Pod] calls
# on_add(pod), on_update(old_pod, new_pod), on_delete(pod).
OnAdd = Callable[[M], None]
OnUpdate = Callable[[M, M], None]
OnDelete = Callable[[M], None]


@dataclass(frozen=True)
class _Handlers(Generic[M]):
    on_add: OnAdd[M] | None
    on_update: OnUpdate[M] | None
    on_delete: OnDelete[M] | None


class _Backoff:
    """Exponential backoff that forgets past failures after a quiet minute."""

    def __init__(self, initial: float, cap: float, reset_after: float = 60.0) -> None:
        self.initial = initial
        self.cap = cap
        self.reset_after = reset_after
        self._delay = initial
        self._last_failure = 0.0

    def next_delay(self) -> float:
        now = time.monotonic()
        if now - self._last_failure > self.reset_after:
            self._delay = self.initial
        self._last_failure = now
        delay = self._delay
        self._delay = min(self._delay * 2, self.cap)
        return delay * (0.9 + 0.2 * random.random())


class Informer(Generic[M]):
    """List + watch + cache + handlers for one resource (client-go's SharedIndexInformer).

    Typed by the kind it holds: `Informer(client, core_pb2.Pod)` is an
    `Informer[core_pb2.Pod]`, whose cache and handlers see Pods; a kind named by a
    word (`Informer(client, "pods")`) gives an untyped `Informer[Any]`.
    """

    # Backoff after a failed list or watch; tests shorten these on the instance.
    initial_backoff = 0.2
    max_backoff = 30.0

    @overload
    def __init__(
        self: Informer[M],
        client: Client,
        resource: type[M],
        namespace: str = "",
        *,
        label_selector: str = "",
        field_selector: str = "",
        resync_period: float = 0.0,
    ) -> None: ...
    @overload
    def __init__(
        self: Informer[Any],
        client: Client,
        resource: DynamicRef,
        namespace: str = "",
        *,
        label_selector: str = "",
        field_selector: str = "",
        resync_period: float = 0.0,
    ) -> None: ...
    def __init__(
        self,
        client: Client,
        resource: ResourceRef,
        namespace: str = "",
        *,
        label_selector: str = "",
        field_selector: str = "",
        resync_period: float = 0.0,
    ) -> None:
        self.client = client
        self.info = scheme_info(resource)
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync_period = resync_period
        self.store: Indexer[M] = Indexer(meta_namespace_key)
        self.resource_version = ""  # the last revision seen by list or watch
        self._handlers: list[_Handlers[M]] = []
        self._synced = asyncio.Event()

    # ---- registration and status ----------------------------------------------------------

    def add_handlers(
        self,
        on_add: OnAdd[M] | None = None,
        on_update: OnUpdate[M] | None = None,
        on_delete: OnDelete[M] | None = None,
    ) -> None:
        """Register handlers. Registered after the first sync, on_add is called for the cache."""
        handlers = _Handlers(on_add, on_update, on_delete)
        self._handlers.append(handlers)
        if self.has_synced() and on_add is not None:
            for obj in self.store.list():
                self._call(handlers, "add", obj)

    def has_synced(self) -> bool:
        """True once the first list has been stored (the cache is then complete)."""
        return self._synced.is_set()

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        """Wait for the first sync; False if `timeout` seconds pass first."""
        try:
            await asyncio.wait_for(self._synced.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    # ---- the reflector loop ---------------------------------------------------------------

    async def run(self) -> None:
        """List and watch until cancelled."""
        resync: asyncio.Future[None] | None = None
        if self.resync_period > 0:
            resync = asyncio.ensure_future(self._resync_forever())
        try:
            await self._list_and_watch_forever()
        finally:
            if resync is not None:
                resync.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await resync

    async def _list_and_watch_forever(self) -> None:
        backoff = _Backoff(self.initial_backoff, self.max_backoff)
        context = {"resource": self.info.resource, "namespace": self.namespace}
        need_list = True
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                started = time.monotonic()
                await self._watch()
                log.debug("watch closed, resuming", extra={**context, "rv": self.resource_version})
                if time.monotonic() - started < 1.0:
                    # A server that closes every watch at once must not be hammered.
                    await asyncio.sleep(backoff.next_delay())
                continue
            except errors.Expired as exc:
                delay = backoff.next_delay()
                log.info(
                    "watch expired, relisting",
                    extra={**context, "error": str(exc), "retry_in": round(delay, 3)},
                )
            except errors.ServiceUnavailable as exc:
                delay = backoff.next_delay()
                log.warning(
                    "api server unavailable",
                    extra={**context, "error": str(exc), "retry_in": round(delay, 3)},
                )
            except errors.StatusError as exc:
                delay = backoff.next_delay()
                log.warning(
                    "list or watch failed",
                    extra={**context, "error": str(exc), "retry_in": round(delay, 3)},
                )
            except Exception:
                delay = backoff.next_delay()
                log.exception(
                    "list or watch failed unexpectedly",
                    extra={**context, "retry_in": round(delay, 3)},
                )
            need_list = True
            await asyncio.sleep(delay)

    async def _list(self) -> None:
        items: list[M]
        items, version = await self.client.list(
            self.info,
            self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
        )
        self._replace(items)
        self.resource_version = version
        if not self._synced.is_set():
            log.info(
                "informer synced",
                extra={"resource": self.info.resource, "objects": len(items), "rv": version},
            )
            self._synced.set()

    async def _watch(self) -> None:
        events = self.client.watch(
            self.info,
            self.namespace,
            resource_version=self.resource_version,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            allow_bookmarks=True,
        )
        async for event in events:
            if event.type != "BOOKMARK":
                self._apply(event)
            if event.resource_version:
                self.resource_version = event.resource_version

    # ---- turning lists and events into cache changes and handler calls ---------------------

    def _replace(self, items: list[M]) -> None:
        """Store exactly `items`, telling handlers what differs from before."""
        old = dict(self.store.items())
        self.store.replace(items)
        fresh = {meta_namespace_key(obj): obj for obj in items}
        for key, before in old.items():
            if key not in fresh:
                self._dispatch("delete", before)
        for key, obj in fresh.items():
            previous = old.get(key)
            if previous is None:
                self._dispatch("add", obj)
            elif _meta(previous).uid != _meta(obj).uid:
                self._dispatch("delete", previous)
                self._dispatch("add", obj)
            elif _meta(previous).resource_version != _meta(obj).resource_version:
                self._dispatch("update", obj, previous)

    def _apply(self, event: WatchEvent[M]) -> None:
        obj = event.object
        key = meta_namespace_key(obj)
        if event.type in ("ADDED", "MODIFIED"):
            before = self.store.get(key)
            self.store.add(obj)
            if before is None:
                self._dispatch("add", obj)
            else:
                self._dispatch("update", obj, before)
        elif event.type == "DELETED":
            if self.store.delete_key(key) is not None:
                self._dispatch("delete", obj)
        else:
            log.warning(
                "unknown watch event type",
                extra={"resource": self.info.resource, "type": event.type},
            )

    async def _resync_forever(self) -> None:
        while True:
            await asyncio.sleep(self.resync_period)
            if self.has_synced():
                for obj in self.store.list():
                    self._dispatch("update", obj, obj)

    def _dispatch(self, what: str, obj: M, old: M | None = None) -> None:
        for handlers in self._handlers:
            self._call(handlers, what, obj, old)

    def _call(self, handlers: _Handlers[M], what: str, obj: M, old: M | None = None) -> None:
        try:
            if what == "add" and handlers.on_add is not None:
                handlers.on_add(obj)
            elif what == "update" and handlers.on_update is not None and old is not None:
                handlers.on_update(old, obj)
            elif what == "delete" and handlers.on_delete is not None:
                handlers.on_delete(obj)
        except Exception:
            log.exception(
                "event handler failed",
                extra={
                    "resource": self.info.resource,
                    "event": what,
                    "key": meta_namespace_key(obj),
                },
            )


def _meta(obj: Message) -> meta_pb2.ObjectMeta:
    """Every kind in the scheme has ObjectMeta (the base Message class does not say so)."""
    meta: meta_pb2.ObjectMeta = getattr(obj, "metadata")  # noqa: B009
    return meta


async def wait_for_cache_sync(*informers: Informer[Any], timeout: float | None = None) -> bool:
    """client-go's WaitForCacheSync: True once every informer has synced, False on timeout."""
    try:
        await asyncio.wait_for(asyncio.gather(*(i.wait_for_sync() for i in informers)), timeout)
    except asyncio.TimeoutError:
        return False
    return all(i.has_synced() for i in informers)
