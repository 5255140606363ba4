"""`snapshot save|status|restore` against a real API server, and a restored store serving again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest

from apimachinery.channel import Credentials
from apimachinery.client import Client
from apiserver.storage import snapshot as snapshots
from protos import maintenance_pb2, maintenance_pb2_grpc
from tests.unit.apiserver.httpapi.client import TOKEN, Cluster
from tests.unit.apiserver.httpapi.conftest import cluster as cluster  # the TLS server
from tests.unit.cli_apiserver import ApiServerProcess, no_traceback
from tests.unit.cli_apiserver import apiserver as apiserver  # the module's server

pytestmark = pytest.mark.timeout(90)

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
data:
  n: "{n}"
"""


def configmaps(srv: ApiServerProcess) -> dict[str, tuple[str, str]]:
    """name -> (resourceVersion, data n) of every ConfigMap in default."""

    async def read(client: Client) -> list[Any]:
        items, _ = await client.list("configmaps", "default")
        return items

    return {o.metadata.name: (o.metadata.resource_version, o.data["n"]) for o in srv.call(read)}


def test_save_status_restore_and_serve_again(apiserver: ApiServerProcess, tmp_path: Path) -> None:
    for i in range(20):
        apiserver.create_yaml(CONFIGMAP.format(name=f"snap{i}", n=i))
    before = configmaps(apiserver)
    path = tmp_path / "backup.db"
    saved = apiserver.tk("snapshot", "save", str(path))
    assert saved.exit_code == 0, saved.output
    assert saved.stdout.startswith(f"Snapshot saved at {path} (revision ")
    assert not (tmp_path / "backup.db.part").exists()

    apiserver.create_yaml(CONFIGMAP.format(name="after-snapshot", n=99))
    status = apiserver.tk("snapshot", "status", str(path))
    assert status.exit_code == 0, status.output
    header, values = status.stdout.splitlines()
    assert header.split() == ["REVISION", "TOTAL", "KEYS", "TOTAL", "SIZE"]
    revision = int(values.split()[0])
    assert revision == max(int(rv) for rv, _ in before.values())

    restored_dir = tmp_path / "restored"
    restored = apiserver.tk("snapshot", "restore", str(path), "--data-dir", str(restored_dir))
    assert restored.exit_code == 0, restored.output
    assert f"(revision {revision}," in restored.stdout
    second = ApiServerProcess(restored_dir)
    try:
        assert configmaps(second) == before  # every object, at its resourceVersion
    finally:
        second.stop()

    again = apiserver.tk("snapshot", "restore", str(path), "--data-dir", str(restored_dir))
    no_traceback(again)
    assert again.exit_code == 1
    assert "already holds a database" in again.output


def test_bump_revision_marks_old_revisions_compacted(
    apiserver: ApiServerProcess, tmp_path: Path
) -> None:
    path = tmp_path / "b.db"
    assert apiserver.tk("snapshot", "save", str(path)).exit_code == 0
    plain = snapshots.status(str(path))
    bumped = snapshots.restore(
        str(path), str(tmp_path / "bumped"), bump_revision=1000, mark_compacted=True
    )
    assert bumped.revision == plain.revision + 1000
    assert bumped.compacted == bumped.revision
    assert bumped.keys == plain.keys


@pytest.mark.parametrize("content", [b"", b"not a database at all\n" * 300])
def test_bad_snapshot_files_are_refused(tmp_path: Path, content: bytes) -> None:
    from click.testing import CliRunner

    from cli.main import cli

    path = tmp_path / "bad.db"
    path.write_bytes(content)
    for args in (["status", str(path)], ["restore", str(path), "--data-dir", str(tmp_path / "d")]):
        result = CliRunner().invoke(cli, ["snapshot", *args])
        no_traceback(result)
        assert result.exit_code == 1, result.output
        assert "not usable" in result.output
    assert not (tmp_path / "d" / "tinykube.db").exists()
    missing = CliRunner().invoke(cli, ["snapshot", "status", str(tmp_path / "none.db")])
    assert missing.exit_code == 1 and "does not exist" in missing.output


async def test_only_an_administrator_may_take_a_snapshot(cluster: Cluster) -> None:
    ca = (cluster.pki / "pki" / "ca.crt").read_bytes()
    address = f"127.0.0.1:{cluster.port}"
    bob = Client(address, credentials=Credentials(ca_pem=ca, token=TOKEN, server_name="localhost"))
    try:
        stub = maintenance_pb2_grpc.MaintenanceStub(bob._connection.channel())
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in stub.Snapshot(maintenance_pb2.SnapshotRequest()):
                pass
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "/snapshot" in (caught.value.details() or "")
    finally:
        await bob.close()
