"""The agent's Node handlers enqueue a reconcile only for changes the overlay uses."""

from __future__ import annotations

from apimachinery.client import Client
from netplugin.agent import OVERLAY_KEY, AgentConfig, NetPluginAgent
from netplugin.commands import CommandLog
from netplugin.constants import ANNOTATION_NODE_IP, ANNOTATION_VTEP_MAC
from protos import core_pb2, meta_pb2


def node(name: str, mac: str = "02:00:00:00:00:02", ready: str = "True") -> core_pb2.Node:
    obj = core_pb2.Node(metadata=meta_pb2.ObjectMeta(name=name))
    obj.spec.pod_cidr = "10.244.1.0/24"
    obj.metadata.annotations[ANNOTATION_VTEP_MAC] = mac
    obj.metadata.annotations[ANNOTATION_NODE_IP] = "10.201.0.12"
    obj.status.conditions.add(type="Ready", status=ready)
    return obj


def agent() -> NetPluginAgent:
    # The client never connects: only the handlers run here.
    return NetPluginAgent(
        AgentConfig("node1", node_ip="10.201.0.11"), Client("unix:/x"), CommandLog()
    )


async def test_add_and_delete_enqueue_one_key() -> None:
    a = agent()
    a._on_add_or_delete(node("node2"))
    a._on_add_or_delete(node("node3"))
    a._on_add_or_delete(node("node2"))
    assert len(a.queue) == 1 and await a.queue.get() == OVERLAY_KEY
    assert not a._own_changed.is_set()


async def test_a_heartbeat_is_not_a_reconcile() -> None:
    a = agent()
    a._on_update(node("node2", ready="True"), node("node2", ready="False"))
    assert len(a.queue) == 0


async def test_a_new_vtep_mac_is() -> None:
    a = agent()
    a._on_update(node("node2"), node("node2", mac="02:00:00:00:00:22"))
    assert len(a.queue) == 1


async def test_own_node_wakes_the_podcidr_wait_and_republishes_lost_annotations() -> None:
    a = agent()
    old, new = node("node1"), node("node1")
    a._on_update(old, new)
    assert a._own_changed.is_set() and len(a.queue) == 0
    del new.metadata.annotations[ANNOTATION_VTEP_MAC]
    a._on_update(old, new)
    assert len(a.queue) == 1
