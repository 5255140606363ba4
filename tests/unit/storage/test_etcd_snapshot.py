"""`tinykube snapshot save` on the etcd backend: etcd's snapshot, restored with etcd's tool.

A real `tinykube apiserver --storage etcd://...` over a real etcd member
holds ConfigMaps; `snapshot save` streams etcd's Maintenance.Snapshot through
the API server; `snapshot status` reads the file with etcdctl/etcdutl;
`snapshot restore` refuses it and names etcd's tool. Then the test restores
the file as an operator would (`etcdutl snapshot restore`, or Debian etcd
3.4's `etcdctl snapshot restore`) into a new data directory, starts etcd and
an API server there, and finds every object at its resourceVersion and the
write made after the snapshot absent.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from apimachinery.client import Client
from apiserver.server import APIServer
from apiserver.storage.etcd import EtcdStorage
from apiserver.storage.etcd_client import EtcdConfig
from apiserver.storage.etcd_snapshot import etcd_tool, is_etcd_snapshot
from cli.main import cli
from localcluster.processes import ApiServerProcess
from protos import core_pb2

from .etcd_server import EtcdServer, needs_etcd

pytestmark = [needs_etcd, pytest.mark.timeout(120)]
needs_etcd_tool = pytest.mark.skipif(
    etcd_tool() is None, reason="neither etcdutl nor etcdctl (Debian: etcd-client) is installed"
)


def configmap(name: str, n: int) -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    cm.metadata.name, cm.metadata.namespace = name, "default"
    cm.data["n"] = str(n)
    return cm


async def configmaps(client: Client) -> dict[str, tuple[str, str]]:
    items, _ = await client.list(core_pb2.ConfigMap, "default")
    return {o.metadata.name: (o.metadata.resource_version, o.data["n"]) for o in items}


def tk(server: str, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--server", server, *args])


@needs_etcd_tool
def test_save_status_and_restore_with_etcds_tool(etcd_server: EtcdServer, tmp_path: Path) -> None:
    apiserver = ApiServerProcess(
        tmp_path / "apiserver",
        extra_args=(
            "--storage",
            f"etcd://{etcd_server.endpoint}",
            "--no-scheduler",
            "--no-controllers",
        ),
    )
    apiserver.start()
    try:

        async def fill() -> dict[str, tuple[str, str]]:
            async with Client(apiserver.address) as client:
                for i in range(20):
                    await client.create(configmap(f"snap{i}", i))
                return await configmaps(client)

        before = asyncio.run(fill())
        path = tmp_path / "backup.db"
        saved = tk(apiserver.address, "snapshot", "save", str(path))
        assert saved.exit_code == 0, saved.output
        assert saved.stdout.startswith(f"Snapshot saved at {path} (etcd, revision ")
        assert is_etcd_snapshot(str(path))

        async def after() -> None:
            async with Client(apiserver.address) as client:
                await client.create(configmap("after-snapshot", 99))

        asyncio.run(after())
    finally:
        apiserver.stop()

    newest = max(int(rv) for rv, _ in before.values())
    status = tk("unix:/nonexistent", "snapshot", "status", str(path))
    assert status.exit_code == 0, status.output
    header, values = status.stdout.splitlines()
    assert header.split() == ["REVISION", "TOTAL", "KEYS", "TOTAL", "SIZE"]
    assert int(values.split()[0]) >= newest  # the RBAC policy's writes come first, then ours

    refused = tk(
        "unix:/nonexistent", "snapshot", "restore", str(path), "--data-dir", str(tmp_path / "x")
    )
    assert refused.exit_code == 1
    assert "is an etcd snapshot" in refused.output and "etcdutl snapshot restore" in refused.output

    restored = EtcdServer(tmp_path / "restored" / "etcd")
    tool = etcd_tool()
    assert tool is not None
    peer = f"http://127.0.0.1:{restored.peer_port}"
    run = subprocess.run(
        [
            *tool,
            "snapshot",
            "restore",
            str(path),
            "--data-dir",
            str(restored.data_dir),
            "--name",
            "default",
            "--initial-cluster",
            f"default={peer}",
            "--initial-advertise-peer-urls",
            peer,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "ETCDCTL_API": "3"},
    )
    assert run.returncode == 0, run.stderr
    restored.start()
    try:
        assert asyncio.run(read_restored(restored, tmp_path)) == before
    finally:
        restored.remove()


async def read_restored(etcd: EtcdServer, tmp_path: Path) -> dict[str, tuple[str, str]]:
    server = APIServer(EtcdStorage(EtcdConfig((etcd.endpoint,))), f"unix:{tmp_path}/r.sock")
    await server.start()
    try:
        async with Client(server.local_address) as client:
            return await configmaps(client)
    finally:
        await server.stop(grace=0)


async def test_a_stream_cut_before_its_digest_is_an_error(tmp_path: Path) -> None:
    import hashlib

    from apiserver.storage.etcd_snapshot import save_stream
    from apiserver.storage.interface import StorageError
    from protos import etcd_pb2 as pb

    data = [b"a" * 4096, b"b" * 4096]

    async def stream(chunks: list[bytes]) -> Any:
        for i, blob in enumerate(chunks):
            response = pb.SnapshotResponse(blob=blob)
            if i == 0:
                response.header.revision = 41
            yield response

    whole = [*data, hashlib.sha256(b"".join(data)).digest()]
    assert await save_stream(stream(whole), str(tmp_path / "ok.db"), 7) == 41
    assert (tmp_path / "ok.db").read_bytes() == b"".join(whole)  # the digest is kept, as etcd's
    with pytest.raises(StorageError, match="ended before its digest"):
        await save_stream(stream(data), str(tmp_path / "cut.db"), 7)
    assert not is_etcd_snapshot(str(tmp_path / "ok.db"))  # not a bbolt file
