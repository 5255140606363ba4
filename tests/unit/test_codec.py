"""The strict YAML/JSON codec: decoding, error paths and lines, output form, round trips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apimachinery import codec, errors
from protos import apps_pb2, coordination_pb2, core_pb2

REPO = Path(__file__).resolve().parents[2]

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:latest
"""


def decode_one(text: str) -> Any:
    objs = codec.decode_documents(text, "t.yaml")
    assert len(objs) == 1
    return objs[0]


def decode_error(text: str, source: str = "web.yaml") -> codec.DecodeError:
    with pytest.raises(codec.DecodeError) as exc:
        codec.decode_documents(text, source)
    return exc.value


# ---------------------------------------------------------------- the seed manifest


def test_seed_manifest_decodes_to_deployment_and_service() -> None:
    text = (REPO / "examples" / "web-app.yaml").read_text()
    deploy, svc = codec.decode_documents(text, "web-app.yaml")
    assert isinstance(deploy, apps_pb2.Deployment)
    assert deploy.metadata.name == "web-app"
    assert deploy.spec.HasField("replicas") and deploy.spec.replicas == 2
    assert dict(deploy.spec.selector.match_labels) == {"app": "web-app"}
    assert dict(deploy.spec.template.metadata.labels) == {"app": "web-app"}
    ctr = deploy.spec.template.spec.containers[0]
    assert (ctr.name, ctr.image, ctr.ports[0].container_port) == ("web-app", "nginx:latest", 80)
    assert isinstance(svc, core_pb2.Service)
    assert svc.metadata.name == "web-app-service"
    assert dict(svc.spec.selector) == {"app": "web-app"}
    assert svc.spec.ports[0].port == 80
    assert svc.spec.ports[0].target_port.int_val == 80
    assert svc.spec.ports[0].target_port.WhichOneof("value") == "int_val"


def test_session_affinity_config_decodes_with_kubernetes_field_names() -> None:
    text = (
        "apiVersion: v1\nkind: Service\nmetadata: {name: sticky}\nspec:\n"
        "  ports: [{port: 80}]\n  sessionAffinity: ClientIP\n"
        "  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}\n"
    )
    (svc,) = codec.decode_documents(text, "sticky.yaml")
    assert isinstance(svc, core_pb2.Service)
    assert svc.spec.session_affinity_config.client_ip.timeout_seconds == 60
    assert "clientIP" in json.dumps(codec.to_dict(svc))


# ---------------------------------------------------------------- strictness and paths


def test_unknown_field_names_path_document_and_line() -> None:
    text = DEPLOYMENT.replace("image: nginx:latest", "imagee: nginx:latest")
    err = decode_error(text)
    assert isinstance(err, errors.BadRequest)
    assert 'web.yaml: document 1: unknown field "spec.template.spec.containers[0].imagee"' in str(
        err
    )
    assert err.line == 17
    assert err.document == 1
    assert "(line 17)" in str(err)


def test_unknown_top_level_spec_field() -> None:
    err = decode_error(DEPLOYMENT.replace("replicas: 2", "replicass: 2"))
    assert 'unknown field "spec.replicass"' in str(err)
    assert err.line == 6


def test_wrong_type_names_path_value_and_expected_form() -> None:
    err = decode_error(DEPLOYMENT.replace("replicas: 2", "replicas: two"))
    assert 'spec.replicas: Invalid value: "two": expected integer' in str(err)


def test_all_problems_are_reported() -> None:
    text = DEPLOYMENT.replace("replicas: 2", "replicas: two\n  foo: 1").replace(
        "image: nginx:latest", "image: 5"
    )
    err = decode_error(text)
    assert len(err.problems) == 3
    assert 'unknown field "spec.foo"' in err.problems
    assert any("containers[0].image: Invalid value: 5: expected string" in p for p in err.problems)


def test_document_number_of_later_documents() -> None:
    text = DEPLOYMENT + "---\n" + DEPLOYMENT.replace("replicas: 2", "replicas: true")
    err = decode_error(text)
    assert "web.yaml: document 2: spec.replicas: Invalid value: true: expected integer" in str(err)
    assert err.document == 2
    assert err.line == 24  # lines count from the start of the file


def test_label_values_must_be_strings() -> None:
    text = DEPLOYMENT.replace("app: web\n    spec:", "app: web\n        version: 1\n    spec:")
    err = decode_error(text)
    assert "spec.template.metadata.labels[version]: Invalid value: 1: expected string" in str(err)
    assert 'quote the value in YAML ("1")' in str(err)


def test_bool_fields_need_real_bools() -> None:
    text = "apiVersion: v1\nkind: Node\nmetadata: {name: n}\nspec: {unschedulable: 'yes'}\n"
    err = decode_error(text)
    assert 'spec.unschedulable: Invalid value: "yes": expected boolean (true or false)' in str(err)
    node = decode_one(text.replace("'yes'", "true"))
    assert node.spec.unschedulable is True


def test_int32_range_is_checked() -> None:
    err = decode_error(DEPLOYMENT.replace("replicas: 2", "replicas: 3000000000"))
    assert "spec.replicas: Invalid value: 3000000000: expected a 32-bit integer" in str(err)


def test_integral_floats_are_integers_but_fractions_are_not() -> None:
    assert decode_one(DEPLOYMENT.replace("replicas: 2", "replicas: 2.0")).spec.replicas == 2
    err = decode_error(DEPLOYMENT.replace("replicas: 2", "replicas: 2.5"))
    assert "spec.replicas: Invalid value: 2.5: expected integer" in str(err)


def test_object_and_list_shapes() -> None:
    err = decode_error("apiVersion: v1\nkind: Pod\nspec: [a]\n")
    assert 'spec: Invalid value: ["a"]: expected object' in str(err)
    err = decode_error("apiVersion: v1\nkind: Pod\nspec:\n  nodeSelector: [a]\n")
    assert 'spec.nodeSelector: Invalid value: ["a"]: expected object' in str(err)
    err = decode_error("apiVersion: v1\nkind: Pod\nspec:\n  containers: {name: web}\n")
    assert 'spec.containers: Invalid value: {"name": "web"}: expected list' in str(err)


def test_null_means_unset() -> None:
    obj = decode_one(DEPLOYMENT.replace("replicas: 2", "replicas: null\n  strategy:"))
    assert not obj.spec.HasField("replicas")
    assert not obj.spec.HasField("strategy")


def test_missing_kind_and_api_version() -> None:
    assert "apiVersion not set, kind not set" in str(decode_error("metadata: {name: x}\n"))
    assert "kind not set" in str(decode_error("apiVersion: v1\nmetadata: {name: x}\n"))


def test_unknown_kind_is_bad_request_from_the_scheme() -> None:
    err = decode_error("apiVersion: v1\nkind: Widget\n")
    assert isinstance(err, errors.BadRequest)
    assert 'no matches for kind "Widget" in version "v1"' in str(err)
    err = decode_error("apiVersion: v1\nkind: Deployment\n")
    assert 'no matches for kind "Deployment" in version "v1"' in str(err)


def test_document_must_be_an_object() -> None:
    assert "expected an object with apiVersion and kind, got a list" in str(decode_error("- a\n"))


def test_yaml_syntax_error_gives_line() -> None:
    err = decode_error("apiVersion: v1\nkind: Pod\nmetadata:\n  name: [x\n  bad: : :\n")
    assert str(err).startswith("web.yaml: error parsing YAML: line ")
    assert err.line is not None and err.line >= 4


def test_yaml_syntax_error_mapping_values() -> None:
    err = decode_error("apiVersion: v1\nkind: Pod\nmetadata: name: x\n")
    assert "line 3" in str(err)
    assert "mapping values are not allowed here" in str(err)


def test_duplicate_keys_are_rejected() -> None:
    err = decode_error("apiVersion: v1\nkind: Pod\nkind: Pod\n")
    assert 'mapping key "kind" already defined' in str(err)
    assert err.line == 3


def test_empty_documents_are_skipped_and_numbering_is_physical() -> None:
    text = "---\n# only a comment\n---\n" + DEPLOYMENT + "---\n---\napiVersion: v1\nkind: Fooo\n"
    err = decode_error(text)
    assert "document 4" in str(err)
    assert len(codec.decode_documents("---\n---\n" + DEPLOYMENT + "---\n")) == 1
    assert codec.decode_documents("") == []


def test_kind_list_is_expanded() -> None:
    items = [yaml.safe_load(DEPLOYMENT), {"apiVersion": "v1", "kind": "Namespace", "metadata": {}}]
    text = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    objs = codec.decode_documents(text)
    assert [type(o).__name__ for o in objs] == ["Deployment", "Namespace"]


def test_json_is_yaml() -> None:
    data = yaml.safe_load(DEPLOYMENT)
    assert codec.decode_documents(json.dumps(data)) == codec.decode_documents(DEPLOYMENT)


def test_from_dict_prefixes_source_when_named() -> None:
    with pytest.raises(codec.DecodeError, match=r'^x.json: unknown field "spec.nope"$'):
        codec.from_dict({"apiVersion": "v1", "kind": "Pod", "spec": {"nope": 1}}, "x.json")
    with pytest.raises(codec.DecodeError, match=r'^unknown field "spec.nope"$'):
        codec.from_dict({"apiVersion": "v1", "kind": "Pod", "spec": {"nope": 1}})


# ---------------------------------------------------------------- special types


def test_int_or_string() -> None:
    base = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}
    svc = codec.from_dict({**base, "spec": {"ports": [{"port": 80, "targetPort": "http"}]}})
    assert svc.spec.ports[0].target_port.str_val == "http"  # type: ignore[attr-defined]
    svc = codec.from_dict({**base, "spec": {"ports": [{"port": 80, "targetPort": 8080}]}})
    assert svc.spec.ports[0].target_port.int_val == 8080  # type: ignore[attr-defined]
    with pytest.raises(codec.DecodeError, match="expected integer or string"):
        codec.from_dict({**base, "spec": {"ports": [{"port": 80, "targetPort": True}]}})
    assert codec.to_dict(svc)["spec"]["ports"][0]["targetPort"] == 8080


def test_timestamps_parse_rfc3339_and_print_like_kubernetes() -> None:
    text = "apiVersion: v1\nkind: Pod\nmetadata:\n  creationTimestamp: {}\n"
    pod = decode_one(text.format("2024-05-01T12:00:00Z"))
    assert pod.metadata.creation_timestamp.seconds == 1714564800
    assert codec.to_dict(pod)["metadata"]["creationTimestamp"] == "2024-05-01T12:00:00Z"
    pod = decode_one(text.format('"2024-05-01T14:00:00+02:00"'))
    assert pod.metadata.creation_timestamp.seconds == 1714564800
    pod = decode_one(text.format("2024-05-01T12:00:00.250Z"))
    assert pod.metadata.creation_timestamp.nanos == 250_000_000
    assert codec.to_dict(pod)["metadata"]["creationTimestamp"] == "2024-05-01T12:00:00.250Z"
    err = decode_error(text.format("yesterday"))
    assert 'metadata.creationTimestamp: Invalid value: "yesterday": expected an RFC 3339' in str(
        err
    )


def test_dates_stay_strings() -> None:
    pod = decode_one("apiVersion: v1\nkind: Pod\nmetadata:\n  labels: {day: 2024-05-01}\n")
    assert pod.metadata.labels["day"] == "2024-05-01"


def test_secret_bytes_are_base64_and_string_data_is_accepted() -> None:
    text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {pw: aHVudGVyMg==}\n"
    secret = decode_one(text + "stringData: {user: admin}\n")
    assert secret.data["pw"] == b"hunter2"
    assert secret.string_data["user"] == "admin"
    assert codec.to_dict(secret)["data"] == {"pw": "aHVudGVyMg=="}
    err = decode_error(text.replace("aHVudGVyMg==", "not*base64"))
    assert 'data[pw]: Invalid value: "not*base64": expected base64-encoded bytes' in str(err)


def test_quantities_accept_numbers() -> None:
    text = DEPLOYMENT + "        resources:\n          limits: {cpu: 1, memory: 128Mi}\n"
    text += "          requests: {cpu: 0.5}\n"
    ctr = decode_one(text).spec.template.spec.containers[0]
    assert dict(ctr.resources.limits) == {"cpu": "1", "memory": "128Mi"}
    assert dict(ctr.resources.requests) == {"cpu": "0.5"}
    err = decode_error(text.replace("cpu: 0.5", "cpu: true"))
    assert "resources.requests[cpu]: Invalid value: true: expected string" in str(err)


# ---------------------------------------------------------------- output


def test_yaml_output_order_and_omitempty() -> None:
    deploy = decode_one(DEPLOYMENT)
    deploy.status.replicas = 2
    out = codec.to_yaml(deploy)
    keys = [line.split(":")[0] for line in out.splitlines() if not line.startswith(" ")]
    assert keys == ["apiVersion", "kind", "metadata", "spec", "status"]
    assert "minReadySeconds" not in out  # zero scalars are omitted
    spec_keys = list(codec.to_dict(deploy)["spec"])
    assert spec_keys == ["replicas", "selector", "template"]


def test_optional_zero_and_empty_messages_are_kept() -> None:
    deploy = decode_one(DEPLOYMENT.replace("replicas: 2", "replicas: 0"))
    assert codec.to_dict(deploy)["spec"]["replicas"] == 0
    pod = decode_one(
        "apiVersion: v1\nkind: Pod\nspec:\n  volumes:\n  - name: tmp\n    emptyDir: {}\n"
    )
    assert codec.to_dict(pod)["spec"]["volumes"] == [{"name": "tmp", "emptyDir": {}}]


def test_json_output_round_trips() -> None:
    deploy = decode_one(DEPLOYMENT)
    assert codec.decode_documents(codec.to_json(deploy)) == [deploy]
    assert json.loads(codec.to_json(deploy))["kind"] == "Deployment"


def test_multiline_strings_print_as_blocks() -> None:
    cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    cm.data["nginx.conf"] = "server {\n  listen 80;\n}\n"
    out = codec.to_yaml(cm)
    assert "nginx.conf: |" in out
    assert codec.decode_documents(out) == [cm]


# ---------------------------------------------------------------- round-trip property

_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=6)
_SECONDS = st.integers(-62135596800, 253402300799)
_INTS = {
    "int32": st.integers(-(2**31), 2**31 - 1),
    "int64": st.integers(-(2**63), 2**63 - 1),
}


def _scalar(fd: Any) -> st.SearchStrategy[Any]:
    if fd.type == fd.TYPE_BYTES:
        return st.binary(max_size=8)
    if fd.cpp_type == fd.CPPTYPE_BOOL:
        return st.booleans()
    if fd.cpp_type == fd.CPPTYPE_INT32:
        return _INTS["int32"]
    if fd.cpp_type == fd.CPPTYPE_INT64:
        return _INTS["int64"]
    return _TEXT


def _fill(msg: Message, draw: Any, depth: int) -> None:
    name = msg.DESCRIPTOR.full_name
    if name == "google.protobuf.Timestamp":
        msg.seconds = draw(_SECONDS)  # type: ignore[attr-defined]
        msg.nanos = draw(st.integers(0, 999_999_999))  # type: ignore[attr-defined]
        return
    if name == "tinykube.meta.IntOrString":
        if draw(st.booleans()):
            msg.int_val = draw(_INTS["int32"])  # type: ignore[attr-defined]
        else:
            msg.str_val = draw(_TEXT)  # type: ignore[attr-defined]
        return
    fields: Any = msg.DESCRIPTOR.fields
    for fd in fields:
        if depth > 5 or draw(st.integers(0, 3)) != 0:
            continue
        target = getattr(msg, fd.name)
        is_map = fd.message_type is not None and fd.message_type.GetOptions().map_entry
        if is_map:
            value_fd = fd.message_type.fields_by_name["value"]
            for key in draw(st.lists(_TEXT, max_size=2)):
                if value_fd.message_type is not None:
                    _fill(target[key], draw, depth + 1)
                else:
                    target[key] = draw(_scalar(value_fd))
        elif fd.is_repeated:
            for _ in range(draw(st.integers(0, 2))):
                if fd.message_type is not None:
                    _fill(target.add(), draw, depth + 1)
                else:
                    target.append(draw(_scalar(fd)))
        elif fd.message_type is not None:
            target.SetInParent()
            _fill(target, draw, depth + 1)
        else:
            setattr(msg, fd.name, draw(_scalar(fd)))


KINDS = [
    apps_pb2.Deployment,
    core_pb2.Pod,
    core_pb2.Service,
    core_pb2.Secret,
    core_pb2.Node,
    coordination_pb2.Lease,
]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip_property(kind: type[Message], data: st.DataObject) -> None:
    msg = kind()
    _fill(msg, data.draw, 0)
    info_kind = kind.DESCRIPTOR.name
    msg.kind = info_kind  # type: ignore[attr-defined]
    msg.api_version = {  # type: ignore[attr-defined]
        "Deployment": "apps/v1",
        "Lease": "coordination.k8s.io/v1",
    }.get(info_kind, "v1")
    assert codec.from_dict(codec.to_dict(msg)) == msg
    assert codec.decode_documents(codec.to_yaml(msg)) == [msg]
    assert codec.decode_documents(codec.to_json(msg)) == [msg]


def test_json_document_errors_still_name_the_line() -> None:
    text = '{\n  "apiVersion": "v1",\n  "kind": "Pod",\n  "spec": {"bogus": 1}\n}\n'
    err = decode_error(text, "pod.json")
    assert str(err) == 'pod.json: document 1: unknown field "spec.bogus" (line 4)'


def test_syntax_error_names_its_document() -> None:
    err = decode_error("---\n" + DEPLOYMENT + "---\napiVersion: v1\nkind: [Pod\n")
    assert err.document == 2
    assert str(err).startswith("web.yaml: error parsing YAML: line ")


def test_map_key_lines() -> None:
    text = DEPLOYMENT.replace("app: web\n    spec:", "app: web\n        ver: 2\n    spec:")
    err = decode_error(text)
    assert err.line == 14
    assert "spec.template.metadata.labels[ver]" in str(err)
