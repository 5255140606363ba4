"""`tinykube edit` against a real API server, with a scripted editor.

The "editor" is a small Python program: each time it is opened it takes the
next step of a plan (text replacements, "empty", or "fail"), applies it to
the file, and appends what it was shown to a log, so a test can read the
error comments the reopened file carried.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from tests.unit.cli_apiserver import DEPLOYMENT, ApiServerProcess, no_traceback
from tests.unit.cli_apiserver import apiserver as apiserver  # the module's server

pytestmark = pytest.mark.timeout(90)

EDITOR = """
import json, sys, pathlib
plan, log, target = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
steps = json.loads(plan.read_text())
step = steps.pop(0)
plan.write_text(json.dumps(steps))
text = target.read_text()
with log.open("a") as f:
    f.write(text + "\\n=====\\n")
if step == "fail":
    sys.exit(3)
if step == "empty":
    text = ""
else:
    for old, new in step:
        assert old in text, old
        text = text.replace(old, new)
target.write_text(text)
"""


class Editor:
    def __init__(self, directory: Path) -> None:
        self.script = directory / "editor.py"
        self.script.write_text(EDITOR)
        self.plan = directory / "plan.json"
        self.log = directory / "seen.log"

    @property
    def command(self) -> str:
        return f"{sys.executable} {self.script} {self.plan} {self.log}"

    def run(
        self, srv: ApiServerProcess, steps: list[Any], *args: str, var: str = "KUBE_EDITOR"
    ) -> Result:
        self.plan.write_text(json.dumps(steps))
        self.log.write_text("")
        env = {"KUBE_EDITOR": None, "EDITOR": None, var: self.command}
        return srv.tk("edit", *args, env=env)  # type: ignore[arg-type]

    def shown(self) -> list[str]:
        return self.log.read_text().split("\n=====\n")[:-1]


@pytest.fixture
def editor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Editor:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # kept copies land in the test's dir
    return Editor(tmp_path)


def replicas(srv: ApiServerProcess, name: str) -> int:
    return int(srv.get("deployments", name).spec.replicas)


def test_edit_saves_and_prints_edited(apiserver: ApiServerProcess, editor: Editor) -> None:
    apiserver.create_yaml(DEPLOYMENT.format(name="ed1"))
    result = editor.run(apiserver, [[["replicas: 2", "replicas: 4"]]], "deployment", "ed1")
    assert (result.exit_code, result.stdout) == (0, "deployment.apps/ed1 edited\n"), result.output
    assert replicas(apiserver, "ed1") == 4
    (shown,) = editor.shown()
    assert shown.startswith(
        "# Please edit the object below. Lines beginning with a '#' will be ignored,\n"
        "# and an empty file will abort the edit. If an error occurs while saving this file "
        "will be\n"
        "# reopened with the relevant failures.\n#\napiVersion: apps/v1\nkind: Deployment\n"
    )
    via_editor = editor.run(
        apiserver, [[["replicas: 4", "replicas: 5"]]], "deploy/ed1", var="EDITOR"
    )
    assert via_editor.exit_code == 0 and replicas(apiserver, "ed1") == 5
    as_json = editor.run(
        apiserver, [[['"replicas": 5', '"replicas": 6']]], "deploy", "ed1", "-o", "json"
    )
    assert as_json.exit_code == 0, as_json.output
    assert replicas(apiserver, "ed1") == 6


@pytest.mark.parametrize(
    "step", [[], "empty", [["  replicas: 2", "  # replicas: 3\n  replicas: 2"]]]
)
def test_no_change_cancels(apiserver: ApiServerProcess, editor: Editor, step: Any) -> None:
    if not apiserver.exists("deployments", "ed2"):
        apiserver.create_yaml(DEPLOYMENT.format(name="ed2"))
    before = apiserver.get("deployments", "ed2").metadata.resource_version
    result = editor.run(apiserver, [step], "deploy", "ed2")
    assert (result.exit_code, result.stderr) == (0, "Edit cancelled, no changes made.\n")
    assert apiserver.get("deployments", "ed2").metadata.resource_version == before


def test_invalid_edit_reopens_with_the_error(apiserver: ApiServerProcess, editor: Editor) -> None:
    apiserver.create_yaml(DEPLOYMENT.format(name="ed3"))
    steps = [[["replicas: 2", "replicas: -1"]], [["replicas: -1", "replicas: 3"]]]
    result = editor.run(apiserver, steps, "deploy", "ed3")
    assert (result.exit_code, result.stdout) == (0, "deployment.apps/ed3 edited\n"), result.output
    first, second = editor.shown()
    assert "replicas: 2" in first
    assert (
        '#\n# deployments.apps "ed3" was not valid:\n'
        "# * spec.replicas: Invalid value: -1: must be greater than or equal to 0\n#\n"
    ) in second
    assert "replicas: -1" in second  # the user's text, not the live object
    assert replicas(apiserver, "ed3") == 3


def test_unchanged_after_an_error_gives_up_and_keeps_a_copy(
    apiserver: ApiServerProcess, editor: Editor, tmp_path: Path
) -> None:
    apiserver.create_yaml(DEPLOYMENT.format(name="ed4"))
    result = editor.run(apiserver, [[["replicas: 2", "replicaz: 2"]], []], "deploy", "ed4")
    assert result.exit_code == 1
    assert result.stderr.endswith("error: Edit cancelled, no valid changes were saved.\n")
    kept = result.stderr.split('"')[1]
    assert kept.startswith(str(tmp_path / "scratch"))
    assert "replicaz: 2" in Path(kept).read_text()
    assert 'unknown field "spec.replicaz"' in editor.shown()[1]
    assert replicas(apiserver, "ed4") == 2
    no_traceback(result)


@pytest.mark.parametrize(
    ("step", "comment"),
    [
        (
            [["name: ed5\n", "name: other\n"]],
            "At least one of apiVersion, kind and name was changed",
        ),
        ([["kind: Deployment", "kind: Pod"]], 'no matches for kind "Pod" in version "apps/v1"'),
        ([["replicas: 2", "replicas: [2"]], "The edited file had a syntax error"),
    ],
)
def test_bad_edits_are_shown_again(
    apiserver: ApiServerProcess, editor: Editor, step: Any, comment: str
) -> None:
    if not apiserver.exists("deployments", "ed5"):
        apiserver.create_yaml(DEPLOYMENT.format(name="ed5"))
    result = editor.run(apiserver, [step, []], "deploy", "ed5")
    assert result.exit_code == 1
    assert comment in editor.shown()[1]
    assert not apiserver.exists("deployments", "other")
    assert replicas(apiserver, "ed5") == 2


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("deploy", "nope"), 'Error from server (NotFound): deployments.apps "nope" not found'),
        (("deployz", "x"), 'error: the server doesn\'t have a resource type "deployz"'),
        (("deploy",), "no name was specified"),
        (("deploy", "ed6"), "error: there was a problem with the editor"),
    ],
)
def test_edit_errors(
    apiserver: ApiServerProcess, editor: Editor, args: tuple[str, ...], words: str
) -> None:
    if not apiserver.exists("deployments", "ed6"):
        apiserver.create_yaml(DEPLOYMENT.format(name="ed6"))
    result = editor.run(apiserver, ["fail"], *args)
    assert result.exit_code == 1
    assert words in result.stderr
    no_traceback(result)
    assert replicas(apiserver, "ed6") == 2
