"""The Maintenance service: `tinykube snapshot save` asks the running API server for a snapshot.

etcd's operators take backups with `etcdctl snapshot save`, which calls
etcd's Maintenance.Snapshot: the server streams a consistent copy of its
database while it keeps serving. tinykube's store is inside the API server
(the SQLite file is locked by it), so the same call goes to the API server:

    tinykube snapshot save backup.db
        --Snapshot()--> API server
            1. authorize: `get` on the non-resource path /snapshot (only a
               cluster administrator: a snapshot holds every Secret)
            2. storage.snapshot(tmp): SQLite's online backup on the store's
               worker thread, so no write lands halfway (sqlite_log.backup)
            3. stream tmp in 1 MiB chunks, each carrying the revision and
               the bytes still to come; delete tmp
        <--chunks-- the CLI writes them to backup.db.part, renames at the end

On the etcd backend, step 2 is etcd's own Maintenance.Snapshot
(storage.snapshot -> apiserver/storage/etcd_snapshot.py): the file is an etcd
snapshot, as `etcdctl snapshot save` writes it, and each chunk says so
(`backend: etcd`), so the CLI knows it is restored with etcd's tools.

Restoring is offline and local (apiserver/storage/snapshot.py): a snapshot
goes into a new data directory, and a server is started there. With
encryption at rest on, the snapshot holds the encrypted values: restoring it
needs the same encryption configuration (as with etcd).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import grpc

from apimachinery import errors
from apiserver.auth.filters import RequestGuard
from apiserver.storage.interface import Storage, StorageError
from protos import maintenance_pb2, maintenance_pb2_grpc

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
SNAPSHOT_PATH = "/snapshot"


class MaintenanceServicer(maintenance_pb2_grpc.MaintenanceServicer):
    """Snapshots of the store, for administrators."""

    def __init__(self, storage: Storage, guard: RequestGuard, run_dir: str) -> None:
        self.storage = storage
        self.guard = guard
        self.backend = str(getattr(storage, "backend", "unknown"))
        self.run_dir = run_dir

    async def Snapshot(
        self, request: maintenance_pb2.SnapshotRequest, context: Any
    ) -> AsyncIterator[maintenance_pb2.SnapshotChunk]:
        try:
            await self.guard.check(context, "get", None, path=SNAPSHOT_PATH)
        except errors.StatusError as err:
            await context.abort_with_status(errors.to_grpc_status(err))
        snapshot = getattr(self.storage, "snapshot", None)
        if snapshot is None:
            await context.abort(
                grpc.StatusCode.UNIMPLEMENTED,
                f"the {self.backend} storage backend cannot take snapshots here",
            )
            return
        fd, tmp = tempfile.mkstemp(prefix=".snapshot-", suffix=".db", dir=self.run_dir or None)
        os.close(fd)
        os.unlink(tmp)  # the backup creates it afresh
        try:
            try:
                revision = await snapshot(tmp)
            except StorageError as err:
                await context.abort(grpc.StatusCode.UNAVAILABLE, f"snapshot failed: {err}")
            size = os.path.getsize(tmp)
            log.info("snapshot taken", extra={"revision": revision, "bytes": size})
            sent = 0
            with open(tmp, "rb") as f:
                while True:
                    blob = f.read(CHUNK)
                    sent += len(blob)
                    yield maintenance_pb2.SnapshotChunk(
                        blob=blob,
                        remaining_bytes=size - sent,
                        revision=revision,
                        backend=self.backend,
                    )
                    if sent >= size:
                        break
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
