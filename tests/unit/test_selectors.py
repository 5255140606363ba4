"""Label and field selectors: grammar, errors, matching, canonical text, object fields."""

from __future__ import annotations

import pytest

from apimachinery import errors, fields, labels
from protos import core_pb2, meta_pb2

# ---------------------------------------------------------------- label selectors


@pytest.mark.parametrize(
    ("text", "matching", "not_matching"),
    [
        ("app=web", {"app": "web"}, {"app": "db"}),
        ("app==web", {"app": "web", "x": "y"}, {}),
        ("tier!=db", {}, {"tier": "db"}),
        ("env in (prod,staging)", {"env": "staging"}, {"env": "dev"}),
        ("env notin (dev)", {"env": "prod"}, {"env": "dev"}),
        ("env notin (dev)", {}, {"env": "dev"}),
        ("release", {"release": ""}, {}),
        ("!canary", {"app": "x"}, {"canary": "1"}),
        ("gen>3", {"gen": "4"}, {"gen": "3"}),
        ("gen<3", {"gen": "2"}, {"gen": "x"}),
        ("app=web, env in (a, b),!canary", {"app": "web", "env": "b"}, {"app": "web"}),
        ("app=", {"app": ""}, {"app": "x"}),
    ],
)
def test_label_selector_matching(
    text: str, matching: dict[str, str], not_matching: dict[str, str]
) -> None:
    sel = labels.parse(text)
    assert sel.matches(matching)
    assert not sel.matches(not_matching)


def test_canonical_text_sorted_by_key() -> None:
    sel = labels.parse("tier!=db, app=web, env in (staging,prod), !canary, release")
    assert str(sel) == "app=web,!canary,env in (prod,staging),release,tier!=db"
    assert labels.parse(str(sel)) == sel


def test_empty_and_everything() -> None:
    assert labels.parse("").empty()
    assert labels.parse("  ").matches({"a": "b"})
    assert labels.everything().empty()
    assert labels.everything().matches({})
    assert not labels.parse("a").empty()
    assert not labels.nothing().matches({})
    assert not labels.nothing().empty()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a=b c", "unable to parse requirement: found 'c', expected: ',' or 'end of string'"),
        ("a in b", "unable to parse requirement: found 'b', expected: '('"),
        ("a in (b", "unable to parse requirement: found 'end of string', expected: ',' or ')'"),
        (",a", "unable to parse requirement: found ',', expected: ! or identifier"),
        ("a b", "unable to parse requirement: found 'b', expected: '=', '!=', '==', 'in', 'notin'"),
        ("!", "unable to parse requirement: found 'end of string', expected: identifier"),
        ("a>x", "for 'Gt', 'Lt' operators, the value must be an integer"),
    ],
)
def test_label_selector_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(errors.BadRequest) as exc:
        labels.parse(text)
    assert message in str(exc.value)


def test_invalid_key_and_value_use_kubernetes_wording() -> None:
    with pytest.raises(errors.BadRequest, match="name part must consist of alphanumeric"):
        labels.parse("-bad=x")
    with pytest.raises(errors.BadRequest, match="a valid label must be an empty string"):
        labels.parse("a=-x-")
    with pytest.raises(errors.BadRequest, match="must be no more than 63 characters"):
        labels.parse("a=" + "x" * 64)
    assert labels.parse("example.com/app=x").matches({"example.com/app": "x"})


def test_from_label_selector() -> None:
    sel = meta_pb2.LabelSelector(match_labels={"app": "web"})
    sel.match_expressions.add(key="env", operator="In", values=["prod", "staging"])
    sel.match_expressions.add(key="canary", operator="DoesNotExist")
    sel.match_expressions.add(key="tier", operator="NotIn", values=["db"])
    sel.match_expressions.add(key="release", operator="Exists")
    s = labels.from_label_selector(sel)
    assert str(s) == "app=web,!canary,env in (prod,staging),release,tier notin (db)"
    assert s.matches({"app": "web", "env": "prod", "release": "1"})
    assert not s.matches({"app": "web", "env": "prod", "release": "1", "canary": "y"})
    assert not s.matches({"app": "web", "env": "prod"})
    assert labels.from_label_selector(meta_pb2.LabelSelector()).empty()


@pytest.mark.parametrize(
    ("operator", "values", "message"),
    [
        ("In", [], "for 'in', 'notin' operators, values set can't be empty"),
        ("NotIn", [], "for 'in', 'notin' operators, values set can't be empty"),
        ("Exists", ["x"], "values set must be empty for exists and does not exist"),
        ("DoesNotExist", ["x"], "values set must be empty for exists and does not exist"),
        ("Equals", ["x"], '"Equals" is not a valid label selector operator'),
    ],
)
def test_from_label_selector_errors(operator: str, values: list[str], message: str) -> None:
    sel = meta_pb2.LabelSelector()
    sel.match_expressions.add(key="k", operator=operator, values=values)
    with pytest.raises(errors.BadRequest) as exc:
        labels.from_label_selector(sel)
    assert message in str(exc.value)


def test_from_set_and_exact_match() -> None:
    sel = labels.from_set({"app": "web", "tier": "fe"})
    assert str(sel) == "app=web,tier=fe"
    assert sel.requires_exact_match("app") == "web"
    assert labels.parse("env in (a,b)").requires_exact_match("env") is None


# ---------------------------------------------------------------- field selectors


def test_field_selector_parse_and_match() -> None:
    sel = fields.parse("spec.nodeName=node1,status.phase!=Succeeded")
    assert sel.matches({"spec.nodeName": "node1", "status.phase": "Running"})
    assert not sel.matches({"spec.nodeName": "node2", "status.phase": "Running"})
    assert not sel.matches({"spec.nodeName": "node1", "status.phase": "Succeeded"})
    assert sel.requires_exact_match("spec.nodeName") == "node1"
    assert sel.requires_exact_match("status.phase") is None
    assert str(sel) == "spec.nodeName=node1,status.phase!=Succeeded"


def test_field_selector_operators_and_missing_fields() -> None:
    assert fields.parse("a==b").matches({"a": "b"})
    assert fields.parse("a!=b").matches({})
    assert fields.parse("spec.nodeName=").matches({"spec.nodeName": ""})
    assert fields.parse("spec.nodeName=").matches({})
    assert fields.parse("").empty()
    assert fields.everything().matches({"x": "y"})


def test_field_selector_escapes() -> None:
    sel = fields.parse(r"note=a\,b\=c")
    assert sel.matches({"note": "a,b=c"})
    assert fields.parse(str(sel)) == sel


@pytest.mark.parametrize("text", ["a", "=b", "a=b,c", "a=b=c"])
def test_field_selector_errors(text: str) -> None:
    with pytest.raises(errors.BadRequest, match="invalid"):
        fields.parse(text)


def test_field_selector_error_wording() -> None:
    with pytest.raises(errors.BadRequest) as exc:
        fields.parse("spec.nodeName")
    assert str(exc.value) == "invalid selector: 'spec.nodeName'; can't understand 'spec.nodeName'"


def test_object_fields_of_a_pod() -> None:
    pod = core_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.name, pod.metadata.namespace = "web-1", "default"
    pod.spec.node_name, pod.spec.scheduler_name = "node1", "default-scheduler"
    pod.status.phase, pod.status.pod_ip = "Running", "10.244.1.5"
    got = fields.object_fields(pod)
    assert got["metadata.name"] == "web-1"
    assert got["metadata.namespace"] == "default"
    assert got["spec.nodeName"] == "node1"
    assert got["spec.schedulerName"] == "default-scheduler"
    assert got["status.phase"] == "Running"
    assert got["status.podIP"] == "10.244.1.5"
    assert fields.one_term_equal("spec.nodeName", "node1").matches(got)


def test_object_fields_of_node_event_secret() -> None:
    node = core_pb2.Node()
    node.metadata.name = "n1"
    node.spec.unschedulable = True
    assert fields.object_fields(node)["spec.unschedulable"] == "true"
    ev = core_pb2.Event(reason="Scheduled", type="Normal")
    ev.involved_object.kind, ev.involved_object.name = "Pod", "web-1"
    ev.involved_object.namespace, ev.involved_object.uid = "default", "u1"
    ev.source.component = "default-scheduler"
    got = fields.object_fields(ev)
    assert got["involvedObject.kind"] == "Pod"
    assert got["involvedObject.name"] == "web-1"
    assert got["involvedObject.namespace"] == "default"
    assert got["involvedObject.uid"] == "u1"
    assert (got["reason"], got["type"], got["source"]) == (
        "Scheduled",
        "Normal",
        "default-scheduler",
    )
    secret = core_pb2.Secret(type="Opaque")
    assert fields.object_fields(secret)["type"] == "Opaque"
    assert set(fields.object_fields(core_pb2.ConfigMap())) == {
        "metadata.name",
        "metadata.namespace",
    }


def test_check_supported() -> None:
    fields.check_supported(fields.parse("spec.nodeName=x"), "Pod")
    with pytest.raises(errors.BadRequest, match=r"field label not supported: spec\.nodeName"):
        fields.check_supported(fields.parse("spec.nodeName=x"), "Service")
