"""Bad input reaches the server: a clear error, and the store does not move."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from apimachinery import errors
from apimachinery.client import Client

from .objects import configmap, deployment


async def _revision(client: Client) -> str:
    return (await client.list("namespaces"))[1]


async def _refused(
    client: Client, call: Callable[[], Awaitable[object]], err: type, text: str
) -> None:
    before = await _revision(client)
    with pytest.raises(err, match=text):
        await call()
    assert await _revision(client) == before, "a refused request must not write"


async def test_bad_name(client: Client) -> None:
    d = deployment("Bad_Name")
    await _refused(
        client,
        lambda: client.create(d),
        errors.Invalid,
        r'Deployment.apps "Bad_Name" is invalid: \[?metadata.name: Invalid value: "Bad_Name"',
    )


async def test_name_too_long(client: Client) -> None:
    d = deployment("a" * 254)
    d.spec.template.metadata.labels["app"] = "x"
    d.spec.selector.match_labels["app"] = "x"
    await _refused(
        client, lambda: client.create(d), errors.Invalid, "must be no more than 253 characters"
    )


async def test_missing_image(client: Client) -> None:
    d = deployment("noimage")
    d.spec.template.spec.containers[0].image = ""
    await _refused(
        client,
        lambda: client.create(d),
        errors.Invalid,
        r"spec.template.spec.containers\[0\].image: Required value",
    )


async def test_selector_does_not_match_template(client: Client) -> None:
    d = deployment("mismatch")
    d.spec.template.metadata.labels["app"] = "other"
    await _refused(
        client,
        lambda: client.create(d),
        errors.Invalid,
        "`selector` does not match template `labels`",
    )


async def test_negative_replicas(client: Client) -> None:
    d = deployment("neg", replicas=-1)
    await _refused(
        client, lambda: client.create(d), errors.Invalid, "spec.replicas: Invalid value: -1"
    )


async def test_port_out_of_range(client: Client) -> None:
    d = deployment("port")
    d.spec.template.spec.containers[0].ports[0].container_port = 70000
    await _refused(
        client, lambda: client.create(d), errors.Invalid, "must be between 1 and 65535, inclusive"
    )


async def test_four_mebibyte_object(client: Client) -> None:
    cm = configmap("huge", blob="x" * (4 * 1024 * 1024))
    await _refused(
        client,
        lambda: client.create(cm),
        errors.RequestEntityTooLarge,
        "Request entity too large: limit is 3145728",
    )


async def test_invalid_update_leaves_object(client: Client) -> None:
    d = await client.create(deployment("upd"))
    d.spec.replicas = -3
    await _refused(client, lambda: client.update(d), errors.Invalid, "spec.replicas")
    assert (await client.get("deploy", "upd")).spec.replicas == 2


async def test_selector_is_immutable(client: Client) -> None:
    d = await client.create(deployment("imm"))
    d.spec.selector.match_labels["app"] = "new"
    d.spec.template.metadata.labels["app"] = "new"
    await _refused(client, lambda: client.update(d), errors.Invalid, "field is immutable")


async def test_unknown_resource(client: Client) -> None:
    with pytest.raises(errors.BadRequest, match='doesn\'t have a resource type "widgets"'):
        await client.list("widgets")


async def test_bad_label_selector(client: Client) -> None:
    with pytest.raises(errors.BadRequest):
        await client.list("pods", label_selector="app in (x")


async def test_unsupported_field_selector(client: Client) -> None:
    with pytest.raises(errors.BadRequest, match=r"field label not supported: spec\.replicas"):
        await client.list("deployments", field_selector="spec.replicas=2")
