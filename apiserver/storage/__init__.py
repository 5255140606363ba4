"""Revisioned key-value storage under the API server (Kubernetes' storage.Interface).

Backends register by name (DESIGN §7.3); the API server picks one with
`--storage`:

    store = new_storage("sqlite", "/var/lib/tinykube")   # no I/O yet
    store = await open_storage("sqlite", "/var/lib/tinykube")  # opened, errors surface now

`new_storage` is synchronous and returns a store that opens itself on first
use; `open_storage` also opens it, so a bad data directory or a second server
on the same database fails at startup rather than on the first request.
"""

from __future__ import annotations

from collections.abc import Callable

from apiserver.storage.interface import Storage, StorageError
from apiserver.storage.sqlite import new_sqlite_storage

# name -> factory(data_dir) returning an unopened store
BACKENDS: dict[str, Callable[[str], Storage]] = {
    "sqlite": new_sqlite_storage,
}


def register(kind: str, factory: Callable[[str], Storage]) -> None:
    """Make a backend available to `new_storage` under `kind`."""
    BACKENDS[kind] = factory


def new_storage(kind: str, data_dir: str) -> Storage:
    """A store of backend `kind` keeping its data under `data_dir` (opened lazily)."""
    try:
        factory = BACKENDS[kind]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise StorageError(f"unknown storage backend {kind!r} (known: {known})") from None
    return factory(data_dir)


async def open_storage(kind: str, data_dir: str) -> Storage:
    """`new_storage`, then open it now (a no-op for backends that connect lazily)."""
    store = new_storage(kind, data_dir)
    await store.current_revision()  # a cheap call that makes any backend open or connect
    return store
