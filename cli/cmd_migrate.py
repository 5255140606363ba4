"""`tinykube migrate-storage`: move a cluster's store from SQLite to etcd, offline.

    tinykube migrate-storage --from sqlite:/var/lib/tinykube/apiserver \\
        --to etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379 \\
        [--etcd-cafile ca.crt --etcd-certfile client.crt --etcd-keyfile client.key]

k3s users make the same move (`--cluster-init` over an existing datastore).
The API server must be stopped (it holds the SQLite file); the etcd cluster
must be empty. What happens:

    1. open the SQLite store (a data directory, or the database file itself)
       and read every key at its newest revision
    2. write each key into etcd in the order of its resourceVersion (mod
       revision), one guarded create per key:
       Txn(If create_revision(key) == 0 Then Put(key, value))
    3. move etcd's revision past the SQLite store's newest one (writes to a
       scratch key, deleted afterwards), then compact at it
    4. check that etcd holds exactly the keys copied

Then start the API server with `--storage etcd://...` (and the same
--encryption-provider-config: values are copied as stored, ciphertexts
included).

What is kept: every object, byte for byte, and the order of their
resourceVersions (an object changed after another still is, so "newest
first" sorts and informers' diffs agree). What is not: the resourceVersions
themselves. etcd numbers its own writes, one revision per transaction, from
its current revision; a key cannot be written at a chosen revision. So every
object gets a new resourceVersion, creation revisions restart at the copy,
and the history (past versions, what a watch would replay) stays behind.
Step 3 makes that safe: every new resourceVersion is greater than any the
SQLite store handed out, and everything up to it is compacted, so a client
resuming a watch (or a compare-and-swap) with an old resourceVersion gets
410 Gone or 409 Conflict and re-reads, rather than silently missing changes
-- what `etcdutl snapshot restore --bump-revision --mark-compacted` does for
a restore. Worked example: SQLite at revision 5000 holding 300 keys; the
copy takes etcd revisions 2..301 (resourceVersions 1..300), the scratch
writes move it to resourceVersion 5001, compaction at 5001: a watch from
4990 is Expired and the informer re-lists.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from cli.context import echo_err

if TYPE_CHECKING:
    from apiserver.storage.etcd import EtcdStorage
    from apiserver.storage.etcd_client import EtcdClient
    from apiserver.storage.interface import Storage

log = logging.getLogger(__name__)

SCRATCH_KEY = "/tinykube/migration"  # outside /registry: no API server ever reads it
BUMP_CONCURRENCY = 64


@dataclass(frozen=True)
class Migrated:
    keys: int
    source_revision: int
    first: int  # resourceVersions the copy took, first and last
    last: int
    compacted: int


def sqlite_spec(source: str) -> str:
    """`sqlite:DIR` (an API server's data directory) or `sqlite:FILE` -> `sqlite:FILE`;
    ValueError when it names no SQLite store."""
    from apiserver.storage.sqlite import DB_FILE

    kind, _, path = source.partition(":")
    if kind != "sqlite" or not path:
        raise ValueError(f"--from {source!r}: only sqlite:DIR or sqlite:FILE can be migrated")
    if os.path.isdir(path):
        path = os.path.join(path, DB_FILE)
    if not os.path.isfile(path):
        raise ValueError(f"--from {source!r}: no SQLite store at {path}")
    return f"sqlite:{path}"


async def migrate(source: str, target: str) -> Migrated:
    """Copy the SQLite store `source` into the empty etcd `target` (module docstring)."""
    from apiserver.storage import open_storage
    from apiserver.storage.etcd import EtcdStorage
    from apiserver.storage.etcd_client import EtcdClient, EtcdConfig

    src = await open_storage(sqlite_spec(source), "")
    dst = EtcdStorage(EtcdConfig.parse(target))
    raw = EtcdClient(EtcdConfig.parse(target))  # the calls beside the storage interface
    try:
        return await _copy(src, dst, raw)
    finally:
        await raw.close()
        await dst.close()
        await src.close()


async def _copy(src: Storage, dst: EtcdStorage, raw: EtcdClient) -> Migrated:
    held = await _etcd_keys(raw)
    if held:
        raise ValueError(f"etcd already holds {held} keys: migrate into an empty etcd cluster")
    items, source_revision = await src.list("")
    items.sort(key=lambda kv: kv.mod_revision)
    first = last = 0
    for n, kv in enumerate(items, 1):
        written = await dst.create(kv.key, kv.value)
        first, last = first or written.mod_revision, written.mod_revision
        if n % 1000 == 0:
            log.info("copying", extra={"keys": n, "of": len(items)})
    compacted = await _bump_and_compact(dst, raw, source_revision)
    copied = await _etcd_keys(raw)
    if copied != len(items):
        raise ValueError(f"etcd holds {copied} keys after copying {len(items)}: check it")
    return Migrated(len(items), source_revision, first, last, compacted)


async def _etcd_keys(raw: EtcdClient) -> int:
    from protos import etcd_pb2 as pb

    everything = pb.RangeRequest(key=b"\0", range_end=b"\0", count_only=True)
    return int((await raw.range(everything)).count)


async def _bump_and_compact(dst: EtcdStorage, raw: EtcdClient, past: int) -> int:
    """Move etcd beyond resourceVersion `past` with scratch writes, delete them, compact."""
    from apiserver.storage.etcd_mapping import encode_key
    from protos import etcd_pb2 as pb

    put = pb.RequestOp(request_put=pb.PutRequest(key=encode_key(SCRATCH_KEY), value=b"-"))
    missing = past - await dst.current_revision()
    while missing > 0:
        batch = min(missing, BUMP_CONCURRENCY)
        await asyncio.gather(*(raw.txn(pb.TxnRequest(success=[put])) for _ in range(batch)))
        missing = past - await dst.current_revision()
    delete = pb.DeleteRangeRequest(key=encode_key(SCRATCH_KEY))
    await raw.txn(pb.TxnRequest(success=[pb.RequestOp(request_delete_range=delete)]))
    newest = await dst.current_revision()
    await dst.compact(newest)
    return newest


@click.command("migrate-storage")
@click.option(
    "--from", "source", required=True, help="The SQLite store: sqlite:DIR or sqlite:FILE."
)
@click.option("--to", "target", required=True, help="The etcd cluster: etcd://HOST:PORT[,...].")
@click.option("--etcd-cafile", default="", help="The CA of etcd's serving certificate (TLS).")
@click.option("--etcd-certfile", default="", help="The client certificate for etcd (PEM).")
@click.option("--etcd-keyfile", default="", help="The client certificate's key (PEM).")
def migrate_storage(
    source: str, target: str, etcd_cafile: str, etcd_certfile: str, etcd_keyfile: str
) -> None:
    """Copy a stopped API server's SQLite store into an empty etcd cluster."""
    from apiserver.storage import parse_spec, storage_spec
    from apiserver.storage.interface import StorageError

    try:
        if parse_spec(target)[0] != "etcd":
            raise StorageError(f"--to {target!r}: the target must be etcd://HOST:PORT[,...]")
        spec = storage_spec(
            target, etcd_cafile=etcd_cafile, etcd_certfile=etcd_certfile, etcd_keyfile=etcd_keyfile
        )
        done = asyncio.run(migrate(source, spec))
    except (ValueError, StorageError, OSError) as err:
        echo_err(f"error: {err}")
        raise click.exceptions.Exit(1) from None
    click.echo(
        f"Migrated {done.keys} keys (SQLite revision {done.source_revision}) to etcd: "
        f"resourceVersions {done.first}..{done.last}, compacted at {done.compacted}"
    )
