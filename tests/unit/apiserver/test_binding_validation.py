"""The pods/binding path validates like every other write, and refuses without writing."""

from __future__ import annotations

import pytest

from apimachinery import errors
from apimachinery.client import Client

from .objects import pod


async def _revision(client: Client) -> str:
    return (await client.list("namespaces"))[1]


@pytest.mark.parametrize(
    ("node", "annotations", "words"),
    [
        ("Node_1", {}, 'target.name: Invalid value: "Node_1"'),
        ("node1", {"bad key!": "x"}, 'metadata.annotations: Invalid value: "bad key!"'),
        ("node1", {"big": "x" * 300_000}, "metadata.annotations: Too long"),
    ],
)
async def test_bad_bindings_are_invalid_and_write_nothing(
    client: Client, node: str, annotations: dict[str, str], words: str
) -> None:
    await client.create(pod("bindme"))
    before = await _revision(client)
    with pytest.raises(errors.Invalid) as caught:
        await client.bind("bindme", node, "default", annotations=annotations)
    assert words in caught.value.message
    assert await _revision(client) == before
    assert not (await client.get("pods", "bindme", "default")).spec.node_name


async def test_merged_annotations_are_held_to_the_pod_limit(client: Client) -> None:
    p = pod("full")
    p.metadata.annotations["note"] = "n" * 200_000
    await client.create(p)
    with pytest.raises(errors.Invalid, match="Too long"):
        await client.bind("full", "node1", "default", annotations={"more": "m" * 100_000})
    bound = await client.bind("full", "node1", "default", annotations={"placement": "ok"})
    assert bound.spec.node_name == "node1"
    assert bound.metadata.annotations["placement"] == "ok"
