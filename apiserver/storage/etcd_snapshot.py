"""Snapshots of the etcd backend: etcd's own Maintenance.Snapshot, restored with etcd's tools.

On SQLite a snapshot is the database file (apiserver/storage/snapshot.py);
on etcd it is etcd's: the member's bbolt database, exactly what `etcdctl
snapshot save` writes. `tinykube snapshot save` asks the API server
(apiserver/maintenance.py), which asks etcd:

    Maintenance.Snapshot()  ->  chunk, chunk, ..., chunk, digest
                                (the database, then its SHA-256: 32 bytes)

`save_stream` writes every blob in order, the digest included, and checks
the digest against the bytes before it, so a stream cut short is an error,
not a truncated backup. The revision the copy holds is the first response
header's (etcd 3.5+); etcd 3.4 sends no header, and then it is the revision
read just before asking (the copy is taken after that read, so it holds at
least that revision; with no writes in between, exactly it).

Restoring is etcd's business, offline, into a new data directory per member,
as with any etcd backup:

    etcdutl snapshot restore backup.db --data-dir /var/lib/etcd-restored \\
        --name m1 --initial-cluster m1=http://10.0.0.1:2380 \\
        --initial-advertise-peer-urls http://10.0.0.1:2380
        (etcd 3.4, Debian's etcd-client package: `etcdctl snapshot restore`, same flags)

then etcd is started on that directory and the API server with
`--storage etcd://...`: every key is back at its revision, so every object at
its resourceVersion. `tinykube snapshot restore` recognises an etcd snapshot
(a bbolt file: `is_etcd_snapshot`) and says so instead of treating it as a
SQLite one; `status` shows what `etcdutl/etcdctl snapshot status` print.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
from collections.abc import AsyncIterable
from dataclasses import dataclass

from apiserver.storage.interface import StorageError
from protos import etcd_pb2 as pb

DIGEST_BYTES = 32
_BOLT_MAGIC = 0xED0CDAED  # bbolt's meta page magic, after a 16-byte page header
_BOLT_META_FLAG = 0x04
RESTORE_HINT = (
    "restore it with etcd's own tool into a new etcd data directory: "
    "`etcdutl snapshot restore FILE --data-dir DIR` (etcd 3.5 and later; etcd 3.4: "
    "`etcdctl snapshot restore FILE --data-dir DIR`), start etcd there, and the API server "
    "with --storage etcd://... (docs/etcd.md)"
)


async def save_stream(
    responses: AsyncIterable[pb.SnapshotResponse], dest: str, fallback_revision: int
) -> int:
    """Write a Snapshot stream to `dest`; the etcd revision it holds (module docstring)."""
    digest = hashlib.sha256()
    revision, previous, first = 0, b"", True
    with open(dest, "wb") as out:
        async for response in responses:
            if first:
                revision, first = int(response.header.revision), False
            if previous:
                digest.update(previous)
                out.write(previous)
            previous = bytes(response.blob)
        out.write(previous)
        out.flush()
        os.fsync(out.fileno())
    if len(previous) != DIGEST_BYTES or previous != digest.digest():
        raise StorageError("etcd: the snapshot stream ended before its digest: incomplete")
    return revision or fallback_revision


def is_etcd_snapshot(path: str) -> bool:
    """Whether `path` is a bbolt database (an etcd snapshot), by its first meta page."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        return False
    if len(head) < 24:
        return False
    flags = struct.unpack_from("<H", head, 8)[0]
    magic = struct.unpack_from("<I", head, 16)[0]
    return magic == _BOLT_MAGIC and bool(flags & _BOLT_META_FLAG)


@dataclass(frozen=True)
class EtcdSnapshotStatus:
    """What `etcdutl snapshot status -w json` reports (revisions are etcd's own)."""

    hash: int
    revision: int
    keys: int
    size: int


def etcd_tool() -> list[str] | None:
    """The command that reads snapshots: etcdutl (3.5+), else etcdctl (3.4); None if neither."""
    for tool in ("etcdutl", "etcdctl"):
        path = shutil.which(tool)
        if path:
            return [path]
    return None


def etcd_status(path: str) -> EtcdSnapshotStatus:
    """`snapshot status` of an etcd snapshot through etcd's tool (StorageError if none)."""
    tool = etcd_tool()
    if tool is None:
        raise StorageError(
            f"{path} is an etcd snapshot; reading it needs etcdutl or etcdctl"
            " (Debian: the etcd-client package)"
        )
    proc = subprocess.run(
        [*tool, "snapshot", "status", path, "-w", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "ETCDCTL_API": "3"},
    )
    if proc.returncode != 0:
        raise StorageError(f"{tool[0]} snapshot status {path}: {proc.stderr.strip()}")
    try:
        found = json.loads(proc.stdout)
        return EtcdSnapshotStatus(
            int(found["hash"]),
            int(found["revision"]),
            int(found["totalKey"]),
            int(found["totalSize"]),
        )
    except (ValueError, KeyError, TypeError) as err:
        raise StorageError(f"{tool[0]} snapshot status {path}: unreadable answer: {err}") from None
