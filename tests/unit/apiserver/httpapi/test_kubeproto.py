"""Protobuf bodies (kubeproto.py): what client-go's typed clients send, read as the JSON it means.

The bodies are written byte by byte in kubepb.py with Kubernetes' field
numbers, zero-valued non-pointer fields included as Go writes them. Read
directly (to_data), and sent to a real API server, which stores what JSON
would have stored and refuses what strict JSON decoding refuses.
"""

from __future__ import annotations

from typing import Any

import pytest

from apimachinery import errors, scheme
from apiserver.httpapi import kubeproto
from apiserver.httpapi.kubeproto_schema import MESSAGES, FieldSpec
from apiserver.httpapi.status import UnsupportedMediaType
from tests.unit.apiserver.httpapi import kubepb
from tests.unit.apiserver.httpapi.client import CONFIGMAPS, DEPLOYMENTS, HTTPS
from tests.unit.apiserver.httpapi.kubepb import (
    boolean,
    entry,
    envelope,
    integer,
    message,
    object_meta,
    string,
)


def _deployment_body(**kwargs: Any) -> bytes:
    return envelope("apps/v1", "Deployment", kubepb.deployment("web", **kwargs))


def test_a_deployment_reads_as_the_json_kubectl_would_send() -> None:
    data = kubeproto.to_data(_deployment_body())
    assert data == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:latest"}]},
            },
        },
    }


def test_a_zero_in_a_pointer_field_is_a_value() -> None:
    """`--replicas 0` is a *int32 holding 0: kept, where a non-pointer zero is dropped."""
    zero = kubeproto.to_data(_deployment_body(replicas=0))
    assert zero["spec"]["replicas"] == 0
    unset = kubeproto.to_data(_deployment_body(replicas=None))
    assert "replicas" not in unset["spec"]
    negative = kubeproto.to_data(_deployment_body(replicas=-3))
    assert negative["spec"]["replicas"] == -3  # Go's 10-byte two's complement varint


def test_maps_bytes_quantities_int_or_strings_and_times() -> None:
    secret = message(1, string(1, "s")) + entry(2, "key", b"\x00\xff") + string(3, "Opaque")
    assert kubeproto.to_data(envelope("v1", "Secret", secret))["data"] == {"key": "AP8="}
    limits = message(1, string(1, "cpu"), message(2, string(1, "500m")))  # {cpu: Quantity}
    port = message(4, integer(1, 1), string(3, "http"))  # IntOrString{type: String}
    service = object_meta(1, "svc") + message(
        2, message(1, string(1, "web"), integer(3, 80), port, integer(5, 0))
    )
    svc = kubeproto.to_data(envelope("v1", "Service", service))
    assert svc["spec"]["ports"] == [{"name": "web", "port": 80, "targetPort": "http"}]
    ctr = kubepb.container(2, "c", "busybox", resources=limits)
    pod = object_meta(1, "p") + kubepb.pod_spec(2, ctr)
    got = kubeproto.to_data(envelope("v1", "Pod", pod))
    assert got["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "500m"}}
    stamped = message(1, string(1, "n"), message(9, integer(1, 1_700_000_000), integer(2, 5000)))
    meta = kubeproto.to_data(envelope("v1", "Namespace", stamped))["metadata"]
    assert meta == {"name": "n", "deletionTimestamp": "2023-11-14T22:13:20.000005Z"}


def test_unknown_field_numbers_are_dropped_only_when_empty() -> None:
    empty = _deployment_body(
        spec_extra=(string(99, ""), integer(98, 0), message(97, string(1, "")))
    )
    assert "replicas" in kubeproto.to_data(empty)["spec"]
    with pytest.raises(errors.BadRequest) as err:
        kubeproto.to_data(_deployment_body(spec_extra=(string(99, "x"), integer(98, 7))))
    assert err.value.message == (
        'strict decoding error: unknown field number 99 in "spec", '
        'unknown field number 98 in "spec"'
    )


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"k8s", UnsupportedMediaType, "no k8s protobuf magic"),
        (b"k8s\x00garbage", UnsupportedMediaType, "could not be read"),
        (b"k8s\x00\x0a\x05\x0a", UnsupportedMediaType, "truncated"),
        (envelope("batch/v1", "Job", b""), errors.BadRequest, 'no kind "Job" is registered'),
        (envelope("v1", "", b""), errors.BadRequest, "names no kind"),
        (envelope("v1", "ConfigMap", b"\x0a\x05ab"), errors.BadRequest, "truncated field"),
        (envelope("v1", "ConfigMap", integer(1, 5)), errors.BadRequest, "metadata: wire type 0"),
        (envelope("v1", "ConfigMap", message(1, string(1, b"\xff"))), errors.BadRequest, "UTF-8"),
        (envelope("v1", "ConfigMap", b"\x0b"), errors.BadRequest, "wire type 3"),
    ],
)
def test_broken_bodies(body: bytes, status: type[errors.StatusError], words: str) -> None:
    with pytest.raises(status) as err:
        kubeproto.to_data(body)
    assert words in err.value.message


def test_deep_nesting_is_refused_without_exhausting_the_stack() -> None:
    nested = b""
    for _ in range(5000):
        nested = message(1, nested)
    with pytest.raises(errors.BadRequest):
        # an unknown field whose payload nests 5000 deep: not empty, so refused by number
        kubeproto.to_data(_deployment_body(spec_extra=(message(96, nested, string(2, "x")),)))
    # PodSpec.os, a message tinykube does not model, nested as deep: not empty, so kept for
    # strict decoding to refuse by name
    data = kubeproto.to_data(_deployment_body(pod_extra=(message(36, nested, string(2, "x")),)))
    assert data["spec"]["template"]["spec"]["os"] == {}


SPECIAL = {"google.protobuf.Timestamp": "time", "tinykube.meta.IntOrString": "ios"}
# our scalar types (FieldDescriptor.TYPE_*) and the table's types that may carry them
SCALARS = {9: ("s", "qty"), 5: ("i",), 3: ("i",), 13: ("i",), 8: ("b",), 12: ("y",)}


def _flat(name: str) -> dict[str, FieldSpec]:
    out: dict[str, FieldSpec] = {}
    for spec in MESSAGES[name].values():
        out.update(_flat(spec.type) if spec.inline else {spec.name: spec})
    return out


def _disagreements(name: str, desc: Any, top: bool, seen: set[tuple[str, str]]) -> list[str]:
    """Every field of our message `desc` that Kubernetes' `name` in the table does not open."""
    if (name, desc.full_name) in seen:
        return []
    seen.add((name, desc.full_name))
    specs, out = _flat(name), []
    for fd in desc.fields:
        if top and fd.json_name in ("apiVersion", "kind"):
            continue
        spec, where = specs.get(fd.json_name), f"{desc.full_name}.{fd.name}"
        if spec is None:
            out.append(f"{where}: not in Kubernetes' {name}")
            continue
        is_map = fd.message_type is not None and fd.message_type.GetOptions().map_entry
        target = fd.message_type.fields_by_name["value"] if is_map else fd
        shape = "{}" if is_map else ("[]" if fd.is_repeated else "")
        if shape != spec.shape:
            out.append(f"{where}: {shape!r} here, {spec.shape!r} in Kubernetes")
        if target.message_type is None:
            if spec.type not in SCALARS.get(target.type, ()):
                out.append(f"{where}: protobuf type {target.type} here, {spec.type} there")
        elif target.message_type.full_name in SPECIAL:
            if spec.type != SPECIAL[target.message_type.full_name]:
                out.append(f"{where}: {target.message_type.full_name} here, {spec.type} there")
        elif spec.type not in MESSAGES:
            out.append(f"{where}: modelled here, not opened in the table")
        else:
            out.extend(_disagreements(spec.type, target.message_type, False, seen))
    return out


def test_the_table_opens_every_field_our_protos_model() -> None:
    """A field our protos model but the table leaves opaque would be refused as unknown;
    one the table lacks would vanish. Neither may happen for any served kind."""
    seen: set[tuple[str, str]] = set()
    problems = [
        p
        for info in scheme.KINDS
        for p in _disagreements(info.kind, info.message.DESCRIPTOR, True, seen)
    ]
    assert problems == []


async def test_kubectl_create_bodies_are_stored(admin: HTTPS) -> None:
    proto = kubepb.PROTOBUF
    made = await admin.call("POST", DEPLOYMENTS, raw=_deployment_body(), content_type=proto)
    assert made.status == 201, made.data
    assert made.data["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:latest"
    assert made.data["spec"]["replicas"] == 1
    cm = envelope("v1", "ConfigMap", object_meta(1, "x") + entry(2, "a", "b"))
    assert (await admin.call("POST", CONFIGMAPS, raw=cm, content_type=proto)).status == 201
    assert (await admin.call("GET", f"{CONFIGMAPS}/x")).data["data"] == {"a": "b"}
    ns = envelope("v1", "Namespace", object_meta(1, "team") + message(2) + message(3))
    assert (
        await admin.call("POST", "/api/v1/namespaces", raw=ns, content_type=proto)
    ).status == 201
    target = message(4, integer(1, 0), integer(2, 8080))  # IntOrString{type: Int, intVal}
    port = message(1, string(1, "80-8080"), string(2, "TCP"), integer(3, 80), target)
    spec = message(
        2,
        port,
        entry(2, "app", "svc1"),
        string(3, ""),
        string(4, "ClusterIP"),
    )
    svc = envelope("v1", "Service", object_meta(1, "svc1", app="svc1") + spec + message(3))
    services = "/api/v1/namespaces/default/services"
    made = await admin.call("POST", services, raw=svc, content_type=proto)
    assert made.status == 201, made.data
    assert made.data["spec"]["ports"][0]["targetPort"] == 8080


async def test_unmodelled_fields_with_values_are_refused_by_name(admin: HTTPS) -> None:
    proto = kubepb.PROTOBUF
    host_users = boolean(37, False)  # PodSpec.hostUsers, a *bool: false is a value
    # volumes[0]: Volume{name, VolumeSource{nfs}}, the source embedded (inline in JSON)
    nfs = message(1, string(1, "data"), message(2, message(7, string(1, "server"))))
    body = _deployment_body(pod_extra=(nfs, host_users))
    answer = await admin.call("POST", DEPLOYMENTS, raw=body, content_type=proto)
    assert (answer.status, answer.data["reason"]) == (400, "BadRequest")
    assert answer.data["message"] == (
        'strict decoding error: unknown field "spec.template.spec.volumes[0].nfs"; '
        'unknown field "spec.template.spec.hostUsers"'
    )
    newer = message(1, string(1, "data"), message(2, string(120, "from a newer release")))
    answer = await admin.call(
        "POST", DEPLOYMENTS, raw=_deployment_body(pod_extra=(newer,)), content_type=proto
    )
    assert answer.status == 400
    assert answer.data["message"] == (
        'strict decoding error: unknown field number 120 in "spec.template.spec.volumes[0]"'
    )
    assert (await admin.call("GET", DEPLOYMENTS)).data["items"] == []


async def test_options_reviews_and_scale_in_protobuf(admin: HTTPS) -> None:
    proto = kubepb.PROTOBUF
    made = await admin.call("POST", DEPLOYMENTS, raw=_deployment_body(), content_type=proto)
    assert made.status == 201
    scale = envelope("autoscaling/v1", "Scale", object_meta(1, "web") + message(2, integer(1, 3)))
    scaled = await admin.call("PUT", f"{DEPLOYMENTS}/web/scale", raw=scale, content_type=proto)
    assert (scaled.status, scaled.data["spec"]["replicas"]) == (200, 3)
    attrs = message(1, string(1, "default"), string(2, "delete"), string(5, "pods"))
    review = envelope(
        "authorization.k8s.io/v1", "SelfSubjectAccessReview", object_meta(1, "") + message(2, attrs)
    )
    reviews = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    answer = await admin.call("POST", reviews, raw=review, content_type=proto)
    assert answer.data["status"]["allowed"] is True
    options = envelope("v1", "DeleteOptions", integer(1, 0) + string(4, "Background"))
    gone = await admin.call("DELETE", f"{DEPLOYMENTS}/web", raw=options, content_type=proto)
    assert gone.status == 200, gone.data
