"""`tinykube migrate-storage --from sqlite:DIR --to etcd://...`: a SQLite cluster moved to etcd.

An API server on SQLite stores ConfigMaps, changes and deletes some (so the
SQLite revisions have gaps and history), and stops. The migration copies
every key into a real, empty etcd. An API server on that etcd then serves
every object with its data; their resourceVersions are new but in the same
order; every one is greater than any SQLite handed out, and an old one is
410 Expired for a watch (docs/etcd.md, "Migrating from SQLite"). A second
migration into the now non-empty etcd, and one from a store whose API server
still runs, are refused with the reason.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner

from apimachinery import errors
from apimachinery.client import Client
from apiserver.server import APIServer
from apiserver.storage import open_storage
from apiserver.storage.etcd import EtcdStorage
from apiserver.storage.etcd_client import EtcdConfig
from cli.main import cli
from localcluster.processes import ApiServerProcess
from protos import core_pb2

from .etcd_server import EtcdServer, needs_etcd

pytestmark = [needs_etcd, pytest.mark.timeout(120)]
Objects = dict[str, tuple[int, dict[str, str]]]


def configmap(name: str, **data: str) -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    cm.metadata.name, cm.metadata.namespace = name, "default"
    cm.data.update(data)
    return cm


async def read(client: Client) -> Objects:
    items, _ = await client.list(core_pb2.ConfigMap, "default")
    return {o.metadata.name: (int(o.metadata.resource_version), dict(o.data)) for o in items}


async def fill_sqlite(data_dir: Path) -> tuple[Objects, int]:
    server = APIServer(await open_storage("sqlite", str(data_dir)), f"unix:{data_dir}/a.sock")
    await server.start()
    try:
        async with Client(server.local_address) as client:
            for i in range(30):
                await client.create(configmap(f"cm{i}", n=str(i)))
            for i in range(0, 30, 3):  # changed after the later ones were created
                cm = await client.get(core_pb2.ConfigMap, f"cm{i}", "default")
                cm.data["changed"] = "yes"
                await client.update(cm)
            for i in range(1, 30, 7):
                await client.delete(core_pb2.ConfigMap, f"cm{i}", "default")
            return await read(client), await server.storage.current_revision()
    finally:
        await server.stop(grace=0)


async def serve_etcd(etcd: EtcdServer, tmp_path: Path) -> tuple[Objects, str]:
    """The objects an API server on the etcd serves, and what a watch from RV 5 says."""
    server = APIServer(EtcdStorage(EtcdConfig((etcd.endpoint,))), f"unix:{tmp_path}/e.sock")
    await server.start()
    try:
        async with Client(server.local_address) as client:
            objects = await read(client)
            watch = client.watch(core_pb2.ConfigMap, "default", resource_version="5")
            try:
                await asyncio.wait_for(watch.__anext__(), 10)
                outcome = "an event"
            except errors.Expired:
                outcome = "expired"
            return objects, outcome
    finally:
        await server.stop(grace=0)


def test_sqlite_to_etcd(etcd_server: EtcdServer, tmp_path: Path) -> None:
    before, sqlite_revision = asyncio.run(fill_sqlite(tmp_path / "sqlite"))
    args = ["migrate-storage", "--from", f"sqlite:{tmp_path / 'sqlite'}"]
    args += ["--to", f"etcd://{etcd_server.endpoint}"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Migrated ")
    assert f"(SQLite revision {sqlite_revision})" in result.output

    after, watched = asyncio.run(serve_etcd(etcd_server, tmp_path))
    assert {k: v[1] for k, v in after.items()} == {k: v[1] for k, v in before.items()}
    by_old = sorted(before, key=lambda k: before[k][0])
    by_new = sorted(after, key=lambda k: after[k][0])
    assert by_old == by_new  # the order of resourceVersions is kept
    assert [after[k][0] for k in by_new] != [before[k][0] for k in by_old]  # not the numbers
    assert watched == "expired"  # an old resourceVersion is compacted: re-list

    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 1
    assert "etcd already holds" in again.output and "empty etcd" in again.output


def test_a_running_servers_store_and_bad_specs_are_refused(
    etcd_server: EtcdServer, tmp_path: Path
) -> None:
    server = ApiServerProcess(tmp_path / "live", extra_args=("--no-scheduler", "--no-controllers"))
    server.start()
    try:
        target = ["--to", f"etcd://{etcd_server.endpoint}"]
        live = CliRunner().invoke(
            cli, ["migrate-storage", "--from", f"sqlite:{server.data_dir}", *target]
        )
        assert live.exit_code == 1, live.output
        assert "database is locked (is another server using it?)" in live.output
    finally:
        server.stop()
    cases = [
        (["--from", "sqlite:/nonexistent/dir", *target], "no SQLite store at"),
        (["--from", "etcd://127.0.0.1:1", *target], "only sqlite:DIR or sqlite:FILE"),
        (
            ["--from", f"sqlite:{server.data_dir}", "--to", "sqlite:/x"],
            "the target must be etcd://",
        ),
    ]
    for args, message in cases:
        result = CliRunner().invoke(cli, ["migrate-storage", *args])
        assert result.exit_code == 1 and message in result.output, result.output
