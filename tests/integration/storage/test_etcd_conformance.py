"""The storage conformance suite on a real etcd: every test the SQLite backend passes.

`TestEtcdConformance` inherits every test of the shared suite
(tests/unit/storage: conformance.py, watch_properties.py,
write_concurrency.py), as `TestSQLiteConformance` does, with the same
assertions. It lives here rather than beside the SQLite run because it takes
about a minute: the property test starts a fresh member for each of its 30
examples and replays a watch from every revision, and etcd catches a watch
that starts in the past up from its background loop, which runs every 100 ms.
It needs no root.

Each `make_storage(path)` owns a member whose data directory is under `path`:
closing the store kills the member (SIGKILL, so what survives is what etcd
made durable), and `make_storage` with the same path restarts it on the same
data, which is how the suite's durability tests reopen a store.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from apiserver.storage.etcd import EtcdStorage
from apiserver.storage.etcd_client import EtcdConfig
from apiserver.storage.interface import Storage
from tests.unit.storage.conformance import StorageConformance
from tests.unit.storage.etcd_server import EtcdServer, needs_etcd

# The member of each make_storage path, so that a reopen finds (and restarts) its data.
_MEMBERS: dict[Path, EtcdServer] = {}


class _OwnedEtcdStorage(EtcdStorage):
    """An etcd store that owns its member: closing the store kills the member."""

    def __init__(self, server: EtcdServer, *, watch_buffer_size: int) -> None:
        super().__init__(EtcdConfig((server.endpoint,)), watch_buffer_size=watch_buffer_size)
        self.server = server

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            self.server.stop()


@needs_etcd
class TestEtcdConformance(StorageConformance):
    async def make_storage(self, path: Path, *, watch_buffer_size: int = 1000) -> Storage:
        server = _MEMBERS.setdefault(path, EtcdServer(path / "etcd"))
        await asyncio.to_thread(server.start)
        return _OwnedEtcdStorage(server, watch_buffer_size=watch_buffer_size)
