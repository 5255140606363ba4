"""`tinykube logs` and `exec` through the apiserver's proxy to a kubelet server on loopback."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from apimachinery import errors
from apimachinery.client import Client
from cli.cmd_logs import pod_name, run_exec, stream_logs
from cli.context import CommandError
from kubelet.runtime.fake import FakeRuntime
from tests.unit.kubelet.conftest import Harness, eventually, pod, set_pod_cidr


async def _running(client: Client, name: str) -> Any:
    p = await client.get("pods", name)
    return p if p.status.phase == "Running" else None


async def _node(client: Client, harness: Harness, runtime: FakeRuntime) -> None:
    # The proxy dials the Node's InternalIP: make it loopback, where the kubelet listens.
    await harness.start("node1", runtime, node_ip="127.0.0.1")
    await set_pod_cidr(client, "node1", "10.244.1.0/24")


async def test_logs_through_the_apiserver(
    client: Client, harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime = FakeRuntime()
    runtime.behave("web", logs=["one", "two", "three"])
    await _node(client, harness, runtime)
    await client.create(pod("web", "node1", "web"))
    await eventually(lambda: _running(client, "web"))

    assert await stream_logs(client, "default", "web") == 0
    assert capsys.readouterr().out == "one\ntwo\nthree\n"
    await stream_logs(client, "default", "web", tail=2, container="web")
    assert capsys.readouterr().out == "two\nthree\n"

    # follow: new lines arrive as written; it goes on across the container's restart
    # and ends when the pod is gone
    follow = asyncio.ensure_future(stream_logs(client, "default", "web", follow=True, tail=0))
    await asyncio.sleep(0.3)
    container = runtime.running()[0]
    runtime.write_log(container.id, "four")
    seen: list[str] = []

    async def printed() -> bool:
        seen.append(capsys.readouterr().out)
        return "four" in "".join(seen)

    await eventually(printed)
    runtime.write_log(container.id, "five")
    seen.clear()
    runtime.kill(container.id, 1)

    async def next_instance() -> bool:
        seen.append(capsys.readouterr().out)
        return "".join(seen) == "five\none\ntwo\nthree\n"  # the new instance's log

    await eventually(next_instance)
    assert not follow.done()

    # previous: the instance before the restart
    async def restarted() -> bool:
        p = await client.get("pods", "web")
        s = p.status.container_statuses[0]
        return bool(s.restart_count == 1 and s.state.HasField("running"))

    await eventually(restarted)
    await stream_logs(client, "default", "web", previous=True)
    assert capsys.readouterr().out == "one\ntwo\nthree\nfour\nfive\n"
    await client.delete("pods", "web")
    assert await asyncio.wait_for(follow, 10) == 0


async def test_exec_through_the_apiserver(
    client: Client, harness: Harness, capfd: pytest.CaptureFixture[str]
) -> None:
    runtime = FakeRuntime()
    runtime.files[("web", "/etc/hostname")] = b"web\n"
    await _node(client, harness, runtime)
    await client.create(pod("web", "node1", "web"))
    await client.create(pod("two", "node1", "a", "b"))
    await eventually(lambda: _running(client, "web"))
    await eventually(lambda: _running(client, "two"))

    assert await run_exec(client, "default", "web", ["cat", "/etc/hostname"]) == 0
    assert capfd.readouterr().out == "web\n"
    assert await run_exec(client, "default", "web", ["cat", "/nope"]) == 1
    err = capfd.readouterr().err
    assert "cat: /nope: No such file or directory" in err
    assert "command terminated with exit code 1" in err
    assert await run_exec(client, "default", "two", ["echo", "hi"], container="b") == 0
    assert capfd.readouterr().out == "hi\n"
    cid = next(c.id for c in runtime.running() if c.name == "b")
    assert ("exec_sync", cid, ("echo", "hi")) in runtime.calls

    with pytest.raises(errors.BadRequest, match=r"choose one of: \[a b\]"):
        await run_exec(client, "default", "two", ["true"])
    with pytest.raises(errors.BadRequest, match="container c is not valid"):
        await stream_logs(client, "default", "two", container="c")
    with pytest.raises(errors.NotFound):
        await run_exec(client, "default", "missing", ["true"])
    with pytest.raises(errors.BadRequest, match="previous terminated container"):
        await stream_logs(client, "default", "web", previous=True)


async def test_unreachable_kubelet_and_unbound_pod(client: Client, harness: Harness) -> None:
    await _node(client, harness, FakeRuntime())
    unbound = pod("floating", "node1")
    unbound.spec.node_name = ""
    await client.create(unbound)
    with pytest.raises(errors.BadRequest, match="does not have a host assigned"):
        await stream_logs(client, "default", "floating")

    await client.create(pod("web", "node1"))
    await eventually(lambda: _running(client, "web"))
    port = (await client.get("nodes", "node1")).status.daemon_endpoints.kubelet_endpoint.port
    await harness.close()  # the kubelet is gone; its Node still names its server
    with pytest.raises(
        errors.ServiceUnavailable, match=f"cannot reach the kubelet at 127.0.0.1:{port}"
    ):
        await run_exec(client, "default", "web", ["true"])


def test_pod_name_forms() -> None:
    assert pod_name("web") == pod_name("pod/web") == pod_name("pods/web") == "web"
    with pytest.raises(CommandError):
        pod_name("deploy/web")


async def test_client_pod_logs_and_exec(client: Client, harness: Harness) -> None:
    runtime = FakeRuntime()
    runtime.behave("web", logs=["alpha", "beta"])
    runtime.files[("web", "/etc/motd")] = b"hello\n"
    await _node(client, harness, runtime)
    await client.create(pod("web", "node1", "web"))
    await eventually(lambda: _running(client, "web"))

    assert [line async for line in client.pod_logs("web")] == ["alpha", "beta"]
    assert [line async for line in client.pod_logs("web", "default", tail=1)] == ["beta"]
    answer = await client.pod_exec("web", ["cat", "/etc/motd"], timeout_seconds=5)
    assert (answer.exit_code, answer.stdout) == (0, b"hello\n")
    failed = await client.pod_exec("web", ["cat", "/nope"])
    assert failed.exit_code == 1 and b"No such file" in failed.stderr
    with pytest.raises(errors.NotFound):
        await client.pod_exec("ghost", ["true"])
