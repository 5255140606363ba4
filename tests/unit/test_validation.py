"""Validation of metadata, Deployment/ReplicaSet, Service and the other kinds, in Kubernetes' words."""

# Expected messages are Kubernetes' exact words, so some lines are long.
# ruff: noqa: E501
from __future__ import annotations

from apimachinery import codec, errors, validation
from apimachinery.validation_core import NODE_PORT_MAX, NODE_PORT_MIN
from protos import apps_pb2, core_pb2
from tests.unit.validation_fixtures import (
    DEPLOYMENT,
    DNS1035_MSG,
    LABEL_MSG,
    LABEL_VALUE_MSG,
    QUALIFIED_NAME_MSG,
    REPO,
    SUBDOMAIN_MSG,
    container,
    deployment,
    messages,
    obj,
    service,
)

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
