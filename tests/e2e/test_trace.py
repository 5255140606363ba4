"""The causal trace of a change, on a real two-node cluster: the seed's apply and a rolling update.

`tinykube apply -f examples/web-app.yaml` starts a trace (the CLI's root span)
that every component continues through the objects it writes. Once both
replicas serve, the trace of `deployment/web-app` must hold, for each replica,
in causal order (each step the child of the one before it):

    apply -> CreateReplicaSet -> CreatePod -> Bind (placement record)
          -> SyncPod on the pod's node -> RunPodSandbox -> CNI ADD (kernel commands)
                                       -> PullImage -> StartContainer -> UpdatePodStatus (Ready)
          -> UpdateEndpoints (the pod's address) -> SyncProxyRules on node1 and on node2

and `tinykube trace` prints it with the critical path marked. Then `set image`
rolls the Deployment: its trace shows the deployment controller's steps on the
new and the old ReplicaSet interleaved (new up, old down, new up, old down),
as maxSurge 1 / maxUnavailable 0 on two replicas makes it go.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from localcluster.cluster import Cluster
from localcluster.seedprobes import endpoints_of, running
from tests.e2e.localcluster_fixture import SEED, cli, local_cluster, logs, skip_reason, wait

pytestmark = pytest.mark.skipif(bool(skip_reason()), reason=skip_reason() or "ready")

NAME = f"trace{os.getpid() % 100000}"
NODES = ("node1", "node2")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with local_cluster(NAME) as c:
        yield c


def spans_of(cluster: Cluster, resource: str = "deployments", name: str = "web-app") -> list[Any]:
    async def read(client: Any) -> list[Any]:
        got = await client.get_trace(resource=resource, name=name, namespace="default")
        return list(got.spans)

    return cluster.api(read)


def eventually_spans(cluster: Cluster, complete: Any, what: str, timeout: float = 60) -> list[Any]:
    """Poll the trace until `complete(spans)` holds (each process exports a batch every 5 s)."""
    deadline = time.monotonic() + timeout
    spans: list[Any] = []
    while time.monotonic() < deadline:
        try:
            spans = spans_of(cluster)
        except Exception:  # not stored yet
            spans = []
        if spans and complete(spans):
            return spans
        time.sleep(0.5)
    names = sorted(f"{s.name} {s.object} {s.node}" for s in spans)
    raise AssertionError(f"trace incomplete: {what}\n" + "\n".join(names) + "\n" + logs(cluster))


def attrs(span: Any) -> dict[str, list[str]]:
    return {a.key: list(a.values) for a in span.attributes}


def caused_by(span: Any, cause: Any) -> bool:
    """`cause` is the span's parent, or one of its links (one write, several causes)."""
    return span.parent_span_id == cause.span_id or any(
        link.span_id == cause.span_id for link in span.links
    )


def pod_chain(spans: list[Any], pod: str) -> dict[str, Any] | None:
    """The pod's steps, each found as the child of the step before it (None if incomplete)."""
    obj = f"pods/default/{pod}"
    mine = [s for s in spans if s.object == obj]

    def child(name: str, parent: Any) -> Any:
        return next(
            (s for s in mine if s.name == name and s.parent_span_id == parent.span_id), None
        )

    chain: dict[str, Any] = {"CreatePod": next((s for s in mine if s.name == "CreatePod"), None)}
    for name, under in (("Bind", "CreatePod"), ("SyncPod", "Bind")):
        chain[name] = child(name, chain[under]) if chain[under] is not None else None
    sync = chain["SyncPod"]
    if sync is None:
        return None
    for name in ("RunPodSandbox", "PullImage", "StartContainer", "UpdatePodStatus"):
        chain[name] = child(name, sync)
    sandbox = chain["RunPodSandbox"]
    chain["CNI ADD"] = child("CNI ADD", sandbox) if sandbox is not None else None
    status = chain["UpdatePodStatus"]
    chain["UpdateEndpoints"] = next(
        (s for s in spans if s.name == "UpdateEndpoints" and status and caused_by(s, status)),
        None,
    )
    return chain if all(v is not None for v in chain.values()) else None


def seed_complete(cluster: Cluster, pods: dict[str, tuple[str, str]]) -> Any:
    def complete(spans: list[Any]) -> bool:
        chains = [pod_chain(spans, pod) for pod in pods]
        if any(c is None for c in chains):
            return False
        syncs = [s for s in spans if s.name == "SyncProxyRules"]
        return all(
            any(
                p.node == node
                and p.start_time_unix_nano >= c["UpdateEndpoints"].start_time_unix_nano
                for p in syncs
            )
            for c in chains
            if c is not None
            for node in NODES
        )

    return complete


def test_the_seeds_trace_holds_every_step_for_both_replicas(cluster: Cluster) -> None:
    cli(cluster, "apply", "-f", SEED)
    wait(lambda: len(running(cluster)) == 2, "two replicas running", cluster)
    wait(lambda: len(endpoints_of(cluster)) == 2, "both replicas behind the Service", cluster)
    pods = running(cluster)
    assert {node for node, _ in pods.values()} == set(NODES), pods
    spans = eventually_spans(cluster, seed_complete(cluster, pods), "the seed's steps")
    by_id = {s.span_id: s for s in spans}
    root = next(s for s in spans if not s.parent_span_id)
    assert (root.name, root.component) == ("apply", "tinykube")
    assert "apply -f" in root.why
    rs = next(s for s in spans if s.name == "CreateReplicaSet")
    assert rs.parent_span_id == root.span_id and rs.component == "deployment-controller"
    for pod, (node, ip) in pods.items():
        chain = pod_chain(spans, pod)
        assert chain is not None
        assert chain["CreatePod"].parent_span_id == rs.span_id
        assert chain["CreatePod"].component == "replicaset-controller"
        order = [chain[n] for n in ("CreatePod", "Bind", "SyncPod", "RunPodSandbox")]
        order += [chain[n] for n in ("PullImage", "StartContainer", "UpdatePodStatus")]
        starts = [s.start_time_unix_nano for s in order]
        assert starts == sorted(starts), [s.name for s in order]
        bind = chain["Bind"]
        assert bind.component == "default-scheduler" and bind.why.startswith(f"chosen {node}:")
        placement = attrs(bind)["tinykube.placement"]
        assert any(line.startswith(f"{node}: score") and "<- chosen" in line for line in placement)
        for step in ("SyncPod", "RunPodSandbox", "PullImage", "StartContainer", "UpdatePodStatus"):
            assert (chain[step].component, chain[step].node) == ("kubelet", node), step
        cni = chain["CNI ADD"]
        assert (cni.component, cni.node) == ("tinykube-cni", node)
        commands = attrs(cni)["tinykube.cni.commands"]
        assert any(c.startswith("ip link add veth") for c in commands), commands
        assert any(c.endswith(f"ip addr add {ip}/24 dev eth0") for c in commands), commands
        assert f"Ready True, podIP {ip}" in chain["UpdatePodStatus"].why
        endpoints = chain["UpdateEndpoints"]
        assert endpoints.component == "endpoint-controller" and ip in endpoints.why
        assert endpoints.start_time_unix_nano >= chain["UpdatePodStatus"].start_time_unix_nano
        for on in NODES:
            later = [
                s
                for s in spans
                if s.name == "SyncProxyRules"
                and s.node == on
                and s.start_time_unix_nano >= endpoints.start_time_unix_nano
                and any(caused_by(s, e) for e in spans if e.name == "UpdateEndpoints")
            ]
            assert later, f"no proxy sync on {on} after {pod}'s endpoints"
            assert all(s.parent_span_id in by_id for s in later)
    shown = cli(cluster, "trace", "deployment/web-app").stdout
    assert shown.startswith("trace ") and "* " in shown
    assert "kernel: ip link add veth" in shown and "placement: " in shown
    as_json = json.loads(cli(cluster, "trace", "deployment/web-app", "-o", "json").stdout)
    assert as_json["criticalPath"][0] == root.span_id and len(as_json["spans"]) == len(spans)
    a_pod = next(iter(pods))
    focused = json.loads(cli(cluster, "trace", f"pod/{a_pod}", "-o", "json").stdout)
    other = next(p for p in pods if p != a_pod)
    assert not any(s["object"] == f"pods/default/{other}" for s in focused["spans"])


def rollout_steps(spans: list[Any]) -> list[str]:
    """The ReplicaSets the deployment controller created or scaled, in order, repeats merged."""
    steps = sorted(
        (s for s in spans if s.component == "deployment-controller" and not s.error),
        key=lambda s: s.start_time_unix_nano,
    )
    names: list[str] = []
    for s in steps:
        rs = s.object.rsplit("/", 1)[-1]
        if not names or names[-1] != rs:
            names.append(rs)
    return names


def test_a_rolling_updates_trace_interleaves_the_old_and_new_replicasets(
    cluster: Cluster,
) -> None:
    if len(running(cluster)) != 2:
        cli(cluster, "apply", "-f", SEED)
        wait(lambda: len(running(cluster)) == 2, "two replicas running", cluster)
    old = {p.split("-")[2] for p in running(cluster)}
    assert len(old) == 1, old
    cli(cluster, "set", "image", "deployment/web-app", "web-app=nginx:1.25")
    cli(cluster, "rollout", "status", "deployment/web-app", "--timeout", "120s", timeout=150)

    new_pods = [p for p in running(cluster) if p.split("-")[2] not in old]
    assert len(new_pods) == 2, new_pods

    def complete(spans: list[Any]) -> bool:
        steps = rollout_steps(spans)
        scaled_to_zero = any(
            s.name == "ScaleReplicaSet" and attrs(s).get("tinykube.replicas.to") == ["0"]
            for s in spans
        )
        chains = all(pod_chain(spans, pod) is not None for pod in new_pods)
        return len(steps) >= 4 and scaled_to_zero and chains

    spans = eventually_spans(cluster, complete, "the rollout's steps")
    root = next(s for s in spans if not s.parent_span_id)
    assert root.name == "set image" and "web-app=nginx:1.25" in root.why
    steps = rollout_steps(spans)
    new_rs, old_rs = steps[0], steps[1]
    assert old_rs.split("-")[-1] in old and new_rs != old_rs
    # new up, old down, new up, old down: each set's turn follows the other's.
    assert steps[:4] == [new_rs, old_rs, new_rs, old_rs], steps
    created = next(s for s in spans if s.name == "CreateReplicaSet")
    assert created.object.endswith(new_rs) and created.parent_span_id == root.span_id
    downs = [s for s in spans if s.name == "ScaleReplicaSet" and s.object.endswith(old_rs)]
    assert [attrs(s)["tinykube.replicas.to"] for s in downs][-1] == ["0"]
    assert all("scaled down" in s.why for s in downs)
    # The new pods' own chains are in the same trace (complete() waited for them).
    assert all(p.startswith(new_rs) for p in new_pods), (new_pods, new_rs)
