"""`tinykube diff -f` against a real API server: the diff, the exit codes, nothing written."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.unit.cli_apiserver import DEPLOYMENT, POD, ApiServerProcess, no_traceback
from tests.unit.cli_apiserver import apiserver as apiserver  # the module's server

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(autouse=True)
def own_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The LIVE-/MERGED- directories go here, so the tests can see they are removed."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return scratch


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_diff_shows_the_change_and_writes_nothing(
    apiserver: ApiServerProcess, tmp_path: Path, own_tmpdir: Path
) -> None:
    apiserver.create_yaml(DEPLOYMENT.format(name="d1"))
    before = apiserver.get("deployments", "d1").metadata.resource_version
    changed = write(
        tmp_path, "d1.yaml", DEPLOYMENT.format(name="d1").replace("replicas: 2", "replicas: 3")
    )
    result = apiserver.tk("diff", "-f", changed)
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("diff -u -N ")
    assert lines[0].endswith("/apps.v1.Deployment.default.d1")
    assert "/LIVE-" in lines[1] and lines[1].startswith("--- ")
    assert "/MERGED-" in lines[2] and lines[2].startswith("+++ ")
    assert "-  replicas: 2" in lines and "+  replicas: 3" in lines
    assert "-  generation: 1" in lines and "+  generation: 2" in lines
    assert apiserver.get("deployments", "d1").metadata.resource_version == before
    assert list(own_tmpdir.iterdir()) == []


def test_no_difference_exits_0(apiserver: ApiServerProcess, tmp_path: Path) -> None:
    empty = apiserver.tk("diff", "-f", write(tmp_path, "empty.yaml", ""))
    assert (empty.exit_code, empty.output) == (0, "")  # kubectl: nothing to compare
    manifest = write(tmp_path, "d2.yaml", DEPLOYMENT.format(name="d2"))
    assert apiserver.tk("apply", "-f", manifest).exit_code == 0
    result = apiserver.tk("diff", "-f", manifest)
    assert (result.exit_code, result.output) == (0, "")


def test_new_object_is_all_additions(apiserver: ApiServerProcess, tmp_path: Path) -> None:
    result = apiserver.tk("diff", "-f", write(tmp_path, "p.yaml", POD.format(name="d3")))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].endswith("/v1.Pod.default.d3")
    assert lines[3] == f"@@ -0,0 +1,{len(lines) - 4} @@"
    assert "+  name: d3" in lines and "+  restartPolicy: Always" in lines  # defaulted
    assert not apiserver.exists("pods", "d3")


def test_secret_values_are_masked(apiserver: ApiServerProcess, tmp_path: Path) -> None:
    secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: d4}\ndata: {a: YQ==, b: Yg==}\n"
    assert apiserver.tk("apply", "-f", "-", stdin=secret).exit_code == 0
    result = apiserver.tk("diff", "-f", "-", stdin=secret.replace("Yg==", "Yw=="))
    assert result.exit_code == 1
    assert "YQ==" not in result.stdout and "Yw==" not in result.stdout
    assert "-  b: '*** (before)'" in result.stdout.splitlines()
    assert "+  b: '*** (after)'" in result.stdout.splitlines()


def test_external_diff_program(apiserver: ApiServerProcess, tmp_path: Path) -> None:
    apiserver.create_yaml(DEPLOYMENT.format(name="d5"))
    seen = tmp_path / "seen"
    program = f'sh -c \'ls "$0" "$1" > {seen}; exit 1\''
    changed = write(tmp_path, "d5.yaml", DEPLOYMENT.format(name="d5").replace("busybox", "b2"))
    result = apiserver.tk("diff", "-f", changed, env={"KUBECTL_EXTERNAL_DIFF": program})
    assert result.exit_code == 1, result.output
    assert seen.read_text().count("apps.v1.Deployment.default.d5") == 2


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            POD.format(name="d6").replace("containers", "containerz"),
            'unknown field "spec.containerz"',
        ),
        (POD.format(name="d6").replace("kind: Pod", "kind: Podz"), 'no matches for kind "Podz"'),
        (
            POD.format(name="d6").replace("image: busybox", "image: ''"),
            "Error from server (Invalid)",
        ),
    ],
)
def test_diff_errors_exit_above_1(
    apiserver: ApiServerProcess, tmp_path: Path, text: str, words: str
) -> None:
    result = apiserver.tk("diff", "-f", write(tmp_path, "bad.yaml", text))
    assert result.exit_code == 2, result.output
    assert words in result.stderr
    no_traceback(result)
    missing = apiserver.tk("diff", "-f", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 2
    assert 'the path "' in missing.stderr
