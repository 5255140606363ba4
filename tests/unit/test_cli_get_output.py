"""`tinykube get` output forms against a real API server: jsonpath, custom columns,
--sort-by, --show-labels, -L, empty Lists, and the errors kubectl gives for bad templates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.cli_node import ClusterProcess

pytestmark = pytest.mark.timeout(60)

CONFIGMAPS = """apiVersion: v1
kind: ConfigMap
metadata: {name: web-10, labels: {app: web, tier: front}}
data: {a: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-2, labels: {app.kubernetes.io/name: x}}
data: {a: "1", b: "2"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: db, labels: {app: db}}
data: {c: "3", d: "4", e: "5"}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    c = ClusterProcess(tmp_path_factory.mktemp("get"))
    try:
        c.apply(CONFIGMAPS)
        yield c
    finally:
        c.stop()


def test_jsonpath_items_range_filter_and_literals(cluster: ClusterProcess) -> None:
    names = cluster.tk("get", "cm", "-o", "jsonpath={.items[*].metadata.name}")
    assert (names.exit_code, names.stdout) == (0, "db web-10 web-2")
    loop = "{range .items[*]}{.metadata.name}{'\\t'}{.metadata.labels.app}{\"\\n\"}{end}"
    ranged = cluster.tk("get", "cm", "-o", f"jsonpath={loop}")
    assert ranged.stdout == "db\tdb\nweb-10\tweb\nweb-2\t\n"
    last = cluster.tk("get", "cm", "-o", "jsonpath={.items[-1:].metadata.name}")
    assert last.stdout == "web-2"
    first = cluster.tk("get", "cm", "-o", "jsonpath={.items[0].data}")
    assert first.stdout == '{"c":"3","d":"4","e":"5"}'
    filtered = cluster.tk(
        "get", "cm", "-o", 'jsonpath={.items[?(@.metadata.labels.app=="web")].metadata.name}'
    )
    assert filtered.stdout == "web-10"
    deep = cluster.tk("get", "cm", "web-2", "-o", "jsonpath={..name}")
    assert deep.stdout == "web-2"
    one = cluster.tk("get", "cm", "db", "-o", "jsonpath=kind={.kind} {.metadata.name}")
    assert one.stdout == "kind=ConfigMap db"
    as_json = cluster.tk("get", "cm", "-o", "jsonpath-as-json={.items[*].metadata.name}")
    assert json.loads(as_json.stdout) == ["db", "web-10", "web-2"]


def test_jsonpath_file_and_missing_keys(cluster: ClusterProcess, tmp_path: Path) -> None:
    template = tmp_path / "names.jsonpath"
    template.write_text('{range .items[*]}{.metadata.name}{"\\n"}{end}')
    got = cluster.tk("get", "cm", "-o", f"jsonpath-file={template}")
    assert got.stdout == "db\nweb-10\nweb-2\n"
    missing = cluster.tk("get", "cm", "-o", "jsonpath={.items[*].spec.nope}")
    assert (missing.exit_code, missing.stdout) == (0, "")
    strict = cluster.tk(
        "get",
        "cm",
        "-o",
        "jsonpath={.items[*].spec}",
        "--allow-missing-template-keys=false",
    )
    assert strict.exit_code == 1
    assert strict.stderr.startswith(
        'error: error executing jsonpath "{.items[*].spec}": Error executing template: '
        "spec is not found. Printing more information for debugging the template:"
    )


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("jsonpath={.items[", "error: error parsing jsonpath {.items[, unterminated array"),
        ("jsonpath={.items", "error: error parsing jsonpath {.items, unclosed action"),
        ("jsonpath", "error: template format specified but no template given"),
        ("xml", 'error: unable to match a printer suitable for the output format "xml"'),
        ("custom-columns=NAME", "error: unexpected custom-columns spec: NAME, expected"),
        ("custom-columns=", "error: custom-columns format specified but no custom columns"),
        ("jsonpath-file=/nonexistent/t", "error: error reading --template /nonexistent/t"),
    ],
)
def test_bad_output_is_refused_before_any_request(
    cluster: ClusterProcess, output: str, message: str
) -> None:
    result = cluster.tk("get", "cm", "-o", output)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(message), result.stderr
    assert "Traceback" not in result.output


def test_jsonpath_execution_error(cluster: ClusterProcess) -> None:
    result = cluster.tk("get", "cm", "-o", "jsonpath={.items[7].metadata.name}")
    assert result.exit_code == 1
    assert "array index out of bounds: index 7, length 3" in result.stderr


def test_custom_columns_and_file(cluster: ClusterProcess, tmp_path: Path) -> None:
    spec = "NAME:.metadata.name,APP:metadata.labels.app,KEYS:{.data}"
    got = cluster.tk("get", "cm", "-o", f"custom-columns={spec}")
    assert got.exit_code == 0, got.output
    assert got.stdout.splitlines() == [
        "NAME     APP      KEYS",
        "db       db       map[c:3 d:4 e:5]",
        "web-10   web      map[a:1]",
        "web-2    <none>   map[a:1 b:2]",
    ]
    template = tmp_path / "cols"
    template.write_text("NAME   FIRST\n.metadata.name   {.data.a}\n")
    from_file = cluster.tk("get", "cm", "-o", f"custom-columns-file={template}")
    assert from_file.stdout.splitlines() == [
        "NAME     FIRST",
        "db       <none>",
        "web-10   1",
        "web-2    1",
    ]
    template.write_text("NAME FIRST\n.metadata.name\n")
    bad = cluster.tk("get", "cm", "-o", f"custom-columns-file={template}")
    assert bad.exit_code == 1
    assert bad.stderr == ("error: number of headers (2) and field specifications (1) don't match\n")


def test_sort_by_natural_and_numeric_and_missing_field(cluster: ClusterProcess) -> None:
    by_name = cluster.tk("get", "cm", "--sort-by=.metadata.name", "-o", "name")
    assert by_name.stdout.split() == ["configmap/db", "configmap/web-2", "configmap/web-10"]
    table = cluster.tk("get", "cm", "--sort-by", "{.data.b}")
    assert [line.split()[0] for line in table.stdout.splitlines()] == [
        "NAME",
        "db",
        "web-10",
        "web-2",
    ]
    nowhere = cluster.tk("get", "cm", "--sort-by=.spec.nope")
    assert nowhere.exit_code == 1
    assert nowhere.stderr == (
        'error: couldn\'t find any field with path "{.spec.nope}" in the list of objects\n'
    )


def test_show_labels_and_label_columns(cluster: ClusterProcess) -> None:
    got = cluster.tk("get", "cm", "--show-labels", "-L", "app", "-L", "app.kubernetes.io/name")
    assert got.exit_code == 0, got.output
    lines = got.stdout.splitlines()
    assert lines[0].split() == ["NAME", "DATA", "AGE", "APP", "NAME", "LABELS"]
    assert lines[1].split()[3:] == ["db", "app=db"]
    assert lines[2].split()[3:] == ["web", "app=web,tier=front"]
    assert lines[3].split()[3:] == ["x", "app.kubernetes.io/name=x"]
    bare = cluster.tk("get", "cm", "--no-headers")
    assert [line.split()[0] for line in bare.stdout.splitlines()] == ["db", "web-10", "web-2"]


def test_empty_results_per_output(cluster: ClusterProcess) -> None:
    table = cluster.tk("get", "pods")
    assert (table.exit_code, table.stdout) == (0, "")
    assert table.stderr == "No resources found in default namespace.\n"
    as_json = cluster.tk("get", "pods", "-o", "json")
    assert as_json.stderr == ""
    assert json.loads(as_json.stdout) == {
        "apiVersion": "v1",
        "items": [],
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    }
    as_yaml = cluster.tk("get", "pods", "-o", "yaml")
    assert as_yaml.stdout.startswith("apiVersion: v1\nitems: []\nkind: List\n")
    names = cluster.tk("get", "pods", "-o", "name")
    assert (names.stdout, names.stderr) == ("", "")
    columns = cluster.tk("get", "pods", "-o", "custom-columns=NAME:.metadata.name")
    assert columns.stdout == "NAME\n"


def test_named_objects_missing(cluster: ClusterProcess) -> None:
    one = cluster.tk("get", "cm", "nope", "-o", "json")
    assert (one.exit_code, one.stdout) == (1, "")
    assert one.stderr == 'Error from server (NotFound): configmaps "nope" not found\n'
    two = cluster.tk("get", "cm", "nope", "db", "-o", "jsonpath={.items[*].metadata.name}")
    assert (two.exit_code, two.stdout) == (1, "db")
