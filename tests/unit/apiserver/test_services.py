"""ClusterIP and NodePort allocation through the API."""

from __future__ import annotations

import pytest

from apimachinery import errors
from apimachinery.client import Client

from .objects import service


async def test_duplicate_cluster_ip_is_invalid_and_stores_nothing(client: Client) -> None:
    first = service("one")
    first.spec.cluster_ip = "10.96.0.50"
    await client.create(first)
    second = service("two")
    second.spec.cluster_ip = "10.96.0.50"
    with pytest.raises(errors.Invalid, match="provided IP is already allocated") as exc:
        await client.create(second)
    assert exc.value.causes[0].path == "spec.clusterIP"
    with pytest.raises(errors.NotFound):
        await client.get("services", "two")


async def test_cluster_ip_out_of_range(client: Client) -> None:
    svc = service("far")
    svc.spec.cluster_ip = "192.168.0.1"
    with pytest.raises(errors.Invalid, match="not in the valid range"):
        await client.create(svc)


async def test_node_port_allocated_and_duplicate_refused(client: Client) -> None:
    a = await client.create(service("a", type_="NodePort"))
    port = a.spec.ports[0].node_port
    assert 30000 <= port <= 32767
    with pytest.raises(errors.Invalid, match="provided port is already allocated"):
        await client.create(service("b", type_="NodePort", node_port=port))
    with pytest.raises(errors.NotFound):
        await client.get("services", "b")


async def test_ip_released_on_delete_and_failed_create(client: Client) -> None:
    svc = service("tmp")
    svc.spec.cluster_ip = "10.96.0.77"
    await client.create(svc)
    await client.delete("services", "tmp")
    again = service("tmp2")
    again.spec.cluster_ip = "10.96.0.77"
    assert (await client.create(again)).spec.cluster_ip == "10.96.0.77"


async def test_allocations_survive_restart(server, client: Client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from apiserver.server import APIServer
    from apiserver.storage import open_storage

    svc = service("keep", type_="NodePort", node_port=30080)
    svc.spec.cluster_ip = "10.96.0.90"
    await client.create(svc)
    await server.stop(grace=0)
    storage = await open_storage("sqlite", str(tmp_path))
    again = APIServer(storage, f"unix:{tmp_path}/api2.sock")
    await again.start()
    try:
        from apimachinery.client import Client as C

        c = C(again.local_address)
        clash = service("clash", type_="NodePort", node_port=30080)
        with pytest.raises(errors.Invalid, match="already allocated"):
            await c.create(clash)
        clash2 = service("clash2")
        clash2.spec.cluster_ip = "10.96.0.90"
        with pytest.raises(errors.Invalid, match="already allocated"):
            await c.create(clash2)
        await c.close()
    finally:
        await again.stop(grace=0)


async def test_changing_type_releases_node_port(client: Client) -> None:
    svc = await client.create(service("flip", type_="NodePort", node_port=30123))
    svc.spec.type = "ClusterIP"  # node port and externalTrafficPolicy left as stored
    flipped = await client.update(svc)
    assert flipped.spec.ports[0].node_port == 0 and not flipped.spec.external_traffic_policy
    reuse = await client.create(service("reuse", type_="NodePort", node_port=30123))
    assert reuse.spec.ports[0].node_port == 30123


async def test_client_ip_affinity_timeout_is_defaulted_kept_and_checked(client: Client) -> None:
    sticky = service("sticky")
    sticky.spec.session_affinity = "ClientIP"
    created = await client.create(sticky)
    assert created.spec.session_affinity_config.client_ip.timeout_seconds == 10800  # defaulted
    short = service("short")
    short.spec.session_affinity = "ClientIP"
    short.spec.session_affinity_config.client_ip.timeout_seconds = 60
    assert (await client.create(short)).spec.session_affinity_config.client_ip.timeout_seconds == 60

    too_long = service("too-long")
    too_long.spec.session_affinity = "ClientIP"
    too_long.spec.session_affinity_config.client_ip.timeout_seconds = 86401
    with pytest.raises(errors.Invalid, match="must be greater than 0 and less than 86400") as exc:
        await client.create(too_long)
    assert exc.value.causes[0].path == "spec.sessionAffinityConfig.clientIP.timeoutSeconds"
    stray = service("stray")
    stray.spec.session_affinity_config.client_ip.timeout_seconds = 60  # affinity "None"
    with pytest.raises(errors.Invalid, match="must not be set when session affinity is None"):
        await client.create(stray)
    for name in ("too-long", "stray"):
        with pytest.raises(errors.NotFound):
            await client.get("services", name)
