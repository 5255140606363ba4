"""Validation of the Pod fields real manifests use: envFrom, the downward API (fieldRef,
resourceFieldRef, downwardAPI and projected volumes), dnsConfig, hostAliases, native
sidecars' restartPolicy (their defaults and codec round trip: test_pod_fields_codec)."""

# Expected messages are Kubernetes' exact words, so some lines are long.
# ruff: noqa: E501
from __future__ import annotations

from typing import Any

import pytest

from tests.unit.validation_fixtures import SUBDOMAIN_MSG, container, messages, pod

QUALIFIED_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
ENV_FIELDS = '"metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs"'
IP_MSG = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"


def env_pod(*env: dict[str, Any]) -> Any:
    return pod(containers=[container(env=list(env))])


def field_env(path: str, **ref: Any) -> dict[str, Any]:
    return {"name": "V", "valueFrom": {"fieldRef": {"fieldPath": path, **ref}}}


def resource_env(**ref: Any) -> dict[str, Any]:
    return {"name": "V", "valueFrom": {"resourceFieldRef": ref}}


# ---------------------------------------------------------------- env: fieldRef


@pytest.mark.parametrize(
    "path",
    [
        "metadata.name",
        "metadata.namespace",
        "metadata.uid",
        "metadata.labels['app']",
        "metadata.annotations['example.com/team']",
        "spec.nodeName",
        "spec.serviceAccountName",
        "status.hostIP",
        "status.hostIPs",
        "status.podIP",
        "status.podIPs",
    ],
)
def test_every_env_field_path_kubernetes_allows(path: str) -> None:
    assert messages(env_pod(field_env(path))) == []
    assert messages(env_pod(field_env(path, apiVersion="v1"))) == []


def test_env_field_paths_kubernetes_refuses() -> None:
    p = env_pod(
        field_env("metadata.labels"),
        field_env("status.phase"),
        field_env("spec.hostname"),
        field_env("spec.nodeName['x']"),
        field_env("metadata.labels['-bad-']"),
        field_env("metadata.name", apiVersion="v2"),
        field_env(""),
    )
    env = "spec.containers[0].env"
    assert messages(p) == [
        f'{env}[0].valueFrom.fieldRef.fieldPath: Unsupported value: "metadata.labels": supported values: {ENV_FIELDS}',
        f'{env}[1].valueFrom.fieldRef.fieldPath: Unsupported value: "status.phase": supported values: {ENV_FIELDS}',
        f'{env}[2].valueFrom.fieldRef.fieldPath: Invalid value: "spec.hostname": error converting fieldPath: field label not supported: spec.hostname',
        f"{env}[3].valueFrom.fieldRef.fieldPath: Invalid value: \"spec.nodeName['x']\": error converting fieldPath: field label does not support subscript: spec.nodeName['x']",
        f'{env}[4].valueFrom.fieldRef: Invalid value: "-bad-": {QUALIFIED_MSG}',
        f'{env}[5].valueFrom.fieldRef.fieldPath: Invalid value: "metadata.name": error converting fieldPath: unsupported pod version: v2',
        f"{env}[6].valueFrom.fieldRef.fieldPath: Required value",
    ]


# ---------------------------------------------------------------- env: resourceFieldRef


@pytest.mark.parametrize(
    ("resource", "divisor"),
    [
        ("limits.cpu", "1m"),
        ("requests.cpu", "1"),
        ("limits.cpu", "1000m"),  # canonically 1
        ("limits.memory", "1Mi"),
        ("requests.memory", "1k"),
        ("limits.ephemeral-storage", "1Gi"),
        ("requests.ephemeral-storage", None),
        ("limits.cpu", "0"),  # zero means unset
    ],
)
def test_resource_field_refs_kubernetes_allows(resource: str, divisor: str | None) -> None:
    ref: dict[str, Any] = {"resource": resource}
    if divisor is not None:
        ref["divisor"] = divisor
    assert messages(env_pod(resource_env(**ref))) == []


def test_resource_field_refs_kubernetes_refuses() -> None:
    p = env_pod(
        resource_env(resource="limits.gpu"),
        resource_env(containerName="web"),
        resource_env(resource="limits.cpu", divisor="2m"),
        resource_env(resource="requests.memory", divisor="3Mi"),
        resource_env(resource="limits.ephemeral-storage", divisor="1m"),
        resource_env(resource="limits.cpu", divisor="lots"),
        {
            "name": "TWO",
            "valueFrom": {
                "resourceFieldRef": {"resource": "limits.cpu"},
                "fieldRef": {"fieldPath": "metadata.name"},
            },
        },
    )
    env = "spec.containers[0].env"
    assert messages(p) == [
        f'{env}[0].valueFrom.resourceFieldRef.resource: Unsupported value: "limits.gpu": supported values: "limits.cpu", "limits.ephemeral-storage", "limits.memory", "requests.cpu", "requests.ephemeral-storage", "requests.memory"',
        f"{env}[1].valueFrom.resourceFieldRef.resource: Required value",
        f'{env}[2].valueFrom.resourceFieldRef.divisor: Invalid value: "limits.cpu": only divisor\'s values 1m and 1 are supported with the cpu resource',
        f'{env}[3].valueFrom.resourceFieldRef.divisor: Invalid value: "requests.memory": only divisor\'s values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the memory resource',
        f'{env}[4].valueFrom.resourceFieldRef.divisor: Invalid value: "limits.ephemeral-storage": only divisor\'s values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the local ephemeral storage resource',
        f"{env}[5].valueFrom.resourceFieldRef.divisor: Invalid value: \"lots\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        f'{env}[6].valueFrom: Invalid value: "": may not have more than one field specified at a time',
    ]


# ---------------------------------------------------------------- envFrom


def test_env_from() -> None:
    good = pod(
        containers=[
            container(
                envFrom=[
                    {"configMapRef": {"name": "settings"}},
                    {"prefix": "DB_", "secretRef": {"name": "db", "optional": True}},
                    {"prefix": "x.y-", "configMapRef": {"name": "gen-", "optional": False}},
                ]
            )
        ]
    )
    assert messages(good) == []
    bad = pod(
        containers=[
            container(
                envFrom=[
                    {"prefix": "1X"},
                    {"configMapRef": {"name": "a"}, "secretRef": {"name": "b"}},
                    {"configMapRef": {}},
                    {"secretRef": {"name": "Not_Valid"}},
                ]
            )
        ]
    )
    got = messages(bad)
    assert got[0].startswith(
        'spec.containers[0].envFrom[0].prefix: Invalid value: "1X": a valid environment variable name must consist of'
    )
    assert got[1:] == [
        'spec.containers[0].envFrom: Invalid value: "": must specify one of: `configMapRef` or `secretRef`',
        'spec.containers[0].envFrom: Invalid value: "": may not have more than one field specified at a time',
        "spec.containers[0].envFrom[2].configMapRef.name: Required value",
        f'spec.containers[0].envFrom[3].secretRef.name: Invalid value: "Not_Valid": {SUBDOMAIN_MSG}',
    ]


# ---------------------------------------------------------------- downwardAPI volumes


def test_downward_api_volume() -> None:
    good = pod(
        volumes=[
            {
                "name": "info",
                "downwardAPI": {
                    "defaultMode": 0o444,
                    "items": [
                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
                        {"path": "team", "fieldRef": {"fieldPath": "metadata.labels['team']"}},
                        {
                            "path": "meta/uid",
                            "fieldRef": {"fieldPath": "metadata.uid"},
                            "mode": 0o600,
                        },
                        {
                            "path": "cpu",
                            "resourceFieldRef": {
                                "containerName": "web",
                                "resource": "limits.cpu",
                                "divisor": "1m",
                            },
                        },
                    ],
                },
            }
        ]
    )
    assert messages(good) == []
    bad = pod(
        volumes=[
            {
                "name": "info",
                "downwardAPI": {
                    "defaultMode": 0o1000,
                    "items": [
                        {"path": "/etc/x", "fieldRef": {"fieldPath": "metadata.name"}},
                        {"path": "a/../../b", "fieldRef": {"fieldPath": "spec.nodeName"}},
                        {"path": "..data", "resourceFieldRef": {"resource": "limits.cpu"}},
                        {
                            "path": "both",
                            "fieldRef": {"fieldPath": "metadata.name"},
                            "resourceFieldRef": {"containerName": "web", "resource": "limits.cpu"},
                        },
                        {"path": "none", "mode": -1},
                        {"fieldRef": {"fieldPath": "metadata.name"}},
                    ],
                },
            }
        ]
    )
    d = "spec.volumes[0].downwardAPI"
    assert messages(bad) == [
        f"{d}.defaultMode: Invalid value: 512: must be a number between 0 and 0777 (octal), both inclusive",
        f'{d}.path: Invalid value: "/etc/x": must be a relative path',
        f"{d}.path: Invalid value: \"a/../../b\": must not contain '..'",
        f'{d}.fieldRef.fieldPath: Unsupported value: "spec.nodeName": supported values: "metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid"',
        f"{d}.path: Invalid value: \"..data\": must not start with '..'",
        f"{d}.resourceFieldRef.containerName: Required value",
        f'{d}: Invalid value: "resource": fieldRef and resourceFieldRef can not be specified simultaneously',
        f"{d}: Required value: one of fieldRef and resourceFieldRef is required",
        f"{d}.mode: Invalid value: -1: must be a number between 0 and 0777 (octal), both inclusive",
        f"{d}.path: Required value",
    ]


# ---------------------------------------------------------------- projected volumes


def test_projected_volume() -> None:
    good = pod(
        volumes=[
            {
                "name": "all",
                "projected": {
                    "defaultMode": 0o440,
                    "sources": [
                        {
                            "secret": {
                                "name": "creds",
                                "items": [{"key": "user", "path": "secret/user"}],
                            }
                        },
                        {"configMap": {"name": "settings", "optional": True}},
                        {
                            "downwardAPI": {
                                "items": [
                                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}
                                ]
                            }
                        },
                    ],
                },
            }
        ]
    )
    assert messages(good) == []
    bad = pod(
        volumes=[
            {
                "name": "all",
                "projected": {
                    "defaultMode": 0o7777,
                    "sources": [
                        {"secret": {"items": [{"key": "user", "path": "user"}]}},
                        {
                            "configMap": {
                                "name": "settings",
                                "items": [
                                    {"key": "u", "path": "user"},
                                    {"key": "", "path": "/abs"},
                                ],
                            }
                        },
                        {
                            "downwardAPI": {
                                "items": [
                                    {"path": "user", "fieldRef": {"fieldPath": "metadata.name"}}
                                ]
                            }
                        },
                        {"secret": {"name": "s"}, "configMap": {"name": "c"}},
                    ],
                },
            }
        ]
    )
    v = "spec.volumes[0].projected"
    assert messages(bad) == [
        f"{v}.defaultMode: Invalid value: 4095: must be a number between 0 and 0777 (octal), both inclusive",
        f"{v}.sources[0].secret.name: Required value",
        f'{v}: Invalid value: "settings": conflicting duplicate paths',
        f"{v}.sources[1].configMap.items[1].key: Required value",
        f'{v}.sources[1].configMap.items[1].path: Invalid value: "/abs": must be a relative path',
        f'{v}: Invalid value: "user": conflicting duplicate paths',
        f"{v}.sources[3]: Forbidden: may not specify more than 1 volume type per source",
    ]


def test_one_source_per_volume_counts_the_new_kinds() -> None:
    p = pod(volumes=[{"name": "x", "emptyDir": {}, "downwardAPI": {}, "projected": {}}])
    assert messages(p) == [
        "spec.volumes[0].downwardAPI: Forbidden: may not specify more than 1 volume type",
        "spec.volumes[0].projected: Forbidden: may not specify more than 1 volume type",
    ]


# ---------------------------------------------------------------- dnsPolicy, dnsConfig, hostAliases


def test_dns_policy_none_needs_a_nameserver() -> None:
    assert messages(pod(dnsPolicy="None")) == [
        "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"
    ]
    assert messages(pod(dnsPolicy="None", dnsConfig={"searches": ["a.b"]})) == [
        "spec.dnsConfig.nameservers: Required value: must provide at least one DNS nameserver when `dnsPolicy` is None"
    ]
    ok = pod(
        dnsPolicy="None",
        dnsConfig={
            "nameservers": ["1.1.1.1", "2001:db8::1"],
            "searches": ["ns1.svc.cluster.local", "example.com."],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
        },
    )
    assert messages(ok) == []
    for policy in ("ClusterFirst", "ClusterFirstWithHostNet", "Default"):
        assert messages(pod(dnsPolicy=policy, dnsConfig={"searches": ["x.y"]})) == []
    assert messages(pod(dnsPolicy="Sometimes")) == [
        'spec.dnsPolicy: Unsupported value: "Sometimes": supported values: "ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"'
    ]


def test_dns_config_limits() -> None:
    many = [f"d{i}.example" for i in range(33)]
    long = ["a" * 63 + "." + "b" * 63 + "." + "c" * 63] * 11  # 11 * 191 + 10 spaces = 2111
    p = pod(
        dnsConfig={
            "nameservers": ["1.1.1.1", "2.2.2.2", "3.3.3.3", "not-an-ip"],
            "searches": ["Bad_Domain"],
            "options": [{"value": "2"}],
        }
    )
    assert messages(p) == [
        'spec.dnsConfig.nameservers: Invalid value: []string{"1.1.1.1", "2.2.2.2", "3.3.3.3", "not-an-ip"}: must not have more than 3 nameservers',
        f'spec.dnsConfig.nameservers[3]: Invalid value: "not-an-ip": {IP_MSG}',
        f'spec.dnsConfig.searches[0]: Invalid value: "Bad_Domain": {SUBDOMAIN_MSG}',
        "spec.dnsConfig.options[0]: Required value: must not be empty",
    ]
    got = messages(pod(dnsConfig={"searches": many}))
    assert got == [
        "spec.dnsConfig.searches: Invalid value: []string{"
        + ", ".join(f'"{d}"' for d in many)
        + "}: must not have more than 32 search paths"
    ]
    got = messages(pod(dnsConfig={"searches": long}))
    assert len(got) == 1
    assert got[0].endswith(
        ": must not have more than 2048 characters (including spaces) in the search list"
    )
    assert messages(pod(dnsConfig={"searches": long[:10]})) == []  # 1919 characters


def test_host_aliases() -> None:
    ok = pod(hostAliases=[{"ip": "10.1.2.3", "hostnames": ["foo.local", "bar"]}, {"ip": "::1"}])
    assert messages(ok) == []
    p = pod(hostAliases=[{"ip": "10.1.2", "hostnames": ["ok", "Not_OK"]}, {"hostnames": ["x"]}])
    assert messages(p) == [
        f'spec.hostAliases[0].ip: Invalid value: "10.1.2": {IP_MSG}',
        f'spec.hostAliases[0].hostnames[1]: Invalid value: "Not_OK": {SUBDOMAIN_MSG}',
        f'spec.hostAliases[1].ip: Invalid value: "": {IP_MSG}',
    ]


# ---------------------------------------------------------------- sidecars, stdin/tty


def test_restart_policy_only_always_only_on_init_containers() -> None:
    sidecar = container(
        name="proxy",
        restartPolicy="Always",
        readinessProbe={"tcpSocket": {"port": 8080}},
        startupProbe={"exec": {"command": ["true"]}},
        livenessProbe={"exec": {"command": ["true"]}},
        lifecycle={
            "postStart": {"exec": {"command": ["true"]}},
            "preStop": {"sleep": {"seconds": 1}},
        },
    )
    assert messages(pod(initContainers=[sidecar])) == []
    p = pod(
        initContainers=[
            container(name="once", restartPolicy="OnFailure"),
            container(
                name="plain",
                livenessProbe={"exec": {"command": ["true"]}},
                readinessProbe={"exec": {"command": ["true"]}},
                startupProbe={"exec": {"command": ["true"]}},
                lifecycle={"preStop": {"exec": {"command": ["true"]}}},
            ),
            container(name="side", restartPolicy="Always", livenessProbe={"exec": {}}),
        ],
        containers=[container(restartPolicy="Always", stdin=True, stdinOnce=True, tty=True)],
    )
    assert messages(p) == [
        'spec.initContainers[0].restartPolicy: Unsupported value: "OnFailure": supported values: "Always"',
        "spec.initContainers[1].lifecycle: Forbidden: may not be set for init containers without restartPolicy=Always",
        "spec.initContainers[1].livenessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
        "spec.initContainers[1].readinessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
        "spec.initContainers[1].startupProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
        "spec.initContainers[2].livenessProbe.exec.command: Required value",
        "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers",
    ]


def test_termination_message_policy() -> None:
    p = pod(
        containers=[
            container(terminationMessagePolicy="FallbackToLogsOnError"),
            container(name="b", terminationMessagePolicy="Logs"),
        ]
    )
    assert messages(p) == [
        'spec.containers[1].terminationMessagePolicy: Unsupported value: "Logs": supported values: "FallbackToLogsOnError", "File"'
    ]
