"""`tinykube wait` against a real API server; status changes come from a thread meanwhile."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from apimachinery.client import Client
from cli.cmd_wait import WaitFor, evaluate, parse_for, parse_jsonpath
from cli.context import CommandError
from tests.unit.cli_apiserver import POD, ApiServerProcess, no_traceback
from tests.unit.cli_apiserver import apiserver as apiserver  # the module's server

pytestmark = pytest.mark.timeout(90)


def set_ready(srv: ApiServerProcess, name: str, phase: str = "Running") -> None:
    async def change(client: Client) -> None:
        pod = await client.get("pods", name, "default")
        pod.status.phase = phase
        del pod.status.conditions[:]
        pod.status.conditions.add(type="Ready", status="True")
        await client.update_status(pod)

    srv.call(change)


def delete_pod(srv: ApiServerProcess, name: str) -> None:
    async def remove(client: Client) -> None:
        await client.delete("pods", name, "default", grace_period_seconds=0)

    srv.call(remove)


@contextmanager
def later(action: Callable[[], object], delay: float = 0.6) -> Iterator[None]:
    """Run `action` on a thread after `delay` seconds, while the block runs; join after."""
    errors: list[BaseException] = []

    def run() -> None:
        time.sleep(delay)
        try:
            action()
        except BaseException as err:  # surfaced in the test below
            errors.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield
    finally:
        thread.join(timeout=30)
    assert not errors, errors


def test_wait_for_condition_that_comes_true(apiserver: ApiServerProcess) -> None:
    apiserver.create_yaml(POD.format(name="w1"))
    with later(lambda: set_ready(apiserver, "w1")):
        result = apiserver.tk("wait", "--for=condition=Ready", "pod/w1", "--timeout=20s")
    assert (result.exit_code, result.stdout) == (0, "pod/w1 condition met\n"), result.output
    phase = apiserver.tk("wait", "--for=jsonpath={.status.phase}=Running", "pods", "w1")
    assert phase.stdout == "pod/w1 condition met\n"
    quoted = apiserver.tk(
        "wait", "--for=jsonpath='{.status.phase}'=Running", "pods", "-l", "run=w1"
    )
    assert quoted.stdout == "pod/w1 condition met\n"
    filtered = '--for=jsonpath={.status.conditions[?(@.type=="Ready")].status}=True'
    assert apiserver.tk("wait", filtered, "pod/w1").exit_code == 0


def test_wait_times_out_with_kubectls_line(apiserver: ApiServerProcess) -> None:
    apiserver.create_yaml(POD.format(name="w2"))
    started = time.monotonic()
    result = apiserver.tk("wait", "--for=condition=Ready", "pod/w2", "--timeout=1s")
    assert time.monotonic() - started < 10
    assert result.exit_code == 1
    assert result.stderr == "error: timed out waiting for the condition on pods/w2\n"
    once = apiserver.tk("wait", "--for=jsonpath={.status.podIP}", "pod/w2", "--timeout=0")
    assert once.exit_code == 1


def test_wait_for_delete(apiserver: ApiServerProcess) -> None:
    apiserver.create_yaml(POD.format(name="w3"))
    with later(lambda: delete_pod(apiserver, "w3")):
        result = apiserver.tk("wait", "--for=delete", "pod/w3", "--timeout=20s")
    assert (result.exit_code, result.stdout) == (0, "pod/w3 condition met\n"), result.output
    gone = apiserver.tk("wait", "--for=delete", "pod/never-was")
    assert (gone.exit_code, gone.output) == (0, "")


def test_wait_for_create(apiserver: ApiServerProcess) -> None:
    with later(lambda: apiserver.create_yaml(POD.format(name="w4"))):
        result = apiserver.tk("wait", "--for=create", "pod/w4", "--timeout=20s")
    assert result.stdout == "pod/w4 condition met\n", result.output


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--for=condition=Ready", "pod/missing"), 'Error from server (NotFound): pods "missing"'),
        (
            ("--for=condition=Ready", "pods", "-l", "run=nothing"),
            "error: no matching resources found",
        ),
        (("--for=bogus", "pod/w5"), 'error: unrecognized condition: "bogus"'),
        (("pod/w5",), "error: --for must be specified"),
        (("--for=condition=Ready", "podz/w5"), 'doesn\'t have a resource type "podz"'),
        (("--for=condition=Ready", "pods"), "no name was specified"),
        (("--for=delete", "pod/w5", "--timeout=soon"), 'invalid argument "soon" for "--timeout"'),
        (("--for=jsonpath=status.phase", "pod/w5"), "unrecognized JSONPath expression"),
        (("--for=jsonpath={.status.phase}x", "pod/w5"), "jsonpath wait format must be"),
        (("--for=jsonpath={.metadata}=x", "pod/w5"), "nested object or list"),
    ],
)
def test_wait_bad_input(apiserver: ApiServerProcess, args: tuple[str, ...], words: str) -> None:
    if not apiserver.exists("pods", "w5"):
        apiserver.create_yaml(POD.format(name="w5"))
    result = apiserver.tk("wait", "--timeout=2s", *args)
    assert result.exit_code == 1
    assert words in result.stderr
    no_traceback(result)


def test_for_forms_and_jsonpath() -> None:
    assert parse_for("condition=Available=false") == WaitFor("condition", "Available", "false")
    assert parse_for("Delete") == WaitFor("delete")
    pod = {
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "Init", "status": "False"},
            ],
            "phase": "Running",
            "containerStatuses": [{"ready": True, "restartCount": 0}],
        }
    }
    assert parse_for("condition=ready").met(pod)
    assert not parse_for("condition=Init").met(pod)
    assert parse_for("jsonpath={.status.containerStatuses[0].ready}=true").met(pod)
    assert parse_for("jsonpath={.status.containerStatuses[-1].restartCount}=0").met(pod)
    assert evaluate(parse_jsonpath("{.status.conditions[*].type}"), pod) == ["Ready", "Init"]
    assert evaluate(parse_jsonpath("{.status['phase']}"), pod) == ["Running"]
    with pytest.raises(CommandError, match="more than one value"):
        parse_for("jsonpath={.status.conditions[*].type}=Ready").met(pod)
