"""ExecStream and PortForward end to end on a hollow node: API server -> kubelet -> fake runtime.

The caller is the local admin on the API server's unix socket, speaking the
gRPC PodExecStream / PodPortForward a CLI speaks; the kubelet is a real one
(tests/unit/kubelet/conftest.py's Harness) on the fake runtime, whose played
sessions (kubelet/runtime/fake_streams.py) echo `cat`'s stdin, run `tar` over
its in-memory files, and echo on a pod's declared port 80.
"""

from __future__ import annotations

import asyncio
import io
import socket
import tarfile
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest

from apimachinery import errors
from apimachinery.client import Client
from apiserver.server import APIServer
from kubelet.runtime import netns_dial
from kubelet.runtime.fake import FakeRuntime
from kubelet.runtime.interface import ContainerRuntime
from kubelet.server import KubeletServicer
from protos import api_pb2_grpc, kubelet_pb2, kubelet_pb2_grpc
from tests.unit.kubelet.conftest import Harness, eventually, pod, set_pod_cidr

ExecReq = kubelet_pb2.ExecStreamRequest
PFReq = kubelet_pb2.PortForwardRequest


async def _messages(*items: Any) -> AsyncIterator[Any]:
    for item in items:
        yield item


async def _error_of(call: Any) -> errors.StatusError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for _ in call:
            pass
    return errors.from_rpc_error(raised.value)


def start(*command: str, pod_name: str = "web", stdin: bool = True, tty: bool = False) -> Any:
    begin = kubelet_pb2.ExecStart(pod=pod_name, command=command, stdin=stdin, tty=tty)
    begin.stdout = begin.stderr = True
    return ExecReq(start=begin)


@pytest.fixture
async def node(client: Client, harness: Harness) -> FakeRuntime:
    runtime = FakeRuntime()
    await harness.start("node1", runtime, node_ip="127.0.0.1")
    await set_pod_cidr(client, "node1", "10.244.1.0/24")
    await client.create(pod("web", "node1", "web"))

    async def running() -> bool:
        return bool((await client.get("pods", "web")).status.phase == "Running")

    await eventually(running)
    return runtime


@pytest.fixture
async def stub(server: APIServer) -> AsyncIterator[api_pb2_grpc.ResourcesStub]:
    async with grpc.aio.insecure_channel(server.local_address) as channel:
        yield api_pb2_grpc.ResourcesStub(channel)


async def test_exec_streams_stdin_in_and_output_out(
    node: FakeRuntime, stub: api_pb2_grpc.ResourcesStub
) -> None:
    requests = _messages(
        start("cat"), ExecReq(stdin=b"one "), ExecReq(stdin=b"two"), ExecReq(stdin_close=True)
    )
    got = [r async for r in stub.PodExecStream(requests)]
    assert b"".join(r.stdout for r in got) == b"one two"
    assert got[-1].WhichOneof("payload") == "exit_code" and got[-1].exit_code == 0

    # The end of the caller's messages is stdin's end, too.
    got = [r async for r in stub.PodExecStream(_messages(start("cat"), ExecReq(stdin=b"x")))]
    assert [r.stdout for r in got[:-1]] == [b"x"] and got[-1].exit_code == 0

    # Without stdin, the command's own output and exit code; with a TTY, stderr is merged.
    got = [r async for r in stub.PodExecStream(_messages(start("cat", "/nope", stdin=False)))]
    assert got[0].stderr == b"cat: /nope: No such file or directory\n"
    assert got[-1].exit_code == 1
    got = [r async for r in stub.PodExecStream(_messages(start("cat", "/nope", tty=True)))]
    assert got[0].WhichOneof("payload") == "stdout" and got[-1].exit_code == 1

    resize = ExecReq(resize=kubelet_pb2.TerminalSize(width=120, height=40))
    done = [r async for r in stub.PodExecStream(_messages(start("cat", tty=True), resize))]
    assert done[-1].exit_code == 0
    cid = node.running()[0].id
    assert ("resize", cid, 120, 40) in node.calls


async def test_exec_refuses_what_kubernetes_refuses(
    node: FakeRuntime, stub: api_pb2_grpc.ResourcesStub
) -> None:
    silent = start("cat", stdin=False)
    silent.start.stdout = silent.start.stderr = False
    err = await _error_of(stub.PodExecStream(_messages(silent)))
    assert isinstance(err, errors.BadRequest)
    assert err.message == "you must specify at least 1 of stdin, stdout, stderr"
    err = await _error_of(stub.PodExecStream(_messages(start())))
    assert err.message == "you must specify at least one command for the container"
    err = await _error_of(stub.PodExecStream(_messages(start("cat", pod_name="nope"))))
    assert isinstance(err, errors.NotFound)


async def test_tar_in_and_out_is_what_cp_runs(
    node: FakeRuntime, stub: api_pb2_grpc.ResourcesStub
) -> None:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("notes.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    body = archive.getvalue()
    chunks = [ExecReq(stdin=body[i : i + 700]) for i in range(0, len(body), 700)]
    put = _messages(start("tar", "xmf", "-", "-C", "/srv"), *chunks, ExecReq(stdin_close=True))
    assert [r async for r in stub.PodExecStream(put)][-1].exit_code == 0
    assert node.files[("web", "/srv/notes.txt")] == b"hello"

    got = [r async for r in stub.PodExecStream(_messages(start("tar", "cf", "-", "/srv")))]
    out = b"".join(r.stdout for r in got)
    with tarfile.open(fileobj=io.BytesIO(out)) as tar:
        member = tar.extractfile("srv/notes.txt")
        assert member is not None and member.read() == b"hello"
    assert got[-1].exit_code == 0


async def test_port_forward_reaches_a_declared_port(
    node: FakeRuntime, stub: api_pb2_grpc.ResourcesStub
) -> None:
    begin = PFReq(start=kubelet_pb2.PortForwardStart(pod="web", port=80))
    requests = _messages(begin, PFReq(data=b"GET / HTTP/1.0\r\n\r\n"), PFReq(close_write=True))
    got = b"".join([r.data async for r in stub.PodPortForward(requests)])
    assert got == b"GET / HTTP/1.0\r\n\r\n"  # the fake's echo, ended by our half-close
    sandbox = next(iter(node.sandboxes))
    assert ("port_forward", sandbox, 80) in node.calls

    refused = PFReq(start=kubelet_pb2.PortForwardStart(pod="web", port=81))
    err = await _error_of(stub.PodPortForward(_messages(refused)))
    assert isinstance(err, errors.InternalError)
    assert err.message.startswith(f"error forwarding port 81 to pod {sandbox}, uid : ")
    assert "failed to connect to localhost:81 inside namespace" in err.message


class _NoPods:
    runtime: ContainerRuntime = FakeRuntime()

    def find_pod(self, namespace: str, name: str) -> None:
        return None

    async def pod_containers(self, pod: Any) -> list[Any]:
        return []


async def _refusal(call: Any, first: Any) -> errors.StatusError:
    """Send the start as the API server does (proxy_streams._open: no half-close), read the
    answer. The kubelet reads the start before refusing, so the write never races the refusal.
    """
    await call.write(first)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call.read()
    return errors.from_rpc_error(raised.value)


async def test_a_checked_kubelet_refuses_a_caller_without_a_certificate() -> None:
    server = grpc.aio.server()
    kubelet_pb2_grpc.add_KubeletServicer_to_server(KubeletServicer(_NoPods(), check=True), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = kubelet_pb2_grpc.KubeletStub(channel)
            err = await _refusal(stub.ExecStream(), start("cat"))
            assert isinstance(err, errors.Unauthorized)
            begin = PFReq(start=kubelet_pb2.PortForwardStart(pod="web", port=80))
            err = await _refusal(stub.PortForward(), begin)
            assert isinstance(err, errors.Unauthorized)
    finally:
        await server.stop(0)


async def test_the_node_dial_reaches_loopback_and_says_why_not() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        reader, writer = await netns_dial.open_connection("", port)
        writer.write(b"ping")
        assert await reader.read(100) == b"ping"
        writer.close()
    finally:
        listener.close()
        await listener.wait_closed()
    with socket.socket() as probe:  # a port nothing listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
        with pytest.raises(Exception) as refused:
            await netns_dial.open_connection("", closed)
    assert str(refused.value).startswith(
        f"failed to connect to localhost:{closed} on the node, IPv4: dial tcp4"
        f" 127.0.0.1:{closed}: connect: connection refused IPv6 dial tcp6 [::1]:{closed}:"
    )
