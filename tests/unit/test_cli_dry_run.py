"""`patch`, `label`, `annotate` with `-f FILE` and `--dry-run=client|server` (real API server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.cli_apiserver import DEPLOYMENT, POD, ApiServerProcess, no_traceback
from tests.unit.cli_apiserver import apiserver as apiserver  # the module's server

pytestmark = pytest.mark.timeout(90)


def manifest(tmp_path: Path, text: str) -> str:
    path = tmp_path / "objects.yaml"
    path.write_text(text)
    return str(path)


def test_patch_from_file_changes_each_object_it_names(
    apiserver: ApiServerProcess, tmp_path: Path
) -> None:
    apiserver.create_yaml(DEPLOYMENT.format(name="df1"))
    apiserver.create_yaml(POD.format(name="pf1"))
    path = manifest(tmp_path, DEPLOYMENT.format(name="df1") + "---\n" + POD.format(name="pf1"))
    patch = '{"metadata":{"labels":{"patched":"yes"}}}'
    result = apiserver.tk("patch", "-f", path, "--type", "merge", "-p", patch)
    assert result.exit_code == 0, result.output
    assert result.stdout == "deployment.apps/df1 patched\npod/pf1 patched\n"
    assert apiserver.get_dict("deployments", "df1")["metadata"]["labels"]["patched"] == "yes"
    assert apiserver.get_dict("pods", "pf1")["metadata"]["labels"]["patched"] == "yes"


def test_patch_dry_runs_store_nothing(apiserver: ApiServerProcess) -> None:
    apiserver.create_yaml(DEPLOYMENT.format(name="dd1"))
    before = apiserver.get_dict("deployments", "dd1")
    patch = '{"spec":{"replicas":7}}'
    server = apiserver.tk("patch", "deploy", "dd1", "-p", patch, "--dry-run=server", "-o", "json")
    assert server.exit_code == 0, server.output
    assert json.loads(server.stdout)["spec"]["replicas"] == 7
    client = apiserver.tk("patch", "deploy", "dd1", "-p", patch, "--dry-run=client")
    assert client.stdout == "deployment.apps/dd1 patched (dry run)\n"
    named = apiserver.tk("patch", "deploy", "dd1", "-p", patch, "--dry-run", "server")
    assert named.stdout == "deployment.apps/dd1 patched (server dry run)\n"
    after = apiserver.get_dict("deployments", "dd1")
    assert after["spec"]["replicas"] == before["spec"]["replicas"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_server_dry_run_is_still_validated(apiserver: ApiServerProcess) -> None:
    apiserver.create_yaml(DEPLOYMENT.format(name="dd2"))
    bad = '{"spec":{"replicas":-1}}'
    result = apiserver.tk("patch", "deploy", "dd2", "-p", bad, "--dry-run=server")
    no_traceback(result)
    assert result.exit_code == 1
    assert "spec.replicas" in result.output


def test_label_and_annotate_from_file_and_dry_run(
    apiserver: ApiServerProcess, tmp_path: Path
) -> None:
    apiserver.create_yaml(POD.format(name="lf1"))
    path = manifest(tmp_path, POD.format(name="lf1"))
    labeled = apiserver.tk("label", "-f", path, "tier=front")
    assert labeled.stdout == "pod/lf1 labeled\n", labeled.output
    dry = apiserver.tk("label", "pod", "lf1", "tier=back", "--overwrite", "--dry-run=server")
    assert dry.stdout == "pod/lf1 labeled (server dry run)\n", dry.output
    note = apiserver.tk("annotate", "-f", path, "note=hi", "--dry-run=client")
    assert note.stdout == "pod/lf1 annotated (dry run)\n", note.output
    meta = apiserver.get_dict("pods", "lf1")["metadata"]
    assert meta["labels"]["tier"] == "front"
    assert "note" not in meta.get("annotations", {})


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("patch", "-f", "{path}", "pod", "x", "-p", "{{}}"), "cannot be combined with -f"),
        (("label", "-f", "{path}", "-l", "a=b", "x=y"), "-f cannot be combined"),
        (("patch", "-f", "/no/such/file.yaml", "-p", "{{}}"), "does not exist"),
        (("patch", "pod", "x", "-p", "{{}}", "--dry-run=maybe"), "Invalid value for '--dry-run'"),
    ],
)
def test_file_and_dry_run_errors(
    apiserver: ApiServerProcess, tmp_path: Path, args: tuple[str, ...], words: str
) -> None:
    path = manifest(tmp_path, POD.format(name="ef1"))
    result = apiserver.tk(*(a.format(path=path) for a in args))
    no_traceback(result)
    assert result.exit_code != 0
    assert words in result.output
