"""Events expire: kube-apiserver's `--event-ttl` (1 h by default), for every storage backend.

Events are the cluster's diary ("Scheduled", "Pulled", "Started", "BackOff"),
written by every component, many per pod. Kept forever they would grow
the store without bound, so Kubernetes gives each Event a time to live: the
apiserver writes it under an etcd lease of `--event-ttl`, and etcd deletes
the key when the lease runs out (a repeated Event is updated -- count + 1,
lastTimestamp -- and gets a fresh lease).

tinykube's SQLite store has no leases, so the API server runs a reaper: every
`interval` it lists the Events and deletes each one whose last sign of
activity is older than the TTL:

    last activity = the newest of lastTimestamp, eventTime, firstTimestamp,
                    metadata.creationTimestamp
    expired       = now - last activity > ttl

(creationTimestamp is the server's own stamp of the first write, so, as with
the lease, an Event lives at least `ttl` after it was stored.)

Each delete names the revision it read (a compare-and-swap): an Event that
a component updated in the meantime is fresh again and stays. Deletes go
through storage, so watchers see DELETED, as they do when etcd's lease
expires. Afterwards the compactor drops their history and the database's
free pages are returned by the incremental vacuum (sqlite_log.py), so the
file shrinks back. The wall clock is right here: the timestamps are wall
times written by other machines; a jump forward only expires Events early.
"""

from __future__ import annotations

import asyncio
import logging

from apimachinery import scheme
from apimachinery.clock import Clock
from apiserver import encoding
from apiserver.storage.interface import KeyNotFound, RevisionMismatch, Storage, StorageError
from protos import core_pb2

log = logging.getLogger(__name__)

DEFAULT_EVENT_TTL = 3600.0


def last_activity(event: core_pb2.Event) -> float:
    """The newest timestamp an Event carries (seconds since the epoch; 0 if none)."""
    stamps = [
        event.last_timestamp,
        event.event_time,
        event.first_timestamp,
        event.metadata.creation_timestamp,
    ]
    return max((s.seconds + s.nanos / 1e9 for s in stamps), default=0.0)


class EventReaper:
    """Deletes Events older than `ttl` seconds, every `interval` seconds."""

    def __init__(
        self,
        storage: Storage,
        ttl: float = DEFAULT_EVENT_TTL,
        *,
        interval: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        if ttl <= 0:
            raise ValueError("--event-ttl must be positive")
        self.storage = storage
        self.ttl = ttl
        # Often enough that an Event outlives its TTL by at most a few percent.
        self.interval = interval if interval is not None else min(60.0, max(1.0, ttl / 60))
        self.clock = clock or Clock()
        self.info = scheme.for_resource("events")
        self._task: asyncio.Task[None] | None = None

    async def reap_once(self) -> int:
        """One pass; how many Events were deleted."""
        items, _ = await self.storage.list(scheme.prefix_key(self.info))
        cutoff = self.clock.time() - self.ttl
        deleted = 0
        for kv in items:
            event = encoding.decode(self.info, kv.value, kv.mod_revision)
            if last_activity(event) >= cutoff:
                continue
            try:
                await self.storage.delete(kv.key, kv.mod_revision)
            except (KeyNotFound, RevisionMismatch):
                continue  # deleted or refreshed since the list: not ours to remove
            deleted += 1
        if deleted:
            log.info("expired events deleted", extra={"count": deleted, "ttl": self.ttl})
        return deleted

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="event-ttl")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.reap_once()
            except StorageError as err:
                log.warning("event expiry failed", extra={"error": str(err)})
