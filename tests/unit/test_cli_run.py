"""`tinykube run`: the Pod it builds, what it stores, and its bad input.

Waiting for a container and printing its output (`--rm -it`) needs a node
that runs something; that path is exercised on the local cluster
(tests/e2e/test_local_cluster.py).
"""

from __future__ import annotations

import asyncio

import pytest

from apimachinery.client import Client
from cli.cmd_run import build_pod, container_state
from cli.context import CommandError
from protos import core_pb2
from tests.unit.test_cli_commands import ServerProcess, run
from tests.unit.test_cli_commands import server as server  # the fake server in a child process


def _pod(**overrides: object) -> core_pb2.Pod:
    args: dict[str, object] = {
        "command": False,
        "env": (),
        "labels": "",
        "port": 0,
        "restart": "Never",
        "pull_policy": "",
    }
    args.update(overrides)
    return build_pod("probe", "busybox", ["wget", "-qO-", "x"], **args)  # type: ignore[arg-type]


def test_build_pod_is_what_kubectl_run_creates() -> None:
    pod = _pod(env=("A=1",), labels="tier=test", port=8080)
    assert pod.metadata.labels == {"run": "probe", "tier": "test"}
    assert pod.spec.restart_policy == "Never"
    (container,) = pod.spec.containers
    assert container.name == "probe" and container.image == "busybox"
    assert list(container.args) == ["wget", "-qO-", "x"] and not container.command
    assert [(e.name, e.value) for e in container.env] == [("A", "1")]
    assert container.ports[0].container_port == 8080
    assert list(_pod(command=True).spec.containers[0].command) == ["wget", "-qO-", "x"]


@pytest.mark.parametrize(
    ("overrides", "words"),
    [({"env": ("NOVALUE",)}, "--env"), ({"labels": "a=b,c"}, "--labels")],
)
def test_build_pod_bad_flags_are_named(overrides: dict[str, object], words: str) -> None:
    with pytest.raises(CommandError, match=words):
        _pod(**overrides)


def test_container_state_reads_the_first_container() -> None:
    pod = core_pb2.Pod()
    assert container_state(pod) == ("", 0, "")
    status = pod.status.container_statuses.add(name="c")
    status.state.waiting.reason = "ErrImagePull"
    assert container_state(pod) == ("waiting", 0, "ErrImagePull")
    status.state.Clear()
    status.state.terminated.exit_code = 3
    status.state.terminated.reason = "Error"
    assert container_state(pod) == ("terminated", 3, "Error")


def test_run_creates_the_pod(server: ServerProcess) -> None:
    result = run(server, "run", "web", "--image", "nginx:latest", "--port", "80")
    assert result.exit_code == 0, result.output
    assert result.stdout == "pod/web created\n"

    async def stored() -> core_pb2.Pod:
        async with Client(server.address) as client:
            pod: core_pb2.Pod = await client.get("pods", "web")
            return pod

    pod = asyncio.run(stored())
    assert pod.metadata.labels["run"] == "web"
    assert pod.spec.containers[0].image == "nginx:latest"
    assert pod.spec.restart_policy == "Always"


def test_run_bad_input_stores_nothing(server: ServerProcess) -> None:
    bad_env = run(server, "run", "p", "--image", "busybox", "--env", "NOEQUALS")
    assert bad_env.exit_code == 1
    assert "--env: expected NAME=VALUE" in bad_env.stderr
    attach_always = run(server, "run", "p", "--image", "busybox", "--rm", "--restart", "Always")
    assert attach_always.exit_code == 1
    assert "--restart=Never" in attach_always.stderr
    assert server.stored("pods", "default") == []
