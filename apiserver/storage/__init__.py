"""Revisioned key-value storage under the API server (Kubernetes' storage.Interface).

Backends register by name (DESIGN §7.3); the API server picks one with
`--storage`, whose value is a spec:

    sqlite                          <data-dir>/tinykube.db (the default)
    sqlite:PATH                     the SQLite database file PATH
    etcd://HOST:PORT[,HOST:PORT]    an etcd cluster, failing over between its members;
                                    TLS with ?cafile=F[&certfile=F&keyfile=F] (what the
                                    --etcd-cafile/--etcd-certfile/--etcd-keyfile flags add)

    store = new_storage("sqlite", "/var/lib/tinykube")   # no I/O yet
    store = await open_storage("etcd://10.0.0.1:2379", "/var/lib/tinykube")  # connected

`new_storage` is synchronous and returns a store that opens itself (or
connects) on first use; `open_storage` also opens it, so a bad data
directory, a second server on the same database or an unreachable etcd fails
at startup rather than on the first request.
"""

from __future__ import annotations

from collections.abc import Callable

from apiserver.storage.etcd import new_etcd_storage
from apiserver.storage.etcd_client import EtcdConfig
from apiserver.storage.interface import Storage, StorageError
from apiserver.storage.sqlite import SQLiteStorage, new_sqlite_storage

# A backend's factory: (location from the spec, the server's data directory) -> an unopened store.
Factory = Callable[[str, str], Storage]


def _sqlite(location: str, data_dir: str) -> Storage:
    return SQLiteStorage(location) if location else new_sqlite_storage(data_dir)


BACKENDS: dict[str, Factory] = {
    "sqlite": _sqlite,
    "etcd": new_etcd_storage,
}


def register(kind: str, factory: Factory) -> None:
    """Make a backend available to `new_storage` under `kind`."""
    BACKENDS[kind] = factory


def parse_spec(spec: str) -> tuple[str, str]:
    """`(kind, location)` of a spec: "sqlite" -> ("sqlite", ""), "sqlite:P" -> ("sqlite", "P"),
    "etcd://h:p" -> ("etcd", "etcd://h:p") (a URL-like spec is its own location)."""
    if "://" in spec:
        return spec.split("://", 1)[0], spec
    kind, sep, location = spec.partition(":")
    if sep and not location:
        raise StorageError(f"storage {spec!r}: the path after {kind}: is empty")
    return kind, location


def new_storage(spec: str, data_dir: str) -> Storage:
    """A store for `spec` (module docstring) keeping local data under `data_dir` (opened lazily)."""
    kind, location = parse_spec(spec)
    try:
        factory = BACKENDS[kind]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise StorageError(f"unknown storage backend {kind!r} (known: {known})") from None
    return factory(location, data_dir)


async def open_storage(spec: str, data_dir: str) -> Storage:
    """`new_storage`, then open it now (connect, for a backend over the network)."""
    store = new_storage(spec, data_dir)
    try:
        await store.current_revision()  # a cheap call that makes any backend open or connect
    except BaseException:
        await store.close()
        raise
    return store


def storage_spec(
    storage: str, *, etcd_cafile: str = "", etcd_certfile: str = "", etcd_keyfile: str = ""
) -> str:
    """`--storage` with kube-apiserver's --etcd-* TLS flags folded into an etcd spec.

    The flags are only meaningful for etcd: given with another backend they are an error,
    as are a certificate without its key and a client certificate without a CA.
    """
    tls = etcd_cafile or etcd_certfile or etcd_keyfile
    kind, _ = parse_spec(storage)
    if kind != "etcd":
        if tls:
            raise StorageError(
                f"--etcd-cafile/--etcd-certfile/--etcd-keyfile need an etcd://"
                f" --storage, not {storage!r}"
            )
        return storage
    config = EtcdConfig.parse(storage)
    if not tls:
        return config.spec()
    merged = EtcdConfig(
        config.endpoints,
        cafile=etcd_cafile or config.cafile,
        certfile=etcd_certfile or config.certfile,
        keyfile=etcd_keyfile or config.keyfile,
    )
    return merged.spec()
