"""A real API server on an event loop of its own thread, for tests whose client is synchronous.

Hypothesis drives its examples from plain functions, and the official Python
client blocks; neither can share the test's event loop with the server. So
the server (TLS on a loopback port with the PKI of `pki init`'s code, SQLite
in the test's directory) runs on a loop in a daemon thread, and `call` runs a
coroutine there (to read the storage directly, or compact it). `restart`
stops it and starts a new one on the same data directory and port, as a
process restart would (the storage is closed and reopened).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import threading
from pathlib import Path
from typing import Any

from apimachinery import scheme
from apiserver.listeners import ServingOptions
from apiserver.server import APIServer
from apiserver.storage import open_storage
from cli.cmd_pki import NodeSpec, PkiOptions, init_pki
from tests.unit.apiserver.httpapi.client import HTTPS


class ServerThread:
    """The API server on its own loop in a thread; `call` runs a coroutine there."""

    def __init__(self, root: Path, port: int = 0) -> None:
        self.root = root
        self.pki = root / "pki-dir"
        local = ipaddress.ip_address("127.0.0.1")
        nodes = (NodeSpec("node1", (local,)),)
        init_pki(PkiOptions(directory=self.pki, nodes=nodes), echo=lambda *_: None)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: APIServer = self.call(self._start(port))
        self.port = self.server.ports[1]
        self.serving = True

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=timeout)

    async def _start(self, port: int) -> APIServer:
        storage = await open_storage("sqlite", str(self.root / "data"))
        serving = ServingOptions(
            listen=(f"127.0.0.1:{port}",),
            tls_cert_file=str(self.pki / "pki" / "apiserver.crt"),
            tls_private_key_file=str(self.pki / "pki" / "apiserver.key"),
            client_ca_file=str(self.pki / "pki" / "ca.crt"),
        )
        server = APIServer(storage, f"unix:{self.root}/api.sock", serving=serving)
        await server.start()
        return server

    def admin(self) -> HTTPS:
        return HTTPS(self.port, self.pki / "pki" / "ca.crt", self.pki / "admin.conf")

    def halt(self) -> None:
        """Stop serving (connections dropped, storage closed); the thread's loop stays."""
        if self.serving:
            self.serving = False
            self.call(self.server.stop(grace=0))

    def resume(self) -> None:
        """A new server on the same data directory and port."""
        self.server = self.call(self._start(self.port))
        self.serving = True

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.halt()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    async def _snapshot(self) -> dict[str, int]:
        kvs, _ = await self.server.storage.list("/")
        return {kv.key: kv.mod_revision for kv in kvs}

    def snapshot(self) -> dict[str, int]:
        """Every stored key and the revision it was last written at."""
        result: dict[str, int] = self.call(self._snapshot())
        return result

    async def _decode_all(self) -> None:
        for info in scheme.KINDS:
            await self.server.store.list_objects(info)

    def decode_all(self) -> None:
        """Read every stored object back (raises if one does not decode)."""
        self.call(self._decode_all())

    async def _compact(self) -> int:
        revision = await self.server.storage.current_revision()
        await self.server.storage.compact(revision)
        return revision

    def compact(self) -> int:
        """Forget the history up to now, as the periodic compactor does; the revision."""
        result: int = self.call(self._compact())
        return result
