"""The etcd backend over TLS: etcd requires a client certificate, as it does behind Kubernetes.

The member serves https with a certificate from a throwaway CA and accepts
only clients whose certificate that CA signed (`--client-cert-auth
--trusted-ca-file`); the store connects with the files kube-apiserver's flags
name (--etcd-cafile, --etcd-certfile, --etcd-keyfile), folded into the spec
as `tinykube apiserver` does. A store without a client certificate, or
speaking plaintext, gets nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from apiserver.storage import new_storage, storage_spec
from apiserver.storage.etcd import EtcdStorage
from apiserver.storage.etcd_client import EtcdConfig
from apiserver.storage.interface import EventType, StorageError

from .conformance import Follower
from .etcd_server import EtcdServer, EtcdTLS, needs_etcd

pytestmark = needs_etcd


async def test_the_store_works_with_a_client_certificate(
    etcd_tls_server: EtcdServer, etcd_tls: EtcdTLS, tmp_path: Path
) -> None:
    spec = storage_spec(
        f"etcd://{etcd_tls_server.endpoint}",
        etcd_cafile=str(etcd_tls.ca),
        etcd_certfile=str(etcd_tls.client_cert),
        etcd_keyfile=str(etcd_tls.client_key),
    )
    store = new_storage(spec, str(tmp_path))
    try:
        assert isinstance(store, EtcdStorage) and store.config.tls
        watch = Follower(store.watch("/registry/secrets/", 0))
        kv = await store.create("/registry/secrets/default/s", b"over TLS")
        assert await store.get("/registry/secrets/default/s") == kv
        events = await watch.take(1)
        assert [(e.type, e.value) for e in events] == [(EventType.ADDED, b"over TLS")]
        await watch.stop()
    finally:
        await store.close()


@pytest.mark.parametrize("client", ["no client certificate", "plaintext"])
async def test_etcd_refuses_a_store_without_a_client_certificate(
    etcd_tls_server: EtcdServer, etcd_tls: EtcdTLS, client: str
) -> None:
    """The handshake fails (etcd wants a certificate; or TLS, not plaintext): never connected,
    so the write was never sent."""
    cafile = str(etcd_tls.ca) if client == "no client certificate" else ""
    config = EtcdConfig((etcd_tls_server.endpoint,), cafile=cafile, dial_timeout=1.0)
    store = EtcdStorage(config)
    try:
        with pytest.raises(StorageError, match="no endpoint answered"):
            await store.create("/registry/secrets/default/s", b"x")
    finally:
        await store.close()


async def test_a_store_that_does_not_trust_the_members_ca_refuses_it(
    etcd_tls_server: EtcdServer, etcd_tls: EtcdTLS, tmp_path: Path
) -> None:
    from .etcd_server import make_tls

    other = make_tls(tmp_path / "other-pki")  # a CA that did not sign etcd's certificate
    config = EtcdConfig(
        (etcd_tls_server.endpoint,),
        cafile=str(other.ca),
        certfile=str(etcd_tls.client_cert),
        keyfile=str(etcd_tls.client_key),
        dial_timeout=1.0,
    )
    store = EtcdStorage(config)
    try:
        with pytest.raises(StorageError, match="no endpoint answered"):
            await store.get("/registry/secrets/default/s")
    finally:
        await store.close()
