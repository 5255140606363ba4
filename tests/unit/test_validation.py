"""Validation: every rule, with Kubernetes' wording for the headline messages."""

# Expected messages are Kubernetes' exact words, so some lines are long.
# ruff: noqa: E501

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from apimachinery import codec, errors, validation
from apimachinery.validation_core import NODE_PORT_MAX, NODE_PORT_MIN
from protos import apps_pb2, core_pb2

REPO = Path(__file__).resolve().parents[2]

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
    "regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
QUALIFIED_NAME_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
    "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)

DEPLOYMENT: dict[str, Any] = yaml.safe_load(
    """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:latest
        ports: [{containerPort: 80}]
"""
)


def deployment(**spec: Any) -> apps_pb2.Deployment:
    data = yaml.safe_load(yaml.safe_dump(DEPLOYMENT))
    data["spec"].update(spec)
    return codec.from_dict(data)  # type: ignore[return-value]


def pod(**spec: Any) -> core_pb2.Pod:
    base: dict[str, Any] = {"containers": [{"name": "web", "image": "nginx"}]}
    base.update(spec)
    data = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": base}
    return codec.from_dict(data)  # type: ignore[return-value]


def container(**fields: Any) -> dict[str, Any]:
    return {"name": "web", "image": "nginx", **fields}


def service(**spec: Any) -> core_pb2.Service:
    base: dict[str, Any] = {"ports": [{"port": 80}], "selector": {"app": "web"}}
    base.update(spec)
    data = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"}, "spec": base}
    return codec.from_dict(data)  # type: ignore[return-value]


def obj(data: dict[str, Any]) -> Any:
    return codec.from_dict(data)


def messages(o: Any) -> list[str]:
    return [str(e) for e in validation.validate_object(o)]


def update_messages(new: Any, old: Any) -> list[str]:
    return [str(e) for e in validation.validate_update(new, old)]


# ---------------------------------------------------------------- the seed manifest


def test_seed_manifest_is_valid() -> None:
    objs = codec.decode_documents((REPO / "examples" / "web-app.yaml").read_text())
    assert [messages(o) for o in objs] == [[], []]


def test_errors_become_kubernetes_invalid_message() -> None:
    d = deployment()
    d.metadata.name = "Bad_Name"
    causes = validation.validate_object(d)
    err = errors.Invalid.for_object("Deployment.apps", "Bad_Name", causes)
    assert (
        str(err)
        == f'Deployment.apps "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN_MSG}'
    )


# ---------------------------------------------------------------- metadata


def test_names() -> None:
    d = deployment()
    d.metadata.name = "Bad_Name"
    assert messages(d) == [f'metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN_MSG}']
    d.metadata.name = "a" * 254
    assert messages(d) == [
        f'metadata.name: Invalid value: "{"a" * 254}": must be no more than 253 characters'
    ]
    d.metadata.name = ""
    assert messages(d) == ["metadata.name: Required value: name or generateName is required"]


def test_service_and_namespace_names_are_labels() -> None:
    svc = service()
    svc.metadata.name = "1web"
    assert messages(svc) == [f'metadata.name: Invalid value: "1web": {DNS1035_MSG}']
    svc.metadata.name = "a" * 64
    assert f'metadata.name: Invalid value: "{"a" * 64}": must be no more than 63 characters' in (
        messages(svc)
    )
    ns = obj({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a.b"}})
    assert messages(ns) == [f'metadata.name: Invalid value: "a.b": {LABEL_MSG}']


def test_namespace_of_namespaced_and_cluster_objects() -> None:
    d = deployment()
    d.metadata.namespace = "Bad.NS"
    assert messages(d) == [f'metadata.namespace: Invalid value: "Bad.NS": {LABEL_MSG}']
    node = obj({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n", "namespace": "x"}})
    assert messages(node) == ["metadata.namespace: Forbidden: not allowed on this type"]


def test_labels_and_annotations() -> None:
    d = deployment()
    d.metadata.labels["-bad"] = "ok"
    d.metadata.labels["good"] = "-bad-"
    assert messages(d) == [
        f'metadata.labels: Invalid value: "-bad": {QUALIFIED_NAME_MSG}',
        f'metadata.labels: Invalid value: "-bad-": {LABEL_VALUE_MSG}',
    ]
    d = deployment()
    d.metadata.labels["example.com/app"] = "x" * 64
    assert messages(d) == [
        f'metadata.labels: Invalid value: "{"x" * 64}": must be no more than 63 characters'
    ]
    d = deployment()
    d.metadata.labels["a/b/c"] = "x"
    assert "a qualified name must consist of" in messages(d)[0]
    d = deployment()
    d.metadata.labels["Bad_Prefix/x"] = "y"
    assert messages(d)[0].startswith(
        'metadata.labels: Invalid value: "Bad_Prefix/x": prefix part a lowercase RFC 1123'
    )
    d = deployment()
    d.metadata.annotations["big"] = "x" * (256 * 1024)
    assert messages(d) == ["metadata.annotations: Too long: must have at most 262144 bytes"]
    d = deployment()
    d.metadata.annotations["Not Valid"] = "x"
    assert messages(d)[0].startswith('metadata.annotations: Invalid value: "Not Valid": name part')


def test_owner_references_and_finalizers() -> None:
    d = deployment()
    d.metadata.owner_references.add(api_version="v1", kind="X", name="x")
    d.metadata.finalizers.extend(["example.com/f", "example.com/f"])
    assert messages(d) == [
        'metadata.ownerReferences[0].uid: Invalid value: "": uid must not be empty',
        'metadata.finalizers[1]: Duplicate value: "example.com/f"',
    ]


# ---------------------------------------------------------------- Deployment / ReplicaSet


def test_selector_must_match_template_labels() -> None:
    d = deployment(
        template={"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [container()]}}
    )
    assert messages(d) == [
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"x"}: '
        "`selector` does not match template `labels`"
    ]


def test_selector_required_and_not_empty() -> None:
    d = deployment()
    d.spec.ClearField("selector")
    assert messages(d) == ["spec.selector: Required value"]
    d = deployment(selector={})
    assert messages(d) == [
        "spec.selector: Invalid value: {}: empty selector is invalid for deployment"
    ]


def test_selector_expressions() -> None:
    d = deployment(
        selector={
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "env", "operator": "In"},
                {"key": "x", "operator": "Exists", "values": ["a"]},
                {"key": "y", "operator": "Equals"},
            ],
        }
    )
    assert messages(d) == [
        "spec.selector.matchExpressions[0].values: Required value: must be specified when "
        "`operator` is 'In' or 'NotIn'",
        "spec.selector.matchExpressions[1].values: Forbidden: may not be specified when "
        "`operator` is 'Exists' or 'DoesNotExist'",
        'spec.selector.matchExpressions[2].operator: Invalid value: "Equals": not a valid selector operator',
    ]


def test_deployment_numbers() -> None:
    d = deployment(replicas=-1, minReadySeconds=-1, revisionHistoryLimit=-1)
    assert messages(d) == [
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        "spec.minReadySeconds: Invalid value: -1: must be greater than or equal to 0",
        "spec.revisionHistoryLimit: Invalid value: -1: must be greater than or equal to 0",
    ]
    d = deployment(minReadySeconds=10, progressDeadlineSeconds=10)
    assert messages(d) == [
        "spec.progressDeadlineSeconds: Invalid value: 10: must be greater than minReadySeconds"
    ]


def test_strategy() -> None:
    d = deployment(strategy={"type": "BlueGreen"})
    assert messages(d) == [
        'spec.strategy.type: Unsupported value: "BlueGreen": supported values: "Recreate", "RollingUpdate"'
    ]
    d = deployment(
        strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}
    )
    assert messages(d) == [
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"
    ]
    d = deployment(strategy={"rollingUpdate": {"maxSurge": "0%", "maxUnavailable": "0%"}})
    assert messages(d) == [
        'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "0%": may not be 0 when `maxSurge` is 0'
    ]
    d = deployment(strategy={"rollingUpdate": {"maxSurge": "abc", "maxUnavailable": "150%"}})
    assert messages(d) == [
        'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "150%": must not be greater than 100%',
        "spec.strategy.rollingUpdate.maxSurge: Invalid value: \"abc\": must be an integer or percentage (e.g '5%')",
    ]
    d = deployment(strategy={"rollingUpdate": {"maxSurge": -1}})
    assert messages(d) == [
        "spec.strategy.rollingUpdate.maxSurge: Invalid value: -1: must be greater than or equal to 0"
    ]
    d = deployment(strategy={"type": "Recreate", "rollingUpdate": {"maxSurge": 1}})
    assert messages(d) == [
        "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"
    ]
    assert messages(deployment(strategy={"type": "Recreate"})) == []
    assert (
        messages(deployment(strategy={"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})) == []
    )


def test_template_restart_policy_must_be_always() -> None:
    d = deployment()
    d.spec.template.spec.restart_policy = "Never"
    assert messages(d) == [
        'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"'
    ]
    d.spec.template.spec.restart_policy = "Always"
    assert messages(d) == []


def test_replica_set() -> None:
    rs = obj({**DEPLOYMENT, "kind": "ReplicaSet"})
    assert isinstance(rs, apps_pb2.ReplicaSet)
    assert messages(rs) == []
    rs.spec.ClearField("selector")
    assert messages(rs) == ["spec.selector: Required value"]
    rs.spec.selector.match_labels["app"] = "other"
    assert messages(rs) == [
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
        "`selector` does not match template `labels`"
    ]
    rs.spec.selector.match_labels["app"] = "web"
    rs.status.replicas, rs.status.ready_replicas = 1, 2
    assert messages(rs) == [
        "status.readyReplicas: Invalid value: 2: cannot be greater than status.replicas"
    ]


# ---------------------------------------------------------------- PodSpec


def test_pod_needs_containers_with_names_and_images() -> None:
    assert messages(pod(containers=[])) == ["spec.containers: Required value"]
    p = pod(
        containers=[{"name": "Web_1"}, {"name": "x", "image": "i"}, {"name": "x", "image": "i"}]
    )
    assert messages(p) == [
        f'spec.containers[0].name: Invalid value: "Web_1": {LABEL_MSG}',
        "spec.containers[0].image: Required value",
        'spec.containers[2].name: Duplicate value: "x"',
    ]
    p = pod(initContainers=[container()])
    assert messages(p) == ['spec.containers[0].name: Duplicate value: "web"']


def test_container_ports() -> None:
    p = pod(
        containers=[
            container(
                ports=[
                    {"containerPort": 70000},
                    {"containerPort": 0, "protocol": "HTTP"},
                    {"containerPort": 80, "name": "http", "hostPort": 70000},
                    {"containerPort": 81, "name": "http"},
                    {"containerPort": 82, "name": "Not--ok"},
                ]
            )
        ]
    )
    assert messages(p) == [
        "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        "spec.containers[0].ports[1].containerPort: Required value",
        'spec.containers[0].ports[1].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"',
        "spec.containers[0].ports[2].hostPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        'spec.containers[0].ports[3].name: Duplicate value: "http"',
        'spec.containers[0].ports[4].name: Invalid value: "Not--ok": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)',
        'spec.containers[0].ports[4].name: Invalid value: "Not--ok": must not contain consecutive hyphens',
    ]


def test_policies() -> None:
    p = pod(
        restartPolicy="Sometimes",
        dnsPolicy="Google",
        containers=[container(imagePullPolicy="Maybe")],
    )
    assert messages(p) == [
        'spec.containers[0].imagePullPolicy: Unsupported value: "Maybe": supported values: "Always", "IfNotPresent", "Never"',
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "Never", "OnFailure"',
        'spec.dnsPolicy: Unsupported value: "Google": supported values: "ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"',
    ]
    assert messages(pod(restartPolicy="OnFailure", dnsPolicy="ClusterFirst")) == []


def test_resources() -> None:
    p = pod(
        containers=[
            container(
                resources={
                    "limits": {"cpu": "1", "memory": "lots"},
                    "requests": {"cpu": "2", "gpu": "1", "example.com/dongle": "1"},
                }
            )
        ]
    )
    assert messages(p) == [
        "spec.containers[0].resources.limits[memory]: Invalid value: \"lots\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        'spec.containers[0].resources.requests[gpu]: Invalid value: "gpu": must be a standard resource for containers',
        'spec.containers[0].resources.requests[cpu]: Invalid value: "2": must be less than or equal to cpu limit of 1',
    ]
    p = pod(
        containers=[container(resources={"limits": {"cpu": "-1"}, "requests": {"cpu": "1500m"}})]
    )
    assert messages(p) == [
        'spec.containers[0].resources.limits[cpu]: Invalid value: "-1": must be greater than or equal to 0'
    ]
    ok = pod(
        containers=[
            container(
                resources={
                    "limits": {"cpu": "1", "memory": "1Gi"},
                    "requests": {"cpu": "500m", "memory": "512Mi"},
                }
            )
        ]
    )
    assert messages(ok) == []


def test_probes() -> None:
    p = pod(
        containers=[
            container(
                livenessProbe={"periodSeconds": -1},
                readinessProbe={"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}},
                startupProbe={"httpGet": {"port": 0}, "successThreshold": 2},
            )
        ]
    )
    assert messages(p) == [
        "spec.containers[0].livenessProbe: Required value: must specify a handler type",
        "spec.containers[0].livenessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0",
        "spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
        "spec.containers[0].startupProbe.httpGet.port: Invalid value: 0: must be between 1 and 65535, inclusive",
        "spec.containers[0].startupProbe.successThreshold: Invalid value: 2: must be 1",
    ]
    ok = pod(
        containers=[
            container(livenessProbe={"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5})
        ]
    )
    assert messages(ok) == []
    p = pod(containers=[container(livenessProbe={"exec": {}})])
    assert messages(p) == ["spec.containers[0].livenessProbe.exec.command: Required value"]


def test_volumes_and_mounts() -> None:
    p = pod(
        volumes=[
            {"name": "data", "emptyDir": {}},
            {"name": "data", "emptyDir": {}},
            {"name": "none"},
            {"name": "two", "emptyDir": {}, "hostPath": {"path": "/x"}},
            {"name": "cm", "configMap": {}},
        ],
        containers=[
            container(
                volumeMounts=[
                    {"name": "data", "mountPath": "/data"},
                    {"name": "missing", "mountPath": "/data"},
                    {"name": "cm"},
                ]
            )
        ],
    )
    assert messages(p) == [
        'spec.volumes[1].name: Duplicate value: "data"',
        "spec.volumes[2]: Required value: must specify a volume type",
        "spec.volumes[3].hostPath: Forbidden: may not specify more than 1 volume type",
        "spec.volumes[4].configMap.name: Required value",
        'spec.containers[0].volumeMounts[1].name: Not found: "missing"',
        'spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/data": must be unique',
        "spec.containers[0].volumeMounts[2].mountPath: Required value",
    ]


def test_env() -> None:
    p = pod(
        containers=[
            container(
                env=[
                    {"name": "1BAD"},
                    {
                        "name": "OK",
                        "value": "x",
                        "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}},
                    },
                    {"name": "EMPTY", "valueFrom": {}},
                    {"name": ""},
                ]
            )
        ]
    )
    got = messages(p)
    assert got[0].startswith(
        'spec.containers[0].env[0].name: Invalid value: "1BAD": a valid environment variable name'
    )
    assert got[1:] == [
        'spec.containers[0].env[1].valueFrom: Invalid value: "": may not be specified when `value` is not empty',
        'spec.containers[0].env[2].valueFrom: Invalid value: "": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`',
        "spec.containers[0].env[3].name: Required value",
    ]


def test_tolerations_and_node_selector() -> None:
    p = pod(
        tolerations=[
            {"key": "a", "operator": "Exists", "value": "x"},
            {"operator": "Equal", "value": "x"},
            {"key": "b", "effect": "Sometimes"},
            {"key": "c", "operator": "Like"},
            {"key": "d", "effect": "NoSchedule", "tolerationSeconds": 5},
        ],
        nodeSelector={"disk": "-ssd"},
    )
    assert messages(p) == [
        f'spec.nodeSelector: Invalid value: "-ssd": {LABEL_VALUE_MSG}',
        "spec.tolerations[0].value: Invalid value: \"x\": value must be empty when `operator` is 'Exists'",
        'spec.tolerations[1].operator: Invalid value: "Equal": operator must be Exists when `key` is empty, which means "match all values and all keys"',
        'spec.tolerations[2].effect: Unsupported value: "Sometimes": supported values: "NoExecute", "NoSchedule", "PreferNoSchedule"',
        'spec.tolerations[3].operator: Unsupported value: "Like": supported values: "Equal", "Exists"',
        "spec.tolerations[4].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set",
    ]


def test_pod_deadline_and_names() -> None:
    p = pod(activeDeadlineSeconds=0, nodeName="Node_1")
    assert messages(p) == [
        "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
        f'spec.nodeName: Invalid value: "Node_1": {SUBDOMAIN_MSG}',
    ]


# ---------------------------------------------------------------- Service


def test_service_ports() -> None:
    assert messages(service(ports=[])) == ["spec.ports: Required value"]
    assert messages(service(ports=[], clusterIP="None")) == []
    svc = service(
        ports=[
            {"port": 0, "targetPort": 0},
            {"name": "http", "port": 80, "targetPort": "Bad Name", "protocol": "ICMP"},
            {"name": "http", "port": 81},
        ]
    )
    assert messages(svc) == [
        "spec.ports[0].name: Required value",
        "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
        'spec.ports[1].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"',
        'spec.ports[1].targetPort: Invalid value: "Bad Name": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)',
        'spec.ports[2].name: Duplicate value: "http"',
    ]


def test_service_node_ports_and_types() -> None:
    assert (NODE_PORT_MIN, NODE_PORT_MAX) == (30000, 32767)
    svc = service(ports=[{"port": 80, "nodePort": 30080}])
    assert messages(svc) == [
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
    ]
    svc = service(type="NodePort", ports=[{"port": 80, "nodePort": 8080}])
    assert messages(svc) == [
        "spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. "
        "The range of valid ports is 30000-32767"
    ]
    assert messages(service(type="NodePort", ports=[{"port": 80, "nodePort": 30080}])) == []
    assert messages(service(type="Balanced")) == [
        'spec.type: Unsupported value: "Balanced": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"'
    ]
    assert messages(service(type="ExternalName", ports=[])) == ["spec.externalName: Required value"]
    assert messages(service(type="ExternalName", ports=[], externalName="db.example.com")) == []


def test_service_cluster_ip() -> None:
    assert messages(service(clusterIP="10.96.0.10")) == []
    assert messages(service(clusterIP="10.96.0.300")) == [
        "spec.clusterIP: Invalid value: \"10.96.0.300\": must be empty, 'None', or a valid IP address"
    ]
    assert messages(service(type="NodePort", clusterIP="None")) == [
        "spec.clusterIP: Invalid value: \"None\": may not be set to 'None' for NodePort services"
    ]


# ---------------------------------------------------------------- other kinds


def test_node() -> None:
    node = obj(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "node-1"},
            "spec": {
                "podCIDR": "10.244.1.0/33",
                "taints": [{"key": "k", "effect": "Never"}, {"key": "x"}],
            },
        }
    )
    assert messages(node) == [
        'spec.podCIDR: Invalid value: "10.244.1.0/33": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)',
        'spec.taints[0].effect: Unsupported value: "Never": supported values: "NoExecute", "NoSchedule", "PreferNoSchedule"',
        "spec.taints[1].effect: Required value",
    ]


def test_config_map_and_secret_keys_and_size() -> None:
    cm = obj(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c"},
            "data": {"a b": "x", "ok.key": "y"},
        }
    )
    assert messages(cm) == [
        "data[a b]: Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
        "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
    ]
    cm = obj(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c"},
            "data": {"big": "x" * (1024 * 1024 + 1)},
        }
    )
    assert messages(cm) == ["data: Too long: must have at most 1048576 bytes"]
    secret = obj(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s"},
            "type": "kubernetes.io/tls",
            "stringData": {"..": "x"},
        }
    )
    assert messages(secret) == [
        "stringData[..]: Invalid value: \"..\": must not be '..'",
        "data[tls.crt]: Required value",
        "data[tls.key]: Required value",
    ]


def test_event_lease_endpoints() -> None:
    ev = obj(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "e", "namespace": "a"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "b"},
            "type": "Bad",
        }
    )
    assert messages(ev) == [
        'involvedObject.namespace: Invalid value: "b": does not match event.namespace',
        'type: Unsupported value: "Bad": supported values: "Normal", "Warning"',
    ]
    lease = obj(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "node-1"},
            "spec": {"leaseDurationSeconds": 0},
        }
    )
    assert messages(lease) == [
        "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"
    ]
    ep = obj(
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "svc"},
            "subsets": [
                {
                    "addresses": [{"ip": "10.244.1.300"}],
                    "ports": [{"port": 80}, {"port": 81, "name": "b"}],
                }
            ],
        }
    )
    assert messages(ep) == [
        'subsets[0].addresses[0].ip: Invalid value: "10.244.1.300": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)',
        "subsets[0].ports[0].name: Required value",
    ]


def test_binding() -> None:
    binding = core_pb2.Binding()
    assert [str(e) for e in validation.validate_object(binding)] == ["target.name: Required value"]


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
