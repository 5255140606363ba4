"""`tinykube apiserver --storage etcd://...`: the real command, serving the API from etcd.

The server runs as a user runs it (localcluster's ApiServerProcess: its own
PKI, mTLS port, the admin's unix socket), without scheduler and controllers,
over an etcd member that requires a client certificate: the server reaches it
with --etcd-cafile/--etcd-certfile/--etcd-keyfile. Through the API the test
creates, gets, lists, updates and watches a ConfigMap, then reads the key
straight from etcd: the object is at /registry/configmaps/<ns>/<name> and its
resourceVersion names its etcd mod_revision (docs/etcd.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from apimachinery.client import Client
from apiserver.storage.etcd_client import EtcdClient, EtcdConfig
from apiserver.storage.etcd_mapping import to_etcd
from localcluster.processes import ApiServerProcess
from protos import core_pb2
from protos import etcd_pb2 as pb

from .etcd_server import EtcdServer, EtcdTLS, needs_etcd

pytestmark = needs_etcd
TIMEOUT = 10.0


def _configmap(name: str, **data: str) -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    cm.metadata.name = name
    cm.metadata.namespace = "default"
    cm.data.update(data)
    return cm


def _tls_config(server: EtcdServer, tls: EtcdTLS) -> EtcdConfig:
    return EtcdConfig(
        (server.endpoint,),
        cafile=str(tls.ca),
        certfile=str(tls.client_cert),
        keyfile=str(tls.client_key),
    )


@pytest.fixture
def apiserver(
    etcd_tls_server: EtcdServer, etcd_tls: EtcdTLS, tmp_path: Path
) -> Iterator[ApiServerProcess]:
    flags = (
        "--storage",
        f"etcd://{etcd_tls_server.endpoint}",
        "--etcd-cafile",
        str(etcd_tls.ca),
        "--etcd-certfile",
        str(etcd_tls.client_cert),
        "--etcd-keyfile",
        str(etcd_tls.client_key),
        "--no-scheduler",
        "--no-controllers",
    )
    server = ApiServerProcess(tmp_path / "apiserver", extra_args=flags)
    try:
        server.start()
        yield server
    finally:
        server.stop()


async def test_apiserver_serves_objects_from_etcd(
    apiserver: ApiServerProcess, etcd_tls_server: EtcdServer, etcd_tls: EtcdTLS
) -> None:
    async with Client(apiserver.address, timeout=TIMEOUT) as client:
        _, start = await client.list(core_pb2.ConfigMap, "default")
        watch = client.watch(core_pb2.ConfigMap, "default", resource_version=start)
        first = asyncio.ensure_future(watch.__anext__())

        created = await client.create(_configmap("web", color="blue"))
        got = await client.get(core_pb2.ConfigMap, "web", "default")
        assert dict(got.data) == {"color": "blue"}
        assert got.metadata.resource_version == created.metadata.resource_version
        assert int(created.metadata.resource_version) > int(start)
        got.data["color"] = "green"
        updated = await client.update(got)
        items, listed_at = await client.list(core_pb2.ConfigMap, "default")
        assert [(i.metadata.name, dict(i.data)) for i in items] == [("web", {"color": "green"})]
        assert int(listed_at) >= int(updated.metadata.resource_version)

        added = await asyncio.wait_for(first, TIMEOUT)
        modified = await asyncio.wait_for(watch.__anext__(), TIMEOUT)
        assert [
            (e.type, e.object.data["color"], e.resource_version) for e in (added, modified)
        ] == [
            ("ADDED", "blue", created.metadata.resource_version),
            ("MODIFIED", "green", updated.metadata.resource_version),
        ]
        aclose = getattr(watch, "aclose", None)
        if aclose is not None:
            await aclose()

    # The object is in etcd under Kubernetes' key, at the revision the API handed out.
    etcd = EtcdClient(_tls_config(etcd_tls_server, etcd_tls))
    try:
        reply = await etcd.range(pb.RangeRequest(key=b"/registry/configmaps/default/web"))
        assert len(reply.kvs) == 1
        assert reply.kvs[0].mod_revision == to_etcd(int(updated.metadata.resource_version))
        assert reply.kvs[0].create_revision == to_etcd(int(created.metadata.resource_version))
    finally:
        await etcd.close()


async def test_apiserver_keeps_its_objects_across_a_restart(apiserver: ApiServerProcess) -> None:
    async with Client(apiserver.address, timeout=TIMEOUT) as client:
        created = await client.create(_configmap("kept", n="1"))
    await asyncio.to_thread(apiserver.kill9)
    await asyncio.to_thread(apiserver.start)
    async with Client(apiserver.address, timeout=TIMEOUT) as client:
        got = await client.get(core_pb2.ConfigMap, "kept", "default")
        assert got.metadata.resource_version == created.metadata.resource_version
        assert dict(got.data) == {"n": "1"}
