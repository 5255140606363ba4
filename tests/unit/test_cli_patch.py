"""`tinykube patch` and `tinykube replace` against a real API server (tests/unit/cli_apiserver)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from apimachinery import scheme
from apimachinery.client import Client
from cli.cmd_patch import update_with_retry
from tests.unit.cli_apiserver import DEPLOYMENT, POD, ApiServerProcess, no_traceback
from tests.unit.cli_apiserver import apiserver as apiserver  # the module's server

pytestmark = pytest.mark.timeout(90)


def containers(srv: ApiServerProcess, name: str) -> list[dict[str, object]]:
    spec = srv.get_dict("deployments", name)["spec"]["template"]["spec"]
    return list(spec["containers"])


def test_patch_types_change_what_they_say(apiserver: ApiServerProcess) -> None:
    apiserver.create_yaml(DEPLOYMENT.format(name="p1"))
    scaled = apiserver.tk("patch", "deployment", "p1", "-p", '{"spec":{"replicas":3}}')
    assert (scaled.exit_code, scaled.stdout) == (0, "deployment.apps/p1 patched\n")
    assert apiserver.get_dict("deployments", "p1")["spec"]["replicas"] == 3
    again = apiserver.tk("patch", "deploy/p1", "-p", "spec:\n  replicas: 3\n")
    assert again.stdout == "deployment.apps/p1 patched (no change)\n"

    strategic = (
        '{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.26"}]}}}}'
    )
    assert apiserver.tk("patch", "deploy", "p1", "-p", strategic).exit_code == 0
    assert [(c["name"], c["image"]) for c in containers(apiserver, "p1")] == [
        ("web", "nginx:1.26"),
        ("sidecar", "busybox"),
    ]
    ops = [{"op": "remove", "path": "/spec/template/spec/containers/1"}]
    removed = apiserver.tk("patch", "deploy", "p1", "--type", "json", "-p", json.dumps(ops))
    assert removed.exit_code == 0, removed.output
    assert [c["name"] for c in containers(apiserver, "p1")] == ["web"]
    merge = '{"metadata":{"labels":{"app":null,"team":"ops"}}}'
    assert apiserver.tk("patch", "deploy", "p1", "--type", "merge", "-p", merge).exit_code == 0
    assert apiserver.get_dict("deployments", "p1")["metadata"]["labels"] == {"team": "ops"}


def test_patch_file_and_output(apiserver: ApiServerProcess, tmp_path: Path) -> None:
    apiserver.create_yaml(POD.format(name="p2"))
    patch_file = tmp_path / "patch.yaml"
    patch_file.write_text("metadata:\n  annotations:\n    note: hi\n")
    result = apiserver.tk("patch", "pod", "p2", "--patch-file", str(patch_file), "-o", "json")
    assert result.exit_code == 0, result.output
    annotations = json.loads(result.stdout)["metadata"]["annotations"]
    # The patch, a changing verb, started a trace: the server stored its context too.
    assert annotations.pop("tinykube.io/trace-context").startswith("00-")
    assert annotations == {"note": "hi"}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("deploy", "p3", "-p", "{bad"), 'error: unable to parse "{bad"'),
        (("deploy", "p3", "--type", "yaml", "-p", "{}"), "error: --type must be one of [json"),
        (
            ("deployz", "p3", "-p", "{}"),
            'error: the server doesn\'t have a resource type "deployz"',
        ),
        (("deploy", "nope", "-p", "{}"), 'Error from server (NotFound): deployments.apps "nope"'),
        (("deploy", "p3"), "error: must specify one of -p or --patch-file"),
        (("deploy", "-p", "{}"), "no name was specified"),
        (("deploy", "p3", "-p", '{"spec":{"replicaz":1}}'), 'unknown field "spec.replicaz"'),
        (("deploy", "p3", "-p", '{"spec":{"replicas":"x"}}'), "spec.replicas"),
        (("deploy", "p3", "-p", '{"metadata":{"name":"other"}}'), "does not match the name"),
        (("deploy", "p3", "--type", "json", "-p", '{"op":"add"}'), "list of operations"),
        (
            ("deploy", "p3", "--type", "json", "-p", '[{"op":"remove","path":"/spec/x"}]'),
            'doc is missing path: "/spec/x"',
        ),
        (("deploy", "p3", "-p", '{"spec":{"replicas":-1}}'), "Error from server (Invalid)"),
    ],
)
def test_patch_bad_input_changes_nothing(
    apiserver: ApiServerProcess, args: tuple[str, ...], words: str
) -> None:
    if not apiserver.exists("deployments", "p3"):
        apiserver.create_yaml(DEPLOYMENT.format(name="p3"))
    before = apiserver.get("deployments", "p3").metadata.resource_version
    result = apiserver.tk("patch", *args)
    assert result.exit_code == 1
    assert words in result.stderr
    no_traceback(result)
    assert apiserver.get("deployments", "p3").metadata.resource_version == before


def test_update_with_retry_starts_again_after_a_conflict(apiserver: ApiServerProcess) -> None:
    """A write lands between our get and our update: we read again and keep both changes."""
    apiserver.create_yaml(POD.format(name="p4"))
    pods = scheme.for_resource("pods")

    async def scenario(client: Client) -> int:
        reads = 0
        real_get = client.get

        async def racing_get(resource: Any, name: str, namespace: str = "") -> Any:
            nonlocal reads
            obj = await real_get(resource, name, namespace)
            reads += 1
            if reads == 1:  # someone else writes right after our first read
                other = await real_get(resource, name, namespace)
                other.metadata.labels["theirs"] = "1"
                await client.update(other)
            return obj

        def change(obj: Any) -> Any:
            obj.metadata.labels["mine"] = "1"
            return obj

        client.get = racing_get  # type: ignore[method-assign]
        await update_with_retry(client, pods, "p4", "default", change)
        return reads

    assert apiserver.call(scenario) == 2
    labels = apiserver.get_dict("pods", "p4")["metadata"]["labels"]
    assert labels == {"run": "p4", "theirs": "1", "mine": "1"}


def test_patch_with_a_stale_resource_version_is_a_conflict(apiserver: ApiServerProcess) -> None:
    apiserver.create_yaml(POD.format(name="p5"))
    stale = '{"metadata":{"resourceVersion":"1","labels":{"x":"y"}}}'
    result = apiserver.tk("patch", "pod", "p5", "--type", "merge", "-p", stale)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error from server (Conflict):")
    assert "x" not in apiserver.get_dict("pods", "p5")["metadata"]["labels"]


def test_replace_updates_whole_objects_and_needs_them(
    apiserver: ApiServerProcess, tmp_path: Path
) -> None:
    apiserver.create_yaml(DEPLOYMENT.format(name="r1"))
    manifest = tmp_path / "r1.yaml"
    manifest.write_text(
        DEPLOYMENT.format(name="r1")
        .replace("replicas: 2", "replicas: 5")
        .replace("  labels: {app: r1}\n", "", 1)
    )
    result = apiserver.tk("replace", "-f", str(manifest))
    assert (result.exit_code, result.stdout) == (0, "deployment.apps/r1 replaced\n"), result.output
    stored = apiserver.get_dict("deployments", "r1")
    assert stored["spec"]["replicas"] == 5
    assert "labels" not in stored["metadata"]  # left out of the file: cleared

    missing = tmp_path / "gone.yaml"
    missing.write_text(DEPLOYMENT.format(name="gone"))
    refused = apiserver.tk("replace", "-f", str(missing))
    assert refused.exit_code == 1
    assert refused.stderr == 'Error from server (NotFound): deployments.apps "gone" not found\n'
    assert not apiserver.exists("deployments", "gone")
    no_traceback(refused)


def test_replace_force_recreates(apiserver: ApiServerProcess) -> None:
    created = apiserver.create_yaml(POD.format(name="r2"))[0]
    changed = POD.format(name="r2").replace("image: busybox", "image: nginx")
    result = apiserver.tk("replace", "--force", "-f", "-", stdin=changed)
    assert result.exit_code == 0, result.output
    assert result.stdout == 'pod "r2" deleted\npod/r2 replaced\n'
    pod = apiserver.get("pods", "r2")
    assert pod.metadata.uid != created.metadata.uid
    assert pod.spec.containers[0].image == "nginx"


def test_replace_bad_file_sends_nothing(apiserver: ApiServerProcess, tmp_path: Path) -> None:
    apiserver.create_yaml(POD.format(name="r3"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(POD.format(name="r3").replace("image:", "imagee:"))
    result = apiserver.tk("replace", "-f", str(bad))
    assert result.exit_code == 1
    assert 'unknown field "spec.containers[0].imagee"' in result.stderr
    assert apiserver.get("pods", "r3").spec.containers[0].image == "busybox"
    assert apiserver.tk("replace", "-f", str(tmp_path / "nope.yaml")).exit_code == 1
