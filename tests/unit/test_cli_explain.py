"""`tinykube explain`: kinds and field paths from the descriptors, text from protos/*.proto."""

from __future__ import annotations

from typing import Any

import pytest

from apimachinery import scheme
from apimachinery.protodocs import message_doc, parse_proto_comments
from cli.cmd_explain import EMPTY
from protos import apps_pb2, certificates_pb2, coordination_pb2, core_pb2, meta_pb2, rbac_pb2
from tests.unit.cli_apiserver import ApiServerProcess, no_traceback
from tests.unit.cli_apiserver import apiserver as apiserver  # the module's server

pytestmark = pytest.mark.timeout(60)

# The .proto files of the kinds the API serves: every message and field in them is described.
DOCUMENTED_FILES = (apps_pb2, certificates_pb2, coordination_pb2, core_pb2, meta_pb2, rbac_pb2)


def description(stdout: str) -> str:
    """The DESCRIPTION block of `explain` output, its wrapped lines joined again."""
    block = stdout.split("DESCRIPTION:\n", 1)[1].split("\n\n", 1)[0]
    return " ".join(line.strip() for line in block.splitlines())


def field_text(stdout: str, json_name: str, type_name: str) -> str:
    """The description printed under one entry of FIELDS, joined again."""
    block = stdout.split(f"\n  {json_name}\t<{type_name}>\n", 1)[1].split("\n\n", 1)[0]
    return " ".join(line.strip() for line in block.splitlines())


def _messages(descriptor: Any, seen: dict[str, Any]) -> None:
    """`descriptor` and every tinykube message its fields lead to (map entries left out)."""
    if descriptor.full_name in seen or not descriptor.full_name.startswith("tinykube."):
        return
    if descriptor.GetOptions().map_entry:  # a map's value may be a message
        value = descriptor.fields_by_name["value"].message_type
        if value is not None:
            _messages(value, seen)
        return
    seen[descriptor.full_name] = descriptor
    for fd in descriptor.fields:
        if fd.message_type is not None:
            _messages(fd.message_type, seen)
    for nested in descriptor.nested_types:
        _messages(nested, seen)


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
    effect = field_text(result.stdout, "effect", "string")
    assert effect.startswith("NoSchedule, PreferNoSchedule, NoExecute (")
    assert effect == message_doc(core_pb2.Taint.DESCRIPTOR).fields["effect"]
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


def test_every_message_and_field_of_the_served_kinds_is_described() -> None:
    """What explain (and the OpenAPI documents) can say comes from the .proto comments:
    every message reachable from a kind, and every message of the kinds' files, has one,
    and so does each of its fields."""
    seen: dict[str, Any] = {}
    for info in scheme.KINDS:
        _messages(info.message.DESCRIPTOR, seen)
    reached = set(seen)
    for module in DOCUMENTED_FILES:
        for descriptor in module.DESCRIPTOR.message_types_by_name.values():
            _messages(descriptor, seen)
    assert reached >= {"tinykube.core.Pod", "tinykube.apps.Deployment", "tinykube.meta.ObjectMeta"}
    missing = []
    for name, descriptor in sorted(seen.items()):
        doc = message_doc(descriptor)
        if not doc.text:
            missing.append(name)
        missing.extend(
            f"{name}.{fd.name}" for fd in descriptor.fields if not doc.fields.get(fd.name)
        )
    assert not missing, "no description (a // comment in the .proto) for: " + ", ".join(missing)


def test_explain_prints_the_proto_descriptions(apiserver: ApiServerProcess) -> None:
    replicas = apiserver.tk("explain", "deployment.spec.replicas")
    assert replicas.exit_code == 0, replicas.output
    expected = message_doc(apps_pb2.DeploymentSpec.DESCRIPTOR).fields["replicas"]
    assert expected.startswith("How many pods of the template should run. Unset means 1")
    assert description(replicas.stdout) == expected
    ports = apiserver.tk("explain", "pods.spec.containers.ports")
    assert ports.exit_code == 0, ports.output
    assert "FIELD: ports <[]ContainerPort>" in ports.stdout
    assert description(ports.stdout) == message_doc(core_pb2.Container.DESCRIPTOR).fields["ports"]
    port_docs = message_doc(core_pb2.ContainerPort.DESCRIPTOR).fields
    for json_name, type_name, name in (
        ("containerPort", "integer", "container_port"),
        ("protocol", "string", "protocol"),
        ("hostIP", "string", "host_ip"),
    ):
        assert field_text(ports.stdout, json_name, type_name) == port_docs[name]
    assert "TCP (the default), UDP or SCTP." in ports.stdout
    assert EMPTY not in ports.stdout and EMPTY not in replicas.stdout


def test_openapi_carries_the_same_text_as_explain() -> None:
    """Real `kubectl explain` reads /openapi/v3: fields with a json_name and messages too."""
    import json

    from apiserver.httpapi import openapi

    doc = json.loads(openapi.serve("/openapi/v3/api/v1").body)
    schemas = doc["components"]["schemas"]
    spec = schemas["io.k8s.api.core.v1.ServiceSpec"]
    cluster_ip = core_pb2.ServiceSpec.DESCRIPTOR.fields_by_name["cluster_ip"]
    assert cluster_ip.json_name == "clusterIP"
    assert (
        spec["properties"]["clusterIP"]["description"]
        == message_doc(core_pb2.ServiceSpec.DESCRIPTOR).fields["cluster_ip"]
    )
    assert (
        schemas["io.k8s.api.core.v1.Pod"]["description"]
        == message_doc(core_pb2.Pod.DESCRIPTOR).text
    )
    assert spec["properties"]["clusterIP"]["description"]
