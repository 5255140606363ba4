"""Printers, columns and describe pages, on objects built directly from the protos."""

from __future__ import annotations

from typing import Any

import pytest

from apimachinery import scheme
from cli import cells, columns, describe, printers, tabwriter
from protos import apps_pb2, coordination_pb2, core_pb2, meta_pb2

NOW = 1_700_000_000.0


def meta(name: str, namespace: str = "default", age: float = 30, **kw: Any) -> meta_pb2.ObjectMeta:
    m = meta_pb2.ObjectMeta(name=name, namespace=namespace, **kw)
    m.creation_timestamp.seconds = int(NOW - age)
    return m


def running_pod(name: str = "web-1", *, ready: bool = True, age: float = 30) -> core_pb2.Pod:
    pod = core_pb2.Pod(api_version="v1", kind="Pod", metadata=meta(name, age=age))
    pod.spec.containers.add(name="web", image="nginx:latest")
    pod.spec.node_name = "node1"
    pod.status.phase = "Running"
    pod.status.pod_ip = "10.244.1.5"
    cs = pod.status.container_statuses.add(name="web", ready=ready)
    cs.state.running.started_at.seconds = int(NOW - age)
    return pod


def web_deployment() -> apps_pb2.Deployment:
    d = apps_pb2.Deployment(api_version="apps/v1", kind="Deployment", metadata=meta("web-app"))
    d.spec.replicas = 2
    d.spec.selector.match_labels["app"] = "web-app"
    d.spec.template.metadata.labels["app"] = "web-app"
    c = d.spec.template.spec.containers.add(name="web-app", image="nginx:latest")
    c.ports.add(container_port=80, protocol="TCP")
    d.status.replicas = 2
    d.status.updated_replicas = 2
    d.status.ready_replicas = 1
    d.status.available_replicas = 1
    d.status.unavailable_replicas = 1
    return d


# ------------------------------------------------------------------ ages and alignment


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (5, "5s"),
        (119, "119s"),
        (120, "2m"),
        (192, "3m12s"),
        (600, "10m"),
        (179 * 60, "179m"),
        (3 * 3600, "3h"),
        (7 * 3600 + 59 * 60, "7h59m"),
        (47 * 3600, "47h"),
        (2 * 86400 + 4 * 3600, "2d4h"),
        (7 * 86400, "7d"),
        (30 * 86400, "30d"),
        (3 * 365 * 86400 + 100 * 86400, "3y100d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration_matches_kubectl(seconds: float, text: str) -> None:
    assert cells.human_duration(seconds) == text


def test_tabwriter_aligns_blocks_separately() -> None:
    lines = ["Name:\tweb-app", "Namespace:\tdefault", "Containers:", "  web:", "    Image:\tnginx"]
    assert tabwriter.align(lines, padding=2) == [
        "Name:       web-app",
        "Namespace:  default",
        "Containers:",
        "  web:",
        "    Image:  nginx",
    ]


def test_tabwriter_nested_columns_and_no_trailing_spaces() -> None:
    lines = ["a\tbb\tc", "aaa\tb\tcccc", "x\ty"]
    out = tabwriter.align(lines, min_width=0, padding=1)
    # column 1 block covers only the first two lines; the third ends it
    assert out == ["a   bb c", "aaa b  cccc", "x   y"]
    assert all(line == line.rstrip() for line in out)


# ------------------------------------------------------------------ tables


def test_pod_table_has_kubectl_columns_and_padding() -> None:
    text = printers.render_table(scheme.for_resource("pods"), [running_pod()], now=NOW)
    assert text == (
        "NAME    READY   STATUS    RESTARTS   AGE\nweb-1   1/1     Running   0          30s\n"
    )


def test_pod_wide_adds_ip_and_node() -> None:
    text = printers.render_table(scheme.for_resource("po"), [running_pod()], wide=True, now=NOW)
    header, row = text.splitlines()
    assert header.split() == [
        "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED", "NODE",
        "READINESS", "GATES",
    ]  # fmt: skip
    assert row.split() == ["web-1", "1/1", "Running", "0", "30s", "10.244.1.5", "node1",
                           "<none>", "<none>"]  # fmt: skip


def test_pod_status_waiting_reason_wins() -> None:
    pod = running_pod(ready=False)
    pod.status.phase = "Pending"
    pod.status.container_statuses[0].state.Clear()
    pod.status.container_statuses[0].state.waiting.reason = "ContainerCreating"
    assert columns.pod_status(pod) == "ContainerCreating"
    ctx = cells.PrintContext(now=NOW)
    assert columns.pod_ready(pod, ctx) == "0/1"


def test_pod_status_crashloop_and_restarts_with_last_exit() -> None:
    pod = running_pod(ready=False)
    cs = pod.status.container_statuses[0]
    cs.state.Clear()
    cs.state.waiting.reason = "CrashLoopBackOff"
    cs.restart_count = 3
    cs.last_state.terminated.exit_code = 1
    cs.last_state.terminated.finished_at.seconds = int(NOW - 300)
    assert columns.pod_status(pod) == "CrashLoopBackOff"
    assert columns.pod_restarts(pod, cells.PrintContext(now=NOW)) == "3 (5m ago)"


def test_pod_status_terminated_without_reason_shows_exit_code() -> None:
    pod = running_pod()
    cs = pod.status.container_statuses[0]
    cs.state.Clear()
    cs.state.terminated.exit_code = 137
    assert columns.pod_status(pod) == "ExitCode:137"
    cs.state.terminated.signal = 9
    assert columns.pod_status(pod) == "Signal:9"


def test_pod_status_init_containers() -> None:
    pod = running_pod()
    pod.status.phase = "Pending"
    pod.spec.init_containers.add(name="setup", image="busybox")
    init = pod.status.init_container_statuses.add(name="setup")
    init.state.running.started_at.seconds = int(NOW)
    assert columns.pod_status(pod) == "Init:0/1"
    init.state.Clear()
    init.state.terminated.exit_code = 2
    init.state.terminated.reason = "Error"
    assert columns.pod_status(pod) == "Init:Error"


def test_pod_status_terminating_overrides_running() -> None:
    pod = running_pod()
    pod.metadata.deletion_timestamp.seconds = int(NOW)
    assert columns.pod_status(pod) == "Terminating"


def test_deployment_wide_row() -> None:
    text = printers.render_table(
        scheme.for_resource("deploy"), [web_deployment()], wide=True, now=NOW
    )
    header, row = text.splitlines()
    assert header.split() == [
        "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR",
    ]  # fmt: skip
    assert row.split() == ["web-app", "1/2", "2", "1", "30s", "web-app", "nginx:latest",
                           "app=web-app"]  # fmt: skip


def test_replicaset_columns() -> None:
    rs = apps_pb2.ReplicaSet(metadata=meta("web-app-5d9c", age=200))
    rs.spec.replicas = 2
    rs.status.replicas = 2
    rs.status.ready_replicas = 2
    text = printers.render_table(scheme.for_resource("rs"), [rs], now=NOW)
    assert text.splitlines()[1].split() == ["web-app-5d9c", "2", "2", "2", "3m20s"]


def test_service_ports_and_types() -> None:
    svc = core_pb2.Service(metadata=meta("web-app-service"))
    svc.spec.type = "NodePort"
    svc.spec.cluster_ip = "10.96.0.10"
    svc.spec.selector["app"] = "web-app"
    svc.spec.ports.add(port=80, protocol="TCP", node_port=30080)
    svc.spec.ports.add(port=443)
    text = printers.render_table(scheme.for_resource("svc"), [svc], wide=True, now=NOW)
    assert text.splitlines()[1].split() == [
        "web-app-service", "NodePort", "10.96.0.10", "<none>", "80:30080/TCP,443/TCP", "30s",
        "app=web-app",
    ]  # fmt: skip
    svc.spec.type = "LoadBalancer"
    assert columns.service_external_ip(svc, cells.PrintContext(NOW)) == "<pending>"


def test_node_status_roles_and_wide() -> None:
    node = core_pb2.Node(metadata=meta("node1", namespace="", age=3 * 86400))
    node.metadata.labels["node-role.kubernetes.io/control-plane"] = ""
    assert columns.node_status(node) == "Unknown"
    node.status.conditions.add(type="Ready", status="True")
    node.spec.unschedulable = True
    assert columns.node_status(node) == "Ready,SchedulingDisabled"
    node.status.conditions[0].status = "Unknown"
    assert columns.node_status(node) == "NotReady,SchedulingDisabled"
    node.status.addresses.add(type="InternalIP", address="192.168.56.11")
    node.status.node_info.kubelet_version = "v0.1.0"
    node.status.node_info.container_runtime_version = "containerd://1.6.20"
    text = printers.render_table(scheme.for_resource("nodes"), [node], wide=True, now=NOW)
    header, row = text.splitlines()
    assert header.startswith("NAME    STATUS")
    assert row.split()[:6] == [
        "node1", "NotReady,SchedulingDisabled", "control-plane", "3d", "v0.1.0", "192.168.56.11",
    ]  # fmt: skip
    assert row.endswith("containerd://1.6.20")


def test_endpoints_show_three_then_more() -> None:
    ep = core_pb2.Endpoints(metadata=meta("web-app-service"))
    subset = ep.subsets.add()
    for i in range(5):
        subset.addresses.add(ip=f"10.244.1.{i}")
    subset.ports.add(port=80)
    assert columns.format_endpoints(ep) == ("10.244.1.0:80,10.244.1.1:80,10.244.1.2:80 + 2 more...")
    assert columns.format_endpoints(core_pb2.Endpoints()) == "<none>"


def test_events_table_has_no_name_column() -> None:
    ev = core_pb2.Event(metadata=meta("web-1.17a"), reason="Scheduled", type="Normal",
                        message="Successfully assigned default/web-1 to node1")  # fmt: skip
    ev.involved_object.kind = "Pod"
    ev.involved_object.name = "web-1"
    ev.last_timestamp.seconds = int(NOW - 10)
    text = printers.render_table(scheme.for_resource("ev"), [ev], now=NOW)
    assert text.splitlines() == [
        "LAST SEEN   TYPE     REASON      OBJECT      MESSAGE",
        "10s         Normal   Scheduled   pod/web-1   Successfully assigned default/web-1 to node1",
    ]


def test_all_namespaces_and_kind_prefix() -> None:
    pod = running_pod()
    pod.metadata.namespace = "kube-system"
    text = printers.render_table(
        scheme.for_resource("pods"), [pod], with_namespace=True, with_kind=True, now=NOW
    )
    header, row = text.splitlines()
    assert header.split()[:2] == ["NAMESPACE", "NAME"]
    assert row.split()[:2] == ["kube-system", "pod/web-1"]


def test_small_kinds() -> None:
    cm = core_pb2.ConfigMap(metadata=meta("cfg"), data={"a": "1", "b": "2"})
    secret = core_pb2.Secret(metadata=meta("s"), data={"k": b"v"})
    lease = coordination_pb2.Lease(metadata=meta("node1", namespace="kube-node-lease"))
    lease.spec.holder_identity = "node1"
    ns = core_pb2.Namespace(metadata=meta("default", namespace=""))
    rows = {
        "cm": (cm, ["cfg", "2", "30s"]),
        "secrets": (secret, ["s", "Opaque", "1", "30s"]),
        "leases": (lease, ["node1", "node1", "30s"]),
        "ns": (ns, ["default", "Active", "30s"]),
    }
    for word, (obj, want) in rows.items():
        text = printers.render_table(scheme.for_resource(word), [obj], now=NOW)
        assert text.splitlines()[1].split() == want, word


def test_watch_rows_keep_header_widths() -> None:
    info = scheme.for_resource("pods")
    table = printers.new_table(info)
    first = printers.render_table(info, [running_pod("a-much-longer-name")], table=table, now=NOW)
    later = table.format([table.cells(running_pod("b"), cells.PrintContext(NOW))])[0]
    assert first.splitlines()[0].index("READY") == later.index("1/1")


def test_missing_creation_time_is_unknown() -> None:
    pod = running_pod()
    pod.metadata.ClearField("creation_timestamp")
    assert columns.age(pod, cells.PrintContext(NOW)) == "<unknown>"


# ------------------------------------------------------------------ names, yaml, json


def test_object_names_carry_the_group() -> None:
    svc = core_pb2.Service(metadata=meta("web-app-service"))
    lease = coordination_pb2.Lease(metadata=meta("n1"))
    assert printers.render_names([web_deployment(), svc, lease]) == (
        "deployment.apps/web-app\nservice/web-app-service\nlease.coordination.k8s.io/n1\n"
    )


def test_yaml_single_object_and_list_wrapper() -> None:
    import yaml

    one = yaml.safe_load(printers.render_yaml([web_deployment()], single=True))
    assert one["kind"] == "Deployment"
    assert one["spec"]["replicas"] == 2
    many = yaml.safe_load(printers.render_yaml([web_deployment(), running_pod()], single=False))
    assert many["kind"] == "List" and many["apiVersion"] == "v1"
    assert [i["kind"] for i in many["items"]] == ["Deployment", "Pod"]


def test_json_list_wrapper() -> None:
    import json

    data = json.loads(printers.render_json([running_pod()], single=False))
    assert data["kind"] == "List"
    assert data["items"][0]["metadata"]["name"] == "web-1"


def test_label_selector_format_sorts_requirements() -> None:
    sel = meta_pb2.LabelSelector(match_labels={"tier": "web", "app": "x"})
    sel.match_expressions.add(key="env", operator="In", values=["prod", "dev"])
    sel.match_expressions.add(key="legacy", operator="DoesNotExist")
    assert cells.format_label_selector(sel) == "app=x,env in (dev,prod),!legacy,tier=web"
    assert cells.format_label_selector(meta_pb2.LabelSelector()) == "<none>"


# ------------------------------------------------------------------ describe


def event_for(name: str, reason: str, *, count: int = 1) -> core_pb2.Event:
    ev = core_pb2.Event(metadata=meta(f"{name}.1"), reason=reason, type="Normal",
                        message=f"{reason} happened", count=count)  # fmt: skip
    ev.source.component = "default-scheduler"
    ev.first_timestamp.seconds = int(NOW - 600)
    ev.last_timestamp.seconds = int(NOW - 60)
    return ev


def test_describe_pod_page() -> None:
    pod = running_pod()
    pod.metadata.labels.update({"app": "web-app", "pod-template-hash": "5d9c"})
    pod.metadata.owner_references.add(kind="ReplicaSet", name="web-app-5d9c", controller=True)
    pod.status.host_ip = "192.168.56.11"
    pod.status.conditions.add(type="Ready", status="True")
    text = describe.describe(pod, describe.Related(events=[event_for("web-1", "Pulled")]), NOW)
    lines = text.splitlines()
    assert lines[0] == "Name:             web-1"
    assert "Node:             node1/192.168.56.11" in lines
    assert "Labels:           app=web-app" in lines
    assert "                  pod-template-hash=5d9c" in lines
    # "IPs:" has no tab, so it ends the first block: the lines after it align on their own,
    # exactly as Go's tabwriter lays out kubectl's page
    assert "Controlled By:  ReplicaSet/web-app-5d9c" in lines
    assert all(line == line.rstrip() for line in lines)
    assert "Containers:" in lines
    assert any(line.strip() == "State:          Running" for line in lines)
    assert lines[-3:] == [
        "  Type    Reason  Age   From               Message",
        "  ----    ------  ----  ----               -------",
        "  Normal  Pulled  60s   default-scheduler  Pulled happened",
    ]


def test_describe_deployment_page_and_repeated_event_age() -> None:
    d = web_deployment()
    d.metadata.uid = "u1"
    rs = apps_pb2.ReplicaSet(metadata=meta("web-app-5d9c"))
    rs.metadata.annotations["deployment.kubernetes.io/revision"] = "1"
    rs.spec.replicas = 2
    rs.status.replicas = 2
    related = describe.Related(events=[event_for("web-app", "ScalingReplicaSet", count=3)],
                               replica_sets=[rs])  # fmt: skip
    text = describe.describe(d, related, NOW)
    assert (
        "Replicas:               2 desired | 2 updated | 2 total | 1 available | 1 unavailable"
        in text.splitlines()
    )
    assert "RollingUpdateStrategy:  25% max unavailable, 25% max surge" in text
    squashed = [" ".join(line.split()) for line in text.splitlines()]
    assert "NewReplicaSet: web-app-5d9c (2/2 replicas created)" in squashed
    assert "OldReplicaSets: <none>" in squashed
    assert "60s (x3 over 10m)" in text


def test_describe_service_without_events() -> None:
    svc = core_pb2.Service(metadata=meta("web-app-service"))
    svc.spec.cluster_ip = "10.96.0.10"
    svc.spec.selector["app"] = "web-app"
    port = svc.spec.ports.add(port=80, protocol="TCP")
    port.target_port.int_val = 80
    ep = core_pb2.Endpoints(metadata=meta("web-app-service"))
    subset = ep.subsets.add()
    subset.addresses.add(ip="10.244.1.2")
    subset.addresses.add(ip="10.244.2.2")
    subset.ports.add(port=80, protocol="TCP")
    text = describe.describe(svc, describe.Related(endpoints=ep), NOW)
    lines = text.splitlines()
    assert "Port:              <unset>  80/TCP" in lines
    assert "TargetPort:        80/TCP" in lines
    assert "Endpoints:         10.244.1.2:80,10.244.2.2:80" in lines
    assert lines[-1] == "Events:            <none>"


def test_describe_node_lists_pods() -> None:
    node = core_pb2.Node(metadata=meta("node1", namespace=""))
    node.status.conditions.add(type="Ready", status="True", reason="KubeletReady")
    node.spec.pod_cidr = "10.244.1.0/24"
    text = describe.describe(node, describe.Related(pods=[running_pod()]), NOW)
    squashed = [" ".join(line.split()) for line in text.splitlines()]
    assert "PodCIDR: 10.244.1.0/24" in squashed
    assert "Non-terminated Pods: (1 in total)" in squashed
    assert "default web-1 30s" in squashed
    assert "Namespace:" not in text  # a cluster-scoped object has none


def test_describe_generic_fallback_for_lease() -> None:
    lease = coordination_pb2.Lease(api_version="coordination.k8s.io/v1", kind="Lease",
                                   metadata=meta("node1", namespace="kube-node-lease"))  # fmt: skip
    lease.spec.holder_identity = "node1"
    lease.spec.lease_duration_seconds = 40
    text = describe.describe(lease, describe.Related(), NOW)
    assert "Namespace:          kube-node-lease" in text
    assert "Spec:" in text.splitlines()
    assert "  Holder Identity:         node1" in text.splitlines()
    assert text.splitlines()[-1].startswith("Events:")


def test_words_splits_camel_case() -> None:
    assert describe.words("holderIdentity") == "Holder Identity"
    assert describe.words("podCIDR") == "Pod CIDR"
