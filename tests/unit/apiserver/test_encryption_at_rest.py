"""Encryption at rest through a real API server: Secrets unreadable on disk, keys rotated by
rewrite, and a bad configuration stopping the server before it opens anything."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from apimachinery.client import Client
from apiserver.server import APIServer, serve
from apiserver.storage import open_storage
from apiserver.storage.encrypted import EncryptedStorage
from apiserver.storage.encryption import EncryptionConfigError, load
from apiserver.storage.sqlite import DB_FILE
from protos import core_pb2

KEY1 = base64.b64encode(b"1" * 32).decode()
KEY2 = base64.b64encode(b"2" * 32).decode()
VALUE = b"correct-horse-battery-staple"


def write_config(path: Path, *keys: tuple[str, str]) -> str:
    listed = ", ".join(f"{{name: {name}, secret: '{secret}'}}" for name, secret in keys)
    path.write_text(
        "apiVersion: apiserver.config.k8s.io/v1\n"
        "kind: EncryptionConfiguration\n"
        "resources:\n"
        "  - resources: [secrets]\n"
        "    providers:\n"
        f"      - aesgcm: {{keys: [{listed}]}}\n"
        "      - identity: {}\n"
    )
    return str(path)


@asynccontextmanager
async def running(data: Path, config: str) -> AsyncIterator[Client]:
    storage = EncryptedStorage(await open_storage("sqlite", str(data)), load(config))
    server = APIServer(storage, f"unix:{data}.sock")
    await server.start()
    client = Client(server.local_address, timeout=10)
    try:
        yield client
    finally:
        await client.close()
        await server.stop(grace=0)


def current_rows(data: Path) -> bytes:
    return b"".join(p.read_bytes() for p in data.iterdir() if p.name.startswith(DB_FILE))


def secret(name: str) -> core_pb2.Secret:
    s = core_pb2.Secret(api_version="v1", kind="Secret")
    s.metadata.name = name
    s.data["password"] = VALUE
    return s


async def test_a_secret_is_not_on_disk_and_rotates_by_rewrite(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = write_config(tmp_path / "enc.yaml", ("key1", KEY1))
    async with running(data, config) as client:
        await client.create(secret("db"))
        got = await client.get(core_pb2.Secret, "db")
        assert got.data["password"] == VALUE
    raw = current_rows(data)
    assert VALUE not in raw and b"k8s:enc:aesgcm:v1:key1:" in raw

    rotated = write_config(tmp_path / "enc2.yaml", ("key2", KEY2), ("key1", KEY1))
    async with running(data, rotated) as client:
        before = await client.get(core_pb2.Secret, "db")
        after = await client.update(before)  # unchanged, but stale: written again under key2
        assert int(after.metadata.resource_version) > int(before.metadata.resource_version)
        again = await client.update(after)  # now current: no write
        assert again.metadata.resource_version == after.metadata.resource_version
    only_new = write_config(tmp_path / "enc3.yaml", ("key2", KEY2))
    async with running(data, only_new) as client:
        assert (await client.get(core_pb2.Secret, "db")).data["password"] == VALUE
    assert VALUE not in current_rows(data)


async def test_a_bad_configuration_stops_the_server_first(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"
        "resources: [{resources: [secrets], providers: [{aesgcm: {keys: "
        "[{name: k, secret: c2hvcnQ=}]}}]}]\n"
    )
    with pytest.raises(EncryptionConfigError, match=r"keys\[0\]\.secret: Invalid value"):
        await asyncio.wait_for(
            serve(
                str(tmp_path / "data"),
                f"unix:{tmp_path}/api.sock",
                encryption_provider_config=str(bad),
            ),
            10,
        )
    assert not (tmp_path / "data" / DB_FILE).exists()


def test_the_apiserver_command_names_the_bad_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n")
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("tinykube")),
            "apiserver",
            "--data-dir",
            str(tmp_path / "data"),
            "--listen",
            f"unix:{tmp_path}/api.sock",
            "--encryption-provider-config",
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "resources: Required value" in done.stderr
    assert not (tmp_path / "data" / DB_FILE).exists()
