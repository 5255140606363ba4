"""A full disk under the API server: writes fail with a clear 500, reads and watches go on,
nothing is half-written, and writes succeed again once space is freed.

The data directory is a small tmpfs (root), filled by a filler file the test
owns; freeing space is deleting it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from apimachinery import errors
from apimachinery.client import Client
from apiserver.server import APIServer
from apiserver.storage import open_storage
from protos import core_pb2

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root"),
]


def configmap(name: str, size: int = 20_000) -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    cm.metadata.name = name
    cm.data["blob"] = "x" * size
    return cm


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], check=True
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Write a filler file until the filesystem is full; the file, to delete later."""
    filler = directory / "filler"
    with open(filler, "wb") as f:
        chunk = b"\0" * 65536
        with contextlib.suppress(OSError):
            while True:
                f.write(chunk)
                f.flush()
    return filler


async def test_disk_full_fails_writes_cleanly_and_recovers(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "data", "6m") as data:
        storage = await open_storage("sqlite", str(data))
        server = APIServer(storage, f"unix:{tmp_path}/api.sock", run_dir=str(tmp_path))
        await server.start()
        client = Client(server.local_address, timeout=10)
        try:
            await client.create(configmap("before", 100))
            _, rv = await client.list(core_pb2.ConfigMap, "default")
            seen: list[str] = []

            async def watch() -> None:
                async for ev in client.watch(core_pb2.ConfigMap, "default", resource_version=rv):
                    seen.append(ev.object.metadata.name)

            watcher = asyncio.ensure_future(watch())
            filler = fill(data)
            stored: list[str] = []
            failure: errors.StatusError | None = None
            for i in range(300):
                try:
                    await client.create(configmap(f"during{i}"))
                    stored.append(f"during{i}")
                except errors.StatusError as err:
                    failure = err
                    break
            assert failure is not None, "the disk never filled"
            assert isinstance(failure, errors.InternalError), failure
            assert "disk is full" in failure.message, failure.message
            refused = f"during{len(stored)}"

            # Reads and watches go on; the refused object is nowhere.
            assert (await client.get(core_pb2.ConfigMap, "before", "default")).data["blob"]
            names = {o.metadata.name for o in (await client.list(core_pb2.ConfigMap, "default"))[0]}
            assert names == {"before", *stored}
            with pytest.raises(errors.InternalError):
                await client.create(configmap("still-full"))

            filler.unlink()  # space is back
            await client.create(configmap("after"))
            for _ in range(100):
                if "after" in seen:
                    break
                await asyncio.sleep(0.05)
            assert seen == [*stored, "after"]
            assert refused not in seen and "still-full" not in seen
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        finally:
            await client.close()
            await server.stop(grace=0)

        # The store reopens clean (integrity and revision checks) with exactly what was acked.
        again = await open_storage("sqlite", str(data))
        try:
            items, _ = await again.list("/registry/configmaps/default/")
            assert sorted(kv.key.rsplit("/", 1)[1] for kv in items) == sorted(
                ["before", *stored, "after"]
            )
        finally:
            await again.close()
