"""Apply: created, unchanged, configured; the seed manifest round trip."""

from __future__ import annotations

from typing import Any

from apimachinery import codec
from apimachinery.client import Client

from .objects import SEED


async def test_seed_apply_twice_then_change(client: Client) -> None:
    objs = codec.decode_documents(SEED.read_text(), str(SEED))
    results = [(await client.apply(o))[1] for o in objs]
    assert results == ["created", "created"]
    svc = await client.get("services", "web-app-service")
    cluster_ip = svc.spec.cluster_ip
    objs = codec.decode_documents(SEED.read_text(), str(SEED))
    results = [(await client.apply(o))[1] for o in objs]
    assert results == ["unchanged", "unchanged"]
    svc2 = await client.get("services", "web-app-service")
    assert svc2.spec.cluster_ip == cluster_ip
    assert svc2.metadata.resource_version == svc.metadata.resource_version
    objs = codec.decode_documents(SEED.read_text().replace("replicas: 2", "replicas: 3"))
    deploy: Any
    deploy, result = await client.apply(objs[0])
    assert result == "configured" and deploy.spec.replicas == 3
    assert deploy.metadata.generation == 2


async def test_apply_keeps_foreign_annotations_and_drops_removed_labels(client: Client) -> None:
    manifest = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  labels: {a: "1", b: "2"}
data: {k: v}
"""
    (obj,) = codec.decode_documents(manifest)
    await client.apply(obj)
    live = await client.get("configmaps", "cfg")
    live.metadata.annotations["controller.example/seen"] = "yes"
    await client.update(live)
    (obj,) = codec.decode_documents(manifest.replace(', b: "2"', ""))
    result: Any
    result, verb = await client.apply(obj)
    assert verb == "configured"
    assert dict(result.metadata.labels) == {"a": "1"}
    assert result.metadata.annotations["controller.example/seen"] == "yes"


async def test_apply_preserves_allocated_node_port(client: Client) -> None:
    manifest = """
apiVersion: v1
kind: Service
metadata: {name: np}
spec:
  type: NodePort
  selector: {app: x}
  ports: [{port: 80}]
"""
    (obj,) = codec.decode_documents(manifest)
    created: Any
    again: Any
    created, _ = await client.apply(obj)
    (obj,) = codec.decode_documents(manifest)
    again, verb = await client.apply(obj)
    assert verb == "unchanged"
    assert again.spec.ports[0].node_port == created.spec.ports[0].node_port != 0
