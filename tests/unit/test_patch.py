"""apimachinery.patch: JSON merge patch, JSON patch and strategic merge patch, pure functions."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from apimachinery.patch import (
    PatchError,
    apply_patch,
    json_patch,
    merge_patch,
    parse_patch,
    parse_pointer,
    sets_resource_version,
    strategic_merge,
)

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web", "labels": {"app": "web", "tier": "fe"}, "finalizers": ["a"]},
    "spec": {
        "containers": [
            {
                "name": "web",
                "image": "nginx:1.24",
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                "args": ["-x"],
            },
            {"name": "log", "image": "busybox"},
        ],
        "tolerations": [{"key": "k", "operator": "Exists"}],
        "volumes": [{"name": "data", "emptyDir": {}}],
    },
}


def test_merge_patch_rfc7386_examples() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}}
    assert merge_patch(target, {"a": "z", "c": {"f": None}}) == {"a": "z", "c": {"d": "e"}}
    assert merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert merge_patch({"a": "b"}, ["c"]) == ["c"]
    assert merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}
    assert merge_patch([1, 2], {"a": "b", "c": None}) == {"a": "b"}
    assert target == {"a": "b", "c": {"d": "e", "f": "g"}}  # the input is untouched


def test_merge_patch_replaces_lists_whole() -> None:
    patch = {"spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}
    out = apply_patch(POD, patch, "merge")
    assert out["spec"]["containers"] == [{"name": "web", "image": "nginx:1.25"}]


def test_json_patch_operations_in_order() -> None:
    doc = {"a": {"b": [1, 2, 3]}, "c": "x", "k/e~y": 1}
    ops = [
        {"op": "add", "path": "/a/b/1", "value": 9},
        {"op": "add", "path": "/a/b/-", "value": 4},
        {"op": "remove", "path": "/a/b/0"},
        {"op": "replace", "path": "/c", "value": {"deep": True}},
        {"op": "copy", "from": "/c", "path": "/d"},
        {"op": "move", "from": "/k~1e~0y", "path": "/moved"},
        {"op": "test", "path": "/c/deep", "value": True},
    ]
    assert json_patch(doc, ops) == {
        "a": {"b": [9, 2, 3, 4]},
        "c": {"deep": True},
        "d": {"deep": True},
        "moved": 1,
    }
    assert parse_pointer("/a~1b/~0c") == ["a/b", "~c"]


@pytest.mark.parametrize(
    ("ops", "words"),
    [
        ([{"op": "remove", "path": "/nope"}], 'doc is missing path: "/nope"'),
        ([{"op": "replace", "path": "/a/x", "value": 1}], 'missing path: "/a/x"'),
        ([{"op": "add", "path": "/a/b/7", "value": 1}], "index 7 is out of range"),
        ([{"op": "test", "path": "/c", "value": 1}], 'testing value "/c" failed'),
        ([{"op": "test", "path": "/t", "value": 1}], 'testing value "/t" failed'),
        ([{"op": "frob", "path": "/c"}], 'unsupported op "frob"'),
        ([{"op": "add", "value": 1}], 'missing "path"'),
        ([{"op": "add", "path": "c", "value": 1}], 'must start with "/"'),
        ([{"op": "add", "path": "/c"}], 'missing "value"'),
        ([{"op": "move", "from": "/a", "path": "/a/b/0"}], "into itself"),
        ({"op": "add"}, "must be a list of operations"),
    ],
)
def test_json_patch_errors_name_the_path(ops: Any, words: str) -> None:
    doc = {"a": {"b": [1]}, "c": "x", "t": True}
    before = copy.deepcopy(doc)
    with pytest.raises(PatchError, match=words.replace("(", r"\(").replace("[", r"\[")):
        json_patch(doc, ops)
    assert doc == before


def test_strategic_merges_lists_by_their_merge_keys() -> None:
    patch = {
        "metadata": {"labels": {"tier": None}, "finalizers": ["b"]},
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "nginx:1.25",
                    "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
                    "ports": [{"containerPort": 443}],
                    "volumeMounts": [{"mountPath": "/data", "readOnly": True}],
                    "args": ["-y"],
                }
            ],
            "tolerations": [{"key": "other", "operator": "Exists"}],
        },
    }
    out = strategic_merge(POD, patch)
    web, log = out["spec"]["containers"]
    assert web["image"] == "nginx:1.25" and log == {"name": "log", "image": "busybox"}
    assert web["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "3"},
        {"name": "C", "value": "4"},
    ]
    assert [p["containerPort"] for p in web["ports"]] == [80, 443]
    assert web["volumeMounts"] == [{"name": "data", "mountPath": "/data", "readOnly": True}]
    assert web["args"] == ["-y"]  # no merge key: replaced
    assert out["spec"]["tolerations"] == [{"key": "other", "operator": "Exists"}]
    assert out["metadata"]["labels"] == {"app": "web"}
    assert out["metadata"]["finalizers"] == ["a", "b"]
    assert POD["spec"]["containers"][0]["image"] == "nginx:1.24"


def test_strategic_directives() -> None:
    delete = {"spec": {"containers": [{"name": "log", "$patch": "delete"}]}}
    assert [c["name"] for c in strategic_merge(POD, delete)["spec"]["containers"]] == ["web"]
    replace_list = {"spec": {"volumes": [{"$patch": "replace"}, {"name": "x", "emptyDir": {}}]}}
    assert strategic_merge(POD, replace_list)["spec"]["volumes"] == [{"name": "x", "emptyDir": {}}]
    replace_map = {"metadata": {"labels": {"$patch": "replace", "only": "this"}}}
    assert strategic_merge(POD, replace_map)["metadata"]["labels"] == {"only": "this"}
    drop_map = {"spec": {"volumes": [{"name": "data", "emptyDir": {"$patch": "delete"}}]}}
    assert strategic_merge(POD, drop_map)["spec"]["volumes"] == [{"name": "data"}]
    retain = {"metadata": {"$retainKeys": ["name"], "name": "web"}}
    assert strategic_merge(POD, retain)["metadata"] == {"name": "web"}
    unfinalize = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}
    assert "finalizers" not in strategic_merge(POD, unfinalize)["metadata"]
    order = {"spec": {"$setElementOrder/containers": [{"name": "log"}, {"name": "web"}]}}
    assert [c["name"] for c in strategic_merge(POD, order)["spec"]["containers"]] == [
        "log",
        "web",
    ]


def test_service_ports_merge_by_port() -> None:
    svc = {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}
    out = strategic_merge(svc, {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}})
    assert out["spec"]["ports"] == [{"port": 80, "targetPort": 9090}, {"port": 443}]


@pytest.mark.parametrize(
    ("patch", "words"),
    [
        ({"spec": {"containers": [{"image": "x"}]}}, "does not contain declared merge key: name"),
        ({"spec": {"containers": ["web"]}}, "is not an object"),
        ({"metadata": {"$patch": "frob"}}, 'unknown patch type: "frob"'),
        ({"$patch": "delete"}, "would delete the object"),
    ],
)
def test_strategic_errors(patch: dict[str, Any], words: str) -> None:
    with pytest.raises(PatchError, match=words):
        apply_patch(POD, patch, "strategic")


def test_parse_patch_and_type_checks() -> None:
    assert parse_patch('{"spec": {"replicas": 3}}') == {"spec": {"replicas": 3}}
    assert parse_patch("spec:\n  replicas: 3\n") == {"spec": {"replicas": 3}}
    with pytest.raises(PatchError, match=r'unable to parse "\{bad"'):
        parse_patch("{bad")
    with pytest.raises(PatchError, match="empty patch"):
        parse_patch("  ")
    with pytest.raises(
        PatchError, match=r"--type must be one of \[json merge strategic\], not \"yaml\""
    ):
        apply_patch(POD, {}, "yaml")
    with pytest.raises(PatchError, match="must be a JSON object, not a list"):
        apply_patch(POD, [1], "merge")
    with pytest.raises(PatchError, match="must be a JSON object"):
        apply_patch(POD, [{"op": "replace", "path": "", "value": 3}], "json")


def test_sets_resource_version() -> None:
    assert sets_resource_version({"metadata": {"resourceVersion": "7"}}, "merge")
    assert not sets_resource_version({"spec": {}}, "strategic")
    ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": "7"}]
    assert sets_resource_version(ops, "json")
    assert not sets_resource_version([{"op": "add", "path": "/spec"}], "json")
