"""apimachinery.jsonpath: kubectl's template language, its output and its error messages."""

from __future__ import annotations

from typing import Any

import pytest

from apimachinery.jsonpath import (
    ExecutionError,
    JSONPath,
    ParseError,
    go_float,
    go_format,
    relaxed,
)

POD_LIST: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "List",
    "items": [
        {
            "metadata": {"name": "web-1", "labels": {"app.kubernetes.io/name": "web"}},
            "spec": {"containers": [{"name": "nginx", "ports": [{"containerPort": 80}]}]},
            "status": {
                "phase": "Running",
                "conditions": [
                    {"type": "Initialized", "status": "True"},
                    {"type": "Ready", "status": "True"},
                ],
                "restarts": 2,
            },
        },
        {
            "metadata": {"name": "web-2"},
            "spec": {"containers": [{"name": "nginx"}, {"name": "sidecar"}]},
            "status": {
                "phase": "Pending",
                "conditions": [{"type": "Ready", "status": "False"}],
                "restarts": 0,
            },
        },
    ],
}


def run(template: str, data: Any = POD_LIST, **kwargs: Any) -> str:
    return JSONPath(template, **kwargs).execute(data)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{.kind}", "List"),
        ("{$.kind}", "List"),
        ("{.items[*].metadata.name}", "web-1 web-2"),
        ("{.items[0].metadata.name}", "web-1"),
        ("{.items[-1].metadata.name}", "web-2"),
        ("{.items[-1:].metadata.name}", "web-2"),
        ("{.items[0:2:1].metadata.name}", "web-1 web-2"),
        ("{.items[::2].metadata.name}", "web-1"),
        ("{.items[*].spec.containers[*].name}", "nginx nginx sidecar"),
        ('{.items[?(@.status.phase=="Running")].metadata.name}', "web-1"),
        ("{.items[?(@.status.phase!='Running')].metadata.name}", "web-2"),
        ("{.items[?(@.status.restarts > 1)].metadata.name}", "web-1"),
        ("{.items[?(@.status.restarts<=0)].metadata.name}", "web-2"),
        ("{.items[?(@.metadata.labels)].metadata.name}", "web-1"),
        (
            '{.items[0].status.conditions[?(@.type=="Ready")].status}',
            "True",
        ),
        ("{.items[0].metadata.labels.app\\.kubernetes\\.io/name}", "web"),
        ("{.items[0].spec.containers[0].ports[0].containerPort}", "80"),
        ("{..containerPort}", "80"),
        ("{.items[*]['metadata.name', 'status.phase']}", "web-1 web-2 Running Pending"),
        ("{.items[0].metadata.labels}", '{"app.kubernetes.io/name":"web"}'),
        ("{.items[1].spec.containers[*]}", '{"name":"nginx"} {"name":"sidecar"}'),
        ("name: {.items[0].metadata.name}!", "name: web-1!"),
        ('{"\\n"}{"\\t"}{\'x\'}', "\n\tx"),
        ("{.items[*].nope}", ""),
        ("{.items[5:5]}", ""),
        ("plain .items text", "plain .items text"),
    ],
)
def test_templates(template: str, expected: str) -> None:
    assert run(template) == expected


def test_range_end_and_nested_range() -> None:
    template = (
        "{range .items[*]}{.metadata.name}:{range .spec.containers[*]} {.name}{end}{'\\n'}{end}"
    )
    assert run(template) == "web-1: nginx\nweb-2: nginx sidecar\n"
    assert run("{range .items[*]}[{.metadata.name}]{end}done") == "[web-1][web-2]done"
    assert run("{range .nope[*]}x{end}after") == "after"


def test_recursive_descent_visits_every_level() -> None:
    data = {"a": {"name": "x", "b": [{"name": "y"}, {"c": {"name": "z"}}]}}
    assert run("{..name}", data) == "x y z"


def test_output_as_json() -> None:
    text = run("{.items[*].metadata.name}", output_json=True)
    assert text == '[\n    "web-1",\n    "web-2"\n]\n'


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{.items", "unclosed action"),
        ("{.items[0}", "unterminated array"),
        ('{"abc}', "unterminated quoted string"),
        ("{.items[?(@.a}", "unterminated filter"),
        ("{.items[?(@.a)}", "unclosed array expect ]"),
        ("{.items[x]}", "invalid array index x"),
        ("{.items[1:x]}", "invalid array index 1:x"),
        ("{.items[-]}", "array index - is not a number"),
        ("{!}", "unrecognized character in action: U+0021 '!'"),
        ("{....a}", "invalid multiple recursive descent"),
        ("{1.2.3}", "cannot parse number 1.2.3"),
        ('{"\\q"}', 'unquote string "\\q" error invalid syntax'),
    ],
)
def test_parse_errors_in_client_go_words(template: str, message: str) -> None:
    with pytest.raises(ParseError) as err:
        JSONPath(template)
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{.items[2]}", "array index out of bounds: index 2, length 2"),
        ("{.items[-3]}", "array index out of bounds: index -1, length 2"),
        ("{.items[1:0]}", "starting index 1 is greater than ending index 0"),
        ("{.items[::0]}", "step must be > 0"),
        ("{.kind[0]}", "string is not array or slice"),
        ("{.items[0].metadata[0]}", "map[string]interface {} is not array or slice"),
        ("{.kind[?(@.a)]}", "List is not array or slice and cannot be filtered"),
        ("{.items[?(@.status.restarts=='2')]}", "incompatible types for comparison"),
        ("{.items[?(@.status>1)]}", "invalid type for comparison"),
        ("{.items[?(@.spec.containers[*].name=='x')]}", "can only compare one element at a time"),
        ("{end}", "not in range, nothing to end"),
        ("{bogus}", "unrecognized identifier bogus"),
    ],
)
def test_execution_errors_in_client_go_words(template: str, message: str) -> None:
    with pytest.raises(ExecutionError) as err:
        run(template)
    assert str(err.value) == message


def test_missing_keys_allowed_or_not() -> None:
    assert run("{.items[0].nope}") == ""
    with pytest.raises(ExecutionError, match=r"^nope is not found$"):
        run("{.items[0].nope}", allow_missing_keys=False)


def test_values_print_as_go_prints_them() -> None:
    data = {"f": 1e6, "g": 1.5, "t": True, "n": None, "html": {"a": "<b>&"}}
    assert run("{.f} {.g} {.t} {.n}", data) == "1e+06 1.5 true <nil>"
    assert run("{.html}", data) == '{"a":"\\u003cb\\u003e\\u0026"}'
    assert [go_float(v) for v in (123456.0, 1234567.0, 0.0001, 0.00001, -2.5)] == [
        "123456",
        "1.234567e+06",
        "0.0001",
        "1e-05",
        "-2.5",
    ]
    assert go_format({"b": [1, "x"], "a": {"c": None}}) == "map[a:map[c:<nil>] b:[1 x]]"


@pytest.mark.parametrize(
    "written", ["metadata.name", ".metadata.name", "{metadata.name}", "{.metadata.name}"]
)
def test_relaxed_paths(written: str) -> None:
    assert relaxed(written) == "{.metadata.name}"


def test_relaxed_refuses_nested_braces() -> None:
    with pytest.raises(ParseError, match="unexpected path string"):
        relaxed("{.a}{.b}")
