"""A Storage that encrypts values on their way down and decrypts them on their way up.

Kubernetes applies encryption at rest in its storage layer, between the
registry and etcd (the value transformers of `storage/value`), so nothing
above it — the registry, the watch cache, the API — ever sees ciphertext,
and nothing below it — the database file, a backup, etcd's own disk — ever
sees plaintext. This wrapper is that layer over any backend:

    registry ──bytes──► EncryptedStorage ──k8s:enc:aesgcm:v1:key1:…──► SQLiteStorage

Only keys whose resource the EncryptionConfiguration names are transformed
(`/registry/secrets/...` for `resources: [secrets]`); everything else passes
through untouched, so the cost is paid by Secrets alone. Revisions, watch
order, compare-and-swap and pages read at an old revision (`list_page`) are
the backend's: a ciphertext is just another value to it.

Every value read back carries `stale=True` when it was not written under
the primary provider and key; the registry uses that to rewrite it on the
next update even if the object did not change (see encryption.py on key
rotation).
"""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from apiserver.storage.encryption import EncryptionConfig
from apiserver.storage.interface import Event, KeyValue, ListPage, Storage


class EncryptedStorage(Storage):
    """Any backend, with the configured resources' values encrypted at rest."""

    def __init__(self, inner: Storage, config: EncryptionConfig) -> None:
        self.inner = inner
        self.config = config
        self.name = inner.name

    def __getattr__(self, name: str) -> Any:
        # Backend extras (SQLite's compactor and counters) stay reachable through the wrapper.
        return getattr(self.inner, name)

    def _down(self, key: str, value: bytes) -> bytes:
        transformer = self.config.for_key(key)
        return value if transformer is None else transformer.to_storage(value, key.encode())

    def _up(self, kv: KeyValue) -> KeyValue:
        transformer = self.config.for_key(kv.key)
        if transformer is None:
            return kv
        value, stale = transformer.from_storage(kv.value, kv.key.encode())
        return dataclasses.replace(kv, value=value, stale=stale)

    def _event_up(self, event: Event) -> Event:
        transformer = self.config.for_key(event.key)
        if transformer is None:
            return event
        context = event.key.encode()
        value, _ = transformer.from_storage(event.value, context)
        prev = event.prev_value
        if prev is not None:
            prev, _ = transformer.from_storage(prev, context)
        return dataclasses.replace(event, value=value, prev_value=prev)

    async def get(self, key: str) -> KeyValue | None:
        kv = await self.inner.get(key)
        return None if kv is None else self._up(kv)

    async def list(self, prefix: str) -> tuple[builtins.list[KeyValue], int]:
        items, revision = await self.inner.list(prefix)
        return [self._up(kv) for kv in items], revision

    async def list_page(
        self, prefix: str, *, revision: int = 0, start: str = "", limit: int = 0
    ) -> ListPage:
        page = await self.inner.list_page(prefix, revision=revision, start=start, limit=limit)
        return dataclasses.replace(page, items=[self._up(kv) for kv in page.items])

    async def create(self, key: str, value: bytes) -> KeyValue:
        stored = await self.inner.create(key, self._down(key, value))
        return dataclasses.replace(stored, value=value)

    async def update(self, key: str, value: bytes, expected_revision: int | None) -> KeyValue:
        stored = await self.inner.update(key, self._down(key, value), expected_revision)
        return dataclasses.replace(stored, value=value)

    async def delete(self, key: str, expected_revision: int | None = None) -> KeyValue:
        return self._up(await self.inner.delete(key, expected_revision))

    async def watch(self, prefix: str, after_revision: int) -> AsyncIterator[Event]:
        async for batch in self.watch_batches(prefix, after_revision):
            for event in batch:
                yield event

    async def watch_batches(
        self, prefix: str, after_revision: int
    ) -> AsyncIterator[builtins.list[Event]]:
        batches = self.inner.watch_batches(prefix, after_revision)
        try:
            async for batch in batches:
                yield [self._event_up(event) for event in batch]
        finally:
            aclose = getattr(batches, "aclose", None)
            if aclose is not None:
                await aclose()

    async def current_revision(self) -> int:
        return await self.inner.current_revision()

    async def compact(self, revision: int) -> None:
        await self.inner.compact(revision)

    async def close(self) -> None:
        await self.inner.close()
