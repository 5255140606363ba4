"""`tinykube trace`: the tree of steps, the critical path, focusing on a pod, -o json; and a
changing verb's root span reaching the span store through a real API server."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from apimachinery import tracing
from cli import traceroot, tracetree
from cli.main import cli
from protos import trace_pb2
from tests.unit.cli_apiserver import ApiServerProcess
from tests.unit.cli_apiserver import apiserver as apiserver  # the module's server

T = "e" * 32
MS = 1_000_000


def span(
    n: int,
    parent: int | None,
    name: str,
    start: int,
    end: int,
    obj: str = "",
    *,
    component: str = "",
    node: str = "",
    why: str = "",
) -> trace_pb2.Span:
    return trace_pb2.Span(
        trace_id=T,
        span_id=f"{n:016x}",
        parent_span_id=f"{parent:016x}" if parent else "",
        name=name,
        start_time_unix_nano=start * MS,
        end_time_unix_nano=end * MS,
        object=obj,
        component=component,
        node=node,
        why=why,
    )


POD_A, POD_B = "pods/default/web-a", "pods/default/web-b"
SPANS = [
    span(1, None, "apply", 0, 900, component="tinykube", why="tinykube apply -f web.yaml"),
    span(2, 1, "CreateReplicaSet", 10, 14, "replicasets/default/web-7", component="deployment"),
    span(3, 2, "CreatePod", 20, 22, POD_A, component="replicaset-controller"),
    span(4, 2, "CreatePod", 23, 25, POD_B, component="replicaset-controller"),
    span(5, 3, "Bind", 26, 30, POD_A, component="default-scheduler", why="chosen node1"),
    span(6, 4, "Bind", 27, 31, POD_B, component="default-scheduler", why="chosen node2"),
    span(7, 5, "SyncPod", 35, 400, POD_A, component="kubelet", node="node1"),
    span(8, 6, "SyncPod", 36, 300, POD_B, component="kubelet", node="node2"),
    span(9, 7, "UpdatePodStatus", 390, 400, POD_A, component="kubelet", node="node1"),
    span(10, 9, "UpdateEndpoints", 410, 412, "endpoints/default/web", component="endpoint"),
    span(11, 10, "SyncProxyRules", 420, 950, "endpoints/default/web", node="node2"),
    span(12, 99, "Orphan", 5, 6, component="lost-parent"),
]
SPANS[6].attributes.add(key="tinykube.cni.commands", values=[f"ip cmd {i}" for i in range(14)])
SPANS[4].attributes.add(key="tinykube.placement", values=["chosen node1: 2 of 2 feasible"])


def test_the_critical_path_is_the_chain_of_causes_of_the_last_step() -> None:
    assert tracetree.critical_path(SPANS) == [f"{n:016x}" for n in (1, 2, 3, 5, 7, 9, 10, 11)]
    assert tracetree.critical_path([]) == []


def test_the_tree_puts_each_step_under_its_cause_siblings_by_start() -> None:
    roots = tracetree.build(SPANS)
    assert [r.span.name for r in roots] == ["apply", "Orphan"]  # a lost parent: a root
    rows = [(prefix, step.span.name, step.depth) for step, prefix, _ in tracetree.walk(roots)]
    assert rows[:5] == [
        ("", "apply", 0),
        ("└─ ", "CreateReplicaSet", 1),
        ("   ├─ ", "CreatePod", 2),
        ("   │  └─ ", "Bind", 3),
        ("   │     └─ ", "SyncPod", 4),
    ]


def test_the_text_marks_the_critical_path_and_shows_the_details() -> None:
    text = tracetree.render(trace_pb2.Trace(trace_id=T, spans=SPANS))
    lines = text.splitlines()
    assert lines[0] == f"trace {T}: 12 steps in 950ms, from 1970-01-01T00:00:00.000Z"
    apply_line = next(line for line in lines if "apply" in line and "tinykube" in line)
    assert apply_line.startswith("*   +0.000s   900ms  apply")
    assert apply_line.endswith("tinykube apply -f web.yaml")
    sync_b = next(line for line in lines if "SyncPod web-b" in line)
    assert sync_b.startswith(" ") and "kubelet @node2" in sync_b  # off the critical path
    assert any("placement: chosen node1: 2 of 2 feasible" in line for line in lines)
    kernel = [line for line in lines if "kernel:" in line]
    assert len(kernel) == 13 and "2 more (-o json has them all)" in kernel[-1]
    assert "kernel:" not in tracetree.render(trace_pb2.Trace(trace_id=T, spans=SPANS), False)


def test_a_pods_focus_keeps_its_causes_and_consequences() -> None:
    kept = {s.name + ":" + s.object for s in tracetree.focus(SPANS, POD_A)}
    assert kept == {
        "apply:",
        "CreateReplicaSet:replicasets/default/web-7",
        "CreatePod:" + POD_A,
        "Bind:" + POD_A,
        "SyncPod:" + POD_A,
        "UpdatePodStatus:" + POD_A,
        "UpdateEndpoints:endpoints/default/web",
        "SyncProxyRules:endpoints/default/web",
    }


def test_json_has_every_span_in_tree_order() -> None:
    out = tracetree.to_json(trace_pb2.Trace(trace_id=T, spans=SPANS))
    assert out["traceId"] == T and out["durationSeconds"] == 0.95
    assert [s["name"] for s in out["spans"]][:3] == ["apply", "CreateReplicaSet", "CreatePod"]
    sync = next(s for s in out["spans"] if s["spanId"] == f"{7:016x}")
    assert (
        sync["critical"]
        and sync["depth"] == 4
        and len(sync["attributes"]["tinykube.cni.commands"]) == 14
    )
    assert out["criticalPath"][-1] == f"{11:016x}"


@pytest.mark.parametrize(
    ("words", "changes"),
    [
        (["apply"], True),
        (["set", "image"], True),
        (["rollout", "restart"], True),
        (["rollout", "status"], False),
        (["get"], False),
        ([], False),
    ],
)
def test_only_changing_verbs_start_a_trace(words: list[str], changes: bool) -> None:
    assert traceroot.mutating(words) is changes


def test_usage_errors_name_what_to_give() -> None:
    result = CliRunner().invoke(cli, ["--server", "127.0.0.1:1", "trace"])
    assert result.exit_code == 2 and "TYPE/NAME" in result.output
    result = CliRunner().invoke(cli, ["--server", "127.0.0.1:1", "trace", "web-app"])
    assert result.exit_code == 1 and "expected TYPE/NAME" in result.output
    result = CliRunner().invoke(cli, ["--server", "127.0.0.1:1", "trace", "nonsense/x"])
    assert result.exit_code == 1 and 'resource type "nonsense"' in result.output


def test_a_changing_verb_starts_the_trace_that_trace_shows(apiserver: ApiServerProcess) -> None:
    try:
        created = apiserver.tk("create", "namespace", "traced")
        assert created.exit_code == 0, created.output
        shown = apiserver.tk("trace", "namespace/traced")
        assert shown.exit_code == 0, shown.output
        first, *rest = shown.output.splitlines()
        assert first.startswith("trace ") and ": 1 steps in " in first
        root = rest[-1]
        assert root.startswith("*") and "create namespace" in root
        assert root.endswith("tinykube  tinykube create namespace")  # CliRunner: no argv
        listed = apiserver.tk("trace", "--list", "-o", "json")
        assert json.loads(listed.output)[0]["root"] == "create namespace"
        last = json.loads(apiserver.tk("trace", "--last", "-o", "json").output)
        assert last["spans"][0]["component"] == "tinykube" and last["criticalPath"]
        # A read starts nothing: still one trace.
        assert apiserver.tk("get", "namespaces").exit_code == 0
        assert len(json.loads(apiserver.tk("trace", "--list", "-o", "json").output)) == 1
        missing = apiserver.tk("trace", "namespace/default")
        assert missing.exit_code == 1 and "has no trace" in missing.output
    finally:
        tracing.shutdown()
