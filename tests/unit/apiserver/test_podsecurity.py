"""The Pod Security Standards' checks, in Kubernetes' words (apiserver/admission/podsecurity.py)."""

# Expected messages are Kubernetes' exact words, so some lines are long.
# ruff: noqa: E501
from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from apiserver.admission import podsecurity
from protos import core_pb2

NGINX = {"name": "web", "image": "nginx"}
HARDENED: dict[str, Any] = {
    "name": "web",
    "image": "nginx",
    "securityContext": {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
    },
}


def spec(**fields: Any) -> core_pb2.PodSpec:
    return json_format.ParseDict({"containers": [NGINX], **fields}, core_pb2.PodSpec())


def test_the_seed_is_baseline_but_not_restricted() -> None:
    assert podsecurity.violations("privileged", spec()) == []
    assert podsecurity.violations("baseline", spec()) == []
    assert podsecurity.violations("restricted", spec()) == [
        'allowPrivilegeEscalation != false (container "web" must set securityContext.allowPrivilegeEscalation=false)',
        'runAsNonRoot != true (pod or container "web" must set securityContext.runAsNonRoot=true)',
        'seccompProfile (pod or container "web" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")',
        'unrestricted capabilities (container "web" must set securityContext.capabilities.drop=["ALL"])',
    ]


def test_baseline_refuses_the_known_escalations() -> None:
    bad = spec(
        hostNetwork=True,
        hostPID=True,
        volumes=[{"name": "root", "hostPath": {"path": "/"}}, {"name": "d", "emptyDir": {}}],
        initContainers=[
            {"name": "init", "image": "busybox", "securityContext": {"privileged": True}}
        ],
        containers=[
            {
                "name": "shell",
                "image": "busybox",
                "ports": [{"containerPort": 80, "hostPort": 8080}],
                "securityContext": {
                    "privileged": True,
                    "capabilities": {"add": ["NET_ADMIN", "CHOWN", "SYS_TIME"]},
                    "seccompProfile": {"type": "Unconfined"},
                },
            }
        ],
    )
    assert podsecurity.violations("baseline", bad) == [
        "host namespaces (hostNetwork=true, hostPID=true)",
        'privileged (containers "init", "shell" must not set securityContext.privileged=true)',
        'non-default capabilities (container "shell" must not include "NET_ADMIN", "SYS_TIME" in securityContext.capabilities.add)',
        'hostPath volumes (volume "root")',
        'hostPort (container "shell" uses hostPort 8080)',
        'seccompProfile (container "shell" must not set securityContext.seccompProfile.type to "Unconfined")',
    ]


def test_a_hardened_pod_is_restricted() -> None:
    good = spec(
        securityContext={"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        volumes=[{"name": "d", "emptyDir": {}}, {"name": "c", "configMap": {"name": "c"}}],
        containers=[HARDENED],
    )
    assert podsecurity.violations("restricted", good) == []
    root = spec(
        securityContext={
            "runAsNonRoot": True,
            "runAsUser": 0,
            "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"},
        },
        volumes=[{"name": "h", "hostPath": {"path": "/x"}}],
        containers=[
            {
                **HARDENED,
                "securityContext": {
                    **HARDENED["securityContext"],
                    "capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]},
                },
            }
        ],
    )
    assert podsecurity.violations("restricted", root) == [
        'non-default capabilities (container "web" must not include "SYS_ADMIN" in securityContext.capabilities.add)',
        'hostPath volumes (volume "h")',
        'restricted volume types (volume "h" uses restricted volume type "hostPath")',
        "runAsUser=0 (pod must not set runAsUser=0)",
        'unrestricted capabilities (container "web" must not include "SYS_ADMIN" in securityContext.capabilities.add)',
    ]


def test_a_container_overrides_the_pod() -> None:
    mixed = spec(
        securityContext={"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        containers=[
            {**HARDENED, "name": "a"},
            {
                **HARDENED,
                "name": "b",
                "securityContext": {
                    **HARDENED["securityContext"],
                    "runAsNonRoot": False,
                    "seccompProfile": {"type": "Unconfined"},
                },
            },
        ],
    )
    assert podsecurity.violations("restricted", mixed) == [
        'seccompProfile (container "b" must not set securityContext.seccompProfile.type to "Unconfined")',
        'runAsNonRoot != true (pod or container "b" must set securityContext.runAsNonRoot=true)',
        'seccompProfile (pod or container "b" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")',
    ]


def test_namespace_labels_choose_the_levels() -> None:
    labels = {
        "pod-security.kubernetes.io/enforce": "baseline",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/audit": "bogus",
    }
    assert podsecurity.namespace_levels(labels) == {
        "enforce": "baseline",
        "warn": "restricted",
        "audit": "restricted",
    }
    assert podsecurity.namespace_levels({}) == dict.fromkeys(podsecurity.MODES, "privileged")
    assert podsecurity.label_errors(labels) == [("pod-security.kubernetes.io/audit", "bogus")]
    assert (
        podsecurity.summary("baseline", ["a", "b"])
        == 'violates PodSecurity "baseline:latest": a, b'
    )
