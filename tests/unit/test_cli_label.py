"""`tinykube label` and `tinykube annotate` against a real API server (tests/unit/cli_apiserver)."""

from __future__ import annotations

import pytest

from cli.cmd_label import MapChange, parse_changes, split_args
from cli.context import CommandError
from tests.unit.cli_apiserver import POD, ApiServerProcess, no_traceback
from tests.unit.cli_apiserver import apiserver as apiserver  # the module's server

pytestmark = pytest.mark.timeout(90)


def labels(srv: ApiServerProcess, name: str) -> dict[str, str]:
    return dict(srv.get("pods", name).metadata.labels)


def test_label_set_overwrite_remove(apiserver: ApiServerProcess) -> None:
    apiserver.create_yaml(POD.format(name="l1"))
    added = apiserver.tk("label", "pods", "l1", "tier=frontend", "stage=dev")
    assert (added.exit_code, added.stdout) == (0, "pod/l1 labeled\n")
    assert labels(apiserver, "l1") == {"run": "l1", "tier": "frontend", "stage": "dev"}

    refused = apiserver.tk("label", "pod/l1", "tier=backend")
    assert refused.exit_code == 1
    assert refused.stderr == (
        "error: 'tier' already has a value (frontend), and --overwrite is false\n"
    )
    assert labels(apiserver, "l1")["tier"] == "frontend"
    same = apiserver.tk("label", "pod/l1", "tier=frontend")
    assert same.stdout == "pod/l1 not labeled\n"

    changed = apiserver.tk("label", "pod", "l1", "tier=backend", "--overwrite")
    assert changed.stdout == "pod/l1 labeled\n"
    removed = apiserver.tk("label", "pod", "l1", "stage-", "ghost-")
    assert removed.exit_code == 0
    assert removed.stdout == 'label "ghost" not found.\npod/l1 unlabeled\n'
    assert labels(apiserver, "l1") == {"run": "l1", "tier": "backend"}
    listed = apiserver.tk("label", "pod", "l1", "--list")
    assert listed.stdout == "run=l1\ntier=backend\n"


def test_label_by_selector_and_all(apiserver: ApiServerProcess) -> None:
    for name in ("s1", "s2"):
        apiserver.create_yaml(POD.format(name=name).replace("run: ", "group: sel-", 1))
    result = apiserver.tk("label", "pods", "-l", "group in (sel-s1,sel-s2)", "picked=yes")
    assert result.exit_code == 0, result.output
    assert sorted(result.stdout.splitlines()) == ["pod/s1 labeled", "pod/s2 labeled"]
    assert labels(apiserver, "s2")["picked"] == "yes"
    every = apiserver.tk("annotate", "pods", "--all", "swept=1")
    assert every.exit_code == 0
    assert "pod/s1 annotated" in every.stdout.splitlines()
    none = apiserver.tk("label", "pods", "-l", "group=none", "x=y")
    assert (none.exit_code, none.stderr) == (1, "error: no objects passed to label\n")


def test_annotate_and_its_overwrite_message(apiserver: ApiServerProcess) -> None:
    apiserver.create_yaml(POD.format(name="a1"))
    first = apiserver.tk("annotate", "pods", "a1", "owner=ops", "note=a b c")
    assert (first.exit_code, first.stdout) == (0, "pod/a1 annotated\n")
    refused = apiserver.tk("annotate", "pods", "a1", "owner=dev")
    assert refused.exit_code == 1
    assert refused.stderr == (
        "error: --overwrite is false but found the following declared annotation(s): "
        "'owner' already has a value (ops)\n"
    )
    assert apiserver.tk("annotate", "pods", "a1", "owner=dev", "--overwrite").exit_code == 0
    assert apiserver.tk("annotate", "pods", "a1", "note-").stdout == "pod/a1 annotated\n"
    annotations = dict(apiserver.get("pods", "a1").metadata.annotations)
    # Each annotate, a changing verb, started a trace: the server stored its context too.
    trace = annotations.pop("tinykube.io/trace-context")
    assert annotations == {"owner": "dev"}
    listed = apiserver.tk("annotate", "pods", "a1", "--list")
    assert sorted(listed.stdout.splitlines()) == ["owner=dev", f"tinykube.io/trace-context={trace}"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("label", "pods", "b1"), "error: at least one label update is required"),
        (("annotate", "pods", "b1"), "error: at least one annotation update is required"),
        (("label", "podz", "b1", "a=b"), 'the server doesn\'t have a resource type "podz"'),
        (("label", "pods", "nope", "a=b"), 'Error from server (NotFound): pods "nope" not found'),
        (("label", "pods", "b1", "a=b", "c"), "all resources must be specified before label"),
        (("label", "pods", "b1", "a=b=c"), "error: invalid label spec: a=b=c"),
        (("label", "pods", "b1", "a=-bad-"), 'error: invalid label value: "a=-bad-"'),
        (("label", "pods", "b1", "a=b", "a-"), "can not both modify and remove a label"),
        (("label", "pods", "b1", "bad key!=x"), "Error from server (Invalid)"),
        (("label", "pods", "-l", "x=y", "b1", "a=b"), "cannot be combined"),
        (("label", "pods", "b1", "a=b", "--resource-version", "1"), "Conflict"),
    ],
)
def test_label_bad_input(apiserver: ApiServerProcess, args: tuple[str, ...], words: str) -> None:
    if not apiserver.exists("pods", "b1"):
        apiserver.create_yaml(POD.format(name="b1"))
    result = apiserver.tk(*args)
    assert result.exit_code == 1
    assert words in result.stderr
    no_traceback(result)
    assert labels(apiserver, "b1") == {"run": "b1"}


def test_argument_splitting_as_kubectl() -> None:
    assert split_args(["pods", "web", "a=b", "c-"], "label") == (["pods", "web"], ["a=b", "c-"])
    assert split_args(["pod/web", "=x"], "label") == (["pod/web", "=x"], [])
    with pytest.raises(CommandError, match="all resources must be specified before"):
        split_args(["pods", "a=b", "web"], "label")
    change = parse_changes(["a=1", "b-", "c="], MapChange("annotation"))
    assert (change.sets, change.removes) == ({"a": "1", "c": ""}, ["b"])
