"""`-f` source walking, all-or-nothing decoding, and KIND NAME argument parsing."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from apimachinery import scheme
from cli import inputs
from cli.context import CommandError

DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web-app
spec:
  replicas: 2
  selector:
    matchLabels: {app: web-app}
  template:
    metadata:
      labels: {app: web-app}
    spec:
      containers:
      - name: web-app
        image: nginx:latest
"""
SERVICE = """apiVersion: v1
kind: Service
metadata:
  name: web-app-service
spec:
  selector: {app: web-app}
  ports:
  - port: 80
"""


def test_directory_expands_to_sorted_manifests_only(tmp_path: Path) -> None:
    for name in ("b.yaml", "a.json", "c.yml", "notes.txt", "d.yaml.bak"):
        (tmp_path / name).write_text("")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "e.yaml").write_text("")
    got = inputs.expand_paths([str(tmp_path)])
    assert [Path(p).name for p in got] == ["a.json", "b.yaml", "c.yml"]


def test_files_and_stdin_keep_argument_order(tmp_path: Path) -> None:
    f = tmp_path / "svc.yaml"
    f.write_text(SERVICE)
    sources = inputs.read_sources([str(f), "-", "-"], stdin=io.StringIO(DEPLOY))
    assert [s.name for s in sources] == [str(f), "-"]  # stdin read once
    assert sources[1].text == DEPLOY


def test_missing_path_is_kubectl_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match=r'the path ".*nope" does not exist'):
        inputs.expand_paths([str(tmp_path / "nope")])


def test_decode_all_returns_objects_in_order(tmp_path: Path) -> None:
    (tmp_path / "1.yaml").write_text(DEPLOY + "---\n" + SERVICE)
    objs, problems = inputs.decode_all(inputs.read_sources([str(tmp_path)]))
    assert problems == []
    assert [scheme.for_message(o).kind for o in objs] == ["Deployment", "Service"]
    assert objs[0].spec.replicas == 2


def test_decode_all_collects_every_error_and_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(DEPLOY.replace("replicas:", "replica:"))
    (tmp_path / "b.yaml").write_text(SERVICE)
    (tmp_path / "c.yaml").write_text("kind: [oops\n")
    objs, problems = inputs.decode_all(inputs.read_sources([str(tmp_path)]))
    assert len(problems) == 2
    assert "a.yaml" in str(problems[0]) and "spec.replica" in str(problems[0])
    assert "c.yaml" in str(problems[1])
    assert len(objs) == 1  # the caller sends nothing when problems is non-empty


def names(parsed: list[tuple[scheme.KindInfo, list[str]]]) -> list[tuple[str, list[str]]]:
    return [(info.resource, n) for info, n in parsed]


@pytest.mark.parametrize(
    ("args", "want"),
    [
        (["pods"], [("pods", [])]),
        (["po", "web", "db"], [("pods", ["web", "db"])]),
        (["deploy,svc"], [("deployments", []), ("services", [])]),
        (["deploy,svc", "web-app"], [("deployments", ["web-app"]), ("services", ["web-app"])]),
        (["deployments.apps/web", "svc/web", "deploy/api"],
         [("deployments", ["web", "api"]), ("services", ["web"])]),
        (["Node", "node1"], [("nodes", ["node1"])]),
        (["all"], [("pods", []), ("services", []), ("deployments", []), ("replicasets", [])]),
        (["svc,all"], [("services", []), ("pods", []), ("deployments", []), ("replicasets", [])]),
    ],
)  # fmt: skip
def test_parse_resource_args(args: list[str], want: list[tuple[str, list[str]]]) -> None:
    assert names(inputs.parse_resource_args(args)) == want


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([], "you must specify the type of resource"),
        (["pdos"], 'the server doesn\'t have a resource type "pdos"'),
        (["pods", "pod/web"], "no need to specify a resource type"),
        (["pod/"], "single resource and name"),
    ],
)
def test_parse_resource_args_errors(args: list[str], fragment: str) -> None:
    with pytest.raises(CommandError) as info:
        inputs.parse_resource_args(args)
    assert fragment in str(info.value)


def test_delete_needs_names() -> None:
    with pytest.raises(CommandError, match="no name was specified"):
        inputs.parse_resource_args(["pods"], verb="delete", need_names=True)
