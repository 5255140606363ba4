"""Update validation: identity, selectors, clusterIP, pod spec, immutable config, podCIDR."""

# Expected messages are Kubernetes' exact words, so some lines are long.
# ruff: noqa: E501
from __future__ import annotations

from typing import Any

import pytest

from tests.unit.validation_fixtures import (
    container,
    deployment,
    obj,
    pod,
    service,
    update_messages,
)

# ---------------------------------------------------------------- updates


def test_metadata_identity_is_immutable() -> None:
    old, new = deployment(), deployment()
    new.metadata.name = "other"
    new.metadata.namespace = "kube-system"
    assert update_messages(new, old) == [
        'metadata.name: Invalid value: "other": field is immutable',
        'metadata.namespace: Invalid value: "kube-system": field is immutable',
    ]
    old.metadata.uid, new = "u1", deployment()
    assert update_messages(new, old) == []  # an empty uid is carried over by the server
    new.metadata.uid = "u2"
    assert update_messages(new, old) == ['metadata.uid: Invalid value: "u2": field is immutable']


def test_deployment_selector_is_immutable() -> None:
    old = deployment()
    new = deployment(
        selector={"matchLabels": {"app": "web", "tier": "fe"}},
        template={
            "metadata": {"labels": {"app": "web", "tier": "fe"}},
            "spec": {"containers": [container()]},
        },
    )
    assert update_messages(new, old) == [
        'spec.selector: Invalid value: {"matchLabels": {"app": "web", "tier": "fe"}}: field is immutable'
    ]
    assert update_messages(deployment(replicas=5), old) == []


def test_service_cluster_ip_is_immutable_once_set() -> None:
    old = service(clusterIP="10.96.0.10")
    assert update_messages(service(clusterIP="10.96.0.11"), old) == [
        'spec.clusterIP: Invalid value: "10.96.0.11": field is immutable'
    ]
    assert update_messages(service(clusterIP="10.96.0.10", ports=[{"port": 81}]), old) == []
    assert update_messages(service(clusterIP="10.96.0.11"), service()) == []


def test_pod_update_rules() -> None:
    old = pod(tolerations=[{"key": "a", "operator": "Exists"}], activeDeadlineSeconds=100)
    new = pod(
        tolerations=[{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}],
        activeDeadlineSeconds=50,
        nodeName="node-1",
    )
    new.spec.containers[0].image = "nginx:1.27"
    assert update_messages(new, old) == []
    changed = pod(tolerations=[], activeDeadlineSeconds=200)
    changed.spec.containers[0].ports.add(container_port=80)
    got = update_messages(changed, old)
    assert got[0].startswith(
        "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
        "(only additions to existing tolerations)"
    )
    assert "spec.containers[0].ports" in got[0]
    assert got[1:] == [
        "spec.activeDeadlineSeconds: Invalid value: 200: must be less than or equal to previous value",
        "spec.tolerations[0]: Forbidden: existing toleration can not be modified except its tolerationSeconds",
    ]
    bound = pod(nodeName="node-1")
    assert "spec: Forbidden" in update_messages(pod(nodeName="node-2"), bound)[0]


def test_immutable_config_maps_and_secrets() -> None:
    def cm(immutable: bool | None, value: str) -> Any:
        data: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c"},
            "data": {"k": value},
        }
        if immutable is not None:
            data["immutable"] = immutable
        return obj(data)

    assert update_messages(cm(None, "b"), cm(None, "a")) == []
    assert update_messages(cm(True, "b"), cm(True, "a")) == [
        "data: Forbidden: field is immutable when `immutable` is set"
    ]
    assert update_messages(cm(False, "a"), cm(True, "a")) == [
        "immutable: Forbidden: field is immutable when `immutable` is set"
    ]
    old = obj({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "Opaque"})
    new = obj({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "other"})
    assert update_messages(new, old) == ['type: Invalid value: "other": field is immutable']


def test_node_pod_cidr_is_immutable_once_set() -> None:
    def node(cidr: str) -> Any:
        return obj(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": "n"},
                "spec": {"podCIDR": cidr},
            }
        )

    assert update_messages(node("10.244.1.0/24"), node("")) == []
    assert update_messages(node("10.244.2.0/24"), node("10.244.1.0/24")) == [
        'spec.podCIDR: Forbidden: node updates may not change podCIDR except from "" to valid'
    ]


@pytest.mark.parametrize("kind", ["Namespace", "Lease"])
def test_updates_of_simple_kinds_only_check_identity(kind: str) -> None:
    api = "coordination.k8s.io/v1" if kind == "Lease" else "v1"
    old = obj({"apiVersion": api, "kind": kind, "metadata": {"name": "x"}})
    new = obj({"apiVersion": api, "kind": kind, "metadata": {"name": "x", "labels": {"a": "b"}}})
    assert update_messages(new, old) == []
