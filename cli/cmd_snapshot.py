"""`snapshot save|restore|status`: backups of the cluster's store (etcdctl snapshot, for tinykube).

    $ tinykube snapshot save backup.db
    Snapshot saved at backup.db (revision 1234, 2.1 MB)
    $ tinykube snapshot status backup.db
    REVISION  TOTAL KEYS  TOTAL SIZE
    1234      87          2.1 MB
    $ tinykube snapshot restore backup.db --data-dir /var/lib/tinykube-restored
    Restored snapshot backup.db into /var/lib/tinykube-restored (revision 1234, 87 keys)

`save` asks the running API server (Maintenance.Snapshot, apiserver/
maintenance.py): the store is locked by the server, and only it can copy it
consistently while it keeps serving. The chunks go to FILE.part, which is
renamed to FILE once the last one arrived, so an interrupted save never
leaves a file that looks complete. `restore` and `status` work on the file
alone, offline (apiserver/storage/snapshot.py).

On the etcd backend the snapshot is etcd's own (Maintenance.Snapshot, what
`etcdctl snapshot save` writes; apiserver/storage/etcd_snapshot.py). `status`
reads it with etcdutl/etcdctl; `restore` points to them, since restoring an
etcd member is etcd's tool's job:

    $ tinykube snapshot save backup.db
    Snapshot saved at backup.db (etcd, revision 1234, 2.1 MB)
    $ etcdutl snapshot restore backup.db --data-dir /var/lib/etcd-restored ...
"""

from __future__ import annotations

import os

import click
import grpc

from apimachinery.client import Client
from apiserver.storage import snapshot as snapshots
from apiserver.storage.etcd_mapping import from_etcd
from apiserver.storage.etcd_snapshot import RESTORE_HINT, etcd_status, is_etcd_snapshot
from apiserver.storage.interface import StorageError
from cli import context
from cli.context import CommandError, Options, echo_err
from protos import maintenance_pb2, maintenance_pb2_grpc


def human_size(size: int) -> str:
    """etcdctl's sizes: 2.1 MB, 36 kB, 512 B (powers of 1000)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


@click.group("snapshot")
def snapshot() -> None:
    """Save, check and restore snapshots of the cluster's store."""


@snapshot.command("save")
@click.argument("filename")
@click.pass_obj
def save(opts: Options, filename: str) -> None:
    """Stream a snapshot of the store from the API server into FILENAME."""

    async def verb(client: Client) -> int:
        stub = maintenance_pb2_grpc.MaintenanceStub(client._connection.channel())
        partial = filename + ".part"
        revision, size, done, backend = 0, 0, False, ""
        try:
            with open(partial, "wb") as out:
                async for chunk in stub.Snapshot(maintenance_pb2.SnapshotRequest()):
                    out.write(chunk.blob)
                    revision, size = chunk.revision, size + len(chunk.blob)
                    backend = chunk.backend
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, filename)
            done = True
        except grpc.aio.AioRpcError as exc:
            raise client._connection.error(exc) from None
        except OSError as err:
            raise CommandError(f"cannot write {filename}: {err}") from None
        finally:
            if not done and os.path.exists(partial):
                os.unlink(partial)
        kind = "etcd, " if backend == "etcd" else ""
        click.echo(f"Snapshot saved at {filename} ({kind}revision {revision}, {human_size(size)})")
        return 0

    context.exit_with(context.run(opts, verb))


@snapshot.command("status")
@click.argument("filename")
def status(filename: str) -> None:
    """Check a snapshot file and print its revision, keys and size."""
    try:
        found = _status(filename)
    except (snapshots.SnapshotError, StorageError) as err:
        echo_err(f"Error: {err}")
        raise click.exceptions.Exit(1) from None
    click.echo(f"{'REVISION':<10}{'TOTAL KEYS':<12}TOTAL SIZE")
    click.echo(f"{found.revision:<10}{found.keys:<12}{human_size(found.size)}")


def _status(filename: str) -> snapshots.SnapshotStatus:
    """A SQLite snapshot's status, or an etcd snapshot's (revision as a resourceVersion)."""
    if not is_etcd_snapshot(filename):
        return snapshots.status(filename)
    found = etcd_status(filename)
    return snapshots.SnapshotStatus(from_etcd(found.revision), found.keys, 0, found.size)


@snapshot.command("restore")
@click.argument("filename")
@click.option("--data-dir", required=True, help="A new directory for the restored store.")
@click.option(
    "--bump-revision",
    type=click.IntRange(min=0),
    default=0,
    help="Move the revision counter this far ahead (use with --mark-compacted).",
)
@click.option(
    "--mark-compacted",
    is_flag=True,
    help="Mark every revision before the bumped one compacted: old watchers must re-list.",
)
def restore(filename: str, data_dir: str, bump_revision: int, mark_compacted: bool) -> None:
    """Restore a snapshot into a new data directory (offline; start an API server there)."""
    if is_etcd_snapshot(filename):
        echo_err(f"Error: {filename} is an etcd snapshot: {RESTORE_HINT}")
        raise click.exceptions.Exit(1)
    try:
        found = snapshots.restore(
            filename, data_dir, bump_revision=bump_revision, mark_compacted=mark_compacted
        )
    except (snapshots.SnapshotError, OSError) as err:
        echo_err(f"Error: {err}")
        raise click.exceptions.Exit(1) from None
    click.echo(
        f"Restored snapshot {filename} into {data_dir} "
        f"(revision {found.revision}, {found.keys} keys)"
    )
