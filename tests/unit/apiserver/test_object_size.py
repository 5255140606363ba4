"""Objects are limited in size as etcd limits values: 413 "etcdserver: request is too large"."""

from __future__ import annotations

import pytest

from apimachinery import errors
from apimachinery.client import Client
from apiserver.encoding import MAX_STORED_BYTES
from protos import apps_pb2

from .objects import deployment

BIG = "x" * (MAX_STORED_BYTES + 1)


def with_env(name: str, value: str) -> apps_pb2.Deployment:
    """A Deployment whose container carries `value` in an env var (no field limit of its own)."""
    d = deployment(name)
    d.spec.template.spec.containers[0].env.add(name="BLOB", value=value)
    return d


async def _revision(client: Client) -> str:
    return (await client.list("namespaces"))[1]


async def test_create_of_an_object_over_the_limit_is_413_and_writes_nothing(
    client: Client,
) -> None:
    before = await _revision(client)
    with pytest.raises(errors.RequestEntityTooLarge, match="etcdserver: request is too large"):
        await client.create(with_env("huge", BIG))
    assert await _revision(client) == before
    with pytest.raises(errors.NotFound):
        await client.get("deployments", "huge", "default")


async def test_update_that_grows_past_the_limit_is_refused_and_keeps_the_old(
    client: Client,
) -> None:
    created = await client.create(with_env("grows", "small"))
    grown = await client.get("deployments", "grows", "default")
    grown.spec.template.spec.containers[0].env[0].value = BIG
    with pytest.raises(errors.RequestEntityTooLarge):
        await client.update(grown)
    kept = await client.get("deployments", "grows", "default")
    assert kept.spec.template.spec.containers[0].env[0].value == "small"
    assert kept.metadata.resource_version == created.metadata.resource_version


async def test_just_under_the_limit_is_stored(client: Client) -> None:
    room = MAX_STORED_BYTES - 1000  # the Deployment's own fields take the rest
    stored = await client.create(with_env("fits", "y" * room))
    fetched = await client.get("deployments", "fits", "default")
    assert len(fetched.spec.template.spec.containers[0].env[0].value) == room
    assert stored.metadata.resource_version
