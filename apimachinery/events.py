"""The event recorder: how components explain what they did (client-go's record.EventRecorder).

Every decision a controller, the scheduler or a kubelet takes is worth a
line a user can read with `tinykube get events` or at the bottom of
`tinykube describe`: "Scaled up replica set web-app-7d4b9 to 2", "0/3 nodes
are available: 1 node(s) were unschedulable, 2 Insufficient cpu".

    recorder = EventRecorder(client, component="deployment-controller")
    recorder.event(deployment, "Normal", "ScalingReplicaSet", "Scaled up replica set x to 2")

Recording never blocks the caller and never fails it: `event()` queues the
write and returns; a failed write is logged and dropped (an Event is a hint,
not state). Repeats are aggregated as Kubernetes' EventCorrelator does: the
same object, type, reason and message from the same component update one
Event (its `count` and `lastTimestamp`) instead of creating another, so a pod
that fails to schedule a hundred times is one Event with count 100.

Event names follow Kubernetes: `<object name>.<hex timestamp>`, in the
object's namespace (`default` for cluster-scoped objects such as Nodes).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from google.protobuf import timestamp_pb2

from apimachinery import errors
from apimachinery.client import Client
from protos import core_pb2

log = logging.getLogger(__name__)

_Key = tuple[str, str, str, str, str, str]
_MAX_PENDING = 1000
_CACHE_LIMIT = 4096


def object_reference(obj: Any) -> Any:
    from protos import meta_pb2

    return meta_pb2.ObjectReference(
        kind=obj.kind,
        namespace=obj.metadata.namespace,
        name=obj.metadata.name,
        uid=obj.metadata.uid,
        api_version=obj.api_version,
        resource_version=obj.metadata.resource_version,
    )


class EventRecorder:
    def __init__(self, client: Client, component: str, host: str = "") -> None:
        self.client = client
        self.component = component
        self.host = host
        self._queue: asyncio.Queue[core_pb2.Event] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._seen: dict[_Key, str] = {}  # aggregation key -> event name

    def event(self, obj: Any, type_: str, reason: str, message: str) -> None:
        """Record an event about `obj` (Normal or Warning). Returns at once."""
        ev = core_pb2.Event(api_version="v1", kind="Event")
        ev.involved_object.CopyFrom(object_reference(obj))
        ev.metadata.namespace = obj.metadata.namespace or "default"
        ev.reason = reason
        ev.message = message
        ev.type = type_
        ev.source.component = self.component
        ev.source.host = self.host
        ev.reporting_component = self.component
        ev.reporting_instance = self.host
        now = timestamp_pb2.Timestamp(seconds=int(time.time()))
        ev.first_timestamp.CopyFrom(now)
        ev.last_timestamp.CopyFrom(now)
        ev.count = 1
        log.info(
            "event",
            extra={
                "object": f"{obj.kind}/{obj.metadata.name}",
                "reason": reason,
                "detail": message,
            },
        )
        if self._queue is None:
            self._queue = asyncio.Queue(_MAX_PENDING)
            self._worker = asyncio.get_running_loop().create_task(self._run())
        try:
            self._queue.put_nowait(ev)
        except asyncio.QueueFull:
            log.warning("event dropped: queue full", extra={"reason": reason})

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            ev = await self._queue.get()
            try:
                await self._write(ev)
            except errors.StatusError as err:
                log.warning("event not recorded", extra={"reason": ev.reason, "error": str(err)})
            finally:
                self._queue.task_done()

    async def _write(self, ev: core_pb2.Event) -> None:
        ref = ev.involved_object
        key: _Key = (ref.uid, ref.kind, ref.name, ev.type, ev.reason, ev.message)
        name = self._seen.get(key)
        if name is not None:
            try:
                existing = await self.client.get("events", name, ev.metadata.namespace)
                existing.count += 1
                existing.last_timestamp.CopyFrom(ev.last_timestamp)
                await self.client.update(existing)
                return
            except (errors.NotFound, errors.Conflict):
                self._seen.pop(key, None)
        ev.metadata.name = f"{ref.name}.{time.time_ns():x}"
        await self.client.create(ev)
        if len(self._seen) >= _CACHE_LIMIT:
            self._seen.clear()
        self._seen[key] = ev.metadata.name

    async def flush(self) -> None:
        """Wait until every queued event has been written (tests, shutdown)."""
        if self._queue is not None:
            await self._queue.join()

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
            self._queue = None
