"""`tinykube explain`: kinds and field paths from the descriptors, text from protos/*.proto."""

from __future__ import annotations

import pytest

from cli.cmd_explain import parse_proto_comments
from tests.unit.cli_apiserver import ApiServerProcess, no_traceback
from tests.unit.cli_apiserver import apiserver as apiserver  # the module's server

pytestmark = pytest.mark.timeout(60)


def test_explain_a_kind(apiserver: ApiServerProcess) -> None:
    result = apiserver.tk("explain", "pods")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:4] == ["KIND:       Pod", "VERSION:    v1", "", "DESCRIPTION:"]
    assert "FIELDS:" in lines
    fields = [line.split("\t") for line in lines if line.startswith("  ") and "\t" in line]
    assert fields[:5] == [
        ["  apiVersion", "<string>"],
        ["  kind", "<string>"],
        ["  metadata", "<ObjectMeta>"],
        ["  spec", "<PodSpec>"],
        ["  status", "<PodStatus>"],
    ]


def test_explain_a_field_path_with_its_proto_comment(apiserver: ApiServerProcess) -> None:
    result = apiserver.tk("explain", "nodes.spec.taints")
    assert result.exit_code == 0, result.output
    assert "FIELD: taints <[]Taint>" in result.stdout
    after_effect = result.stdout.split("  effect\t<string>\n", 1)[1]
    assert after_effect.splitlines()[0].strip() == "NoSchedule, PreferNoSchedule, NoExecute"
    leaf = apiserver.tk("explain", "deployments.apps.spec.replicas")
    assert "FIELD: replicas <integer>" in leaf.stdout and "FIELDS:" not in leaf.stdout
    labels = apiserver.tk("explain", "deploy.spec.template.metadata.labels")
    assert "FIELD: labels <map[string]string>" in labels.stdout
    ports = apiserver.tk("explain", "svc.spec.ports.targetPort")
    assert "FIELD: targetPort <IntOrString>" in ports.stdout
    started = apiserver.tk("explain", "pod.status.startTime")
    assert "FIELD: startTime <string>" in started.stdout


def test_explain_recursive(apiserver: ApiServerProcess) -> None:
    result = apiserver.tk("explain", "svc.spec", "--recursive")
    assert result.exit_code == 0
    assert "  ports\t<[]ServicePort>\n    port\t<integer>\n" in result.stdout.replace(
        "    name\t<string>\n    protocol\t<string>\n    appProtocol\t<string>\n", ""
    )


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("podz", 'error: the server doesn\'t have a resource type "podz"\n'),
        ("pods.spec.nope", 'error: field "nope" does not exist\n'),
        ("pods.spec.restartPolicy.deeper", 'error: field "deeper" does not exist\n'),
    ],
)
def test_explain_bad_input(apiserver: ApiServerProcess, arg: str, message: str) -> None:
    result = apiserver.tk("explain", arg)
    assert (result.exit_code, result.stderr) == (1, message)
    no_traceback(result)


def test_proto_comment_parser() -> None:
    source = """
syntax = "proto3";
package demo;
// ------------------------------------------------ Widget
// A widget: what it is.
message Widget {
  // How many.
  int32 count = 1;
  string mode = 2;  // fast or slow
  message Inner { bool on = 1; }  // the inner part
  map<string, string> tags = 3;
  oneof choice {
    // Pick one.
    string a = 4;
  }
}
"""
    docs = parse_proto_comments(source, "demo")
    widget = docs["demo.Widget"]
    assert widget.text == "A widget: what it is."
    assert widget.fields == {
        "count": "How many.",
        "mode": "fast or slow",
        "tags": "",
        "a": "Pick one.",
    }
    assert docs["demo.Widget.Inner"].text == "the inner part"
    assert docs["demo.Widget.Inner"].fields == {"on": ""}
