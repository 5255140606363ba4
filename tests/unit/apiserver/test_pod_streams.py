"""PodExecStream and PodPortForward: the API server relays both directions to a kubelet.

A stand-in kubelet (a gRPC Kubelet service on a loopback port, plain, as the
API server dials a kubelet without --kubelet-client-* flags) plays both
streams: its exec echoes stdin back as stdout, reports a resize on stderr
and answers stdin's end with exit code 3 (`sleep` runs on until cancelled);
its port-forward echoes data and ends at close_write. A Node names it as its
kubelet endpoint, so the tests see both ends: what reached the kubelet (the
start, the pod uid, the defaulted container) and what the caller read --
through the gRPC service (the local admin on the unix socket) and through
the in-process entry the HTTP API uses (authorization by a given user).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import grpc.aio
import pytest

from apimachinery import errors, scheme
from apiserver.auth.authorizer import UserInfo
from apiserver.server import APIServer
from apiserver.servicer import ResourcesServicer
from protos import api_pb2_grpc, core_pb2, kubelet_pb2, kubelet_pb2_grpc
from tests.unit.apiserver.rbac_objects import role, role_binding, rule, subject

ExecReq = kubelet_pb2.ExecStreamRequest
PFReq = kubelet_pb2.PortForwardRequest
BOB = UserInfo("bob", ("system:authenticated",))


class StandInKubelet(kubelet_pb2_grpc.KubeletServicer):
    def __init__(self) -> None:
        self.starts: list[Any] = []
        self.cancelled = asyncio.Event()

    async def ExecStream(
        self, request_iterator: AsyncIterator[ExecReq], context: Any
    ) -> AsyncIterator[kubelet_pb2.ExecStreamResponse]:
        requests = request_iterator.__aiter__()
        start = (await requests.__anext__()).start
        self.starts.append(start)
        if start.command[0] == "missing":
            status = errors.to_grpc_status(errors.BadRequest('container "a" is not running'))
            await context.abort_with_status(status)
        await context.send_initial_metadata(())
        try:
            async for request in requests:
                kind = request.WhichOneof("payload")
                if kind == "stdin":
                    yield kubelet_pb2.ExecStreamResponse(stdout=request.stdin.upper())
                elif kind == "resize":
                    size = f"{request.resize.width}x{request.resize.height}"
                    yield kubelet_pb2.ExecStreamResponse(stderr=size.encode())
                elif kind == "stdin_close":
                    break
            if start.command[0] == "sleep":  # runs on after stdin's end, until cancelled
                await asyncio.Event().wait()
            yield kubelet_pb2.ExecStreamResponse(exit_code=3)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    async def Logs(self, request: Any, context: Any) -> AsyncIterator[Any]:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not this stand-in's")
        yield

    async def Exec(self, request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not this stand-in's")

    async def PortForward(
        self, request_iterator: AsyncIterator[PFReq], context: Any
    ) -> AsyncIterator[kubelet_pb2.PortForwardResponse]:
        requests = request_iterator.__aiter__()
        self.starts.append((await requests.__anext__()).start)
        await context.send_initial_metadata(())
        async for request in requests:
            if request.WhichOneof("payload") == "close_write":
                return
            yield kubelet_pb2.PortForwardResponse(data=request.data)


async def _update_status(server: APIServer, name: str, change: Callable[[Any], None]) -> None:
    node = await server.store.get(scheme.for_resource("nodes"), "", name)
    change(node)
    await server.store.update(node, status=True)


@pytest.fixture
async def kubelet(server: APIServer) -> AsyncIterator[StandInKubelet]:
    grpc_server = grpc.aio.server()
    stand_in = StandInKubelet()
    kubelet_pb2_grpc.add_KubeletServicer_to_server(stand_in, grpc_server)
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    await grpc_server.start()
    node = core_pb2.Node(api_version="v1", kind="Node")
    node.metadata.name = "n1"
    await server.store.create(node)

    def reachable(n: Any) -> None:
        n.status.addresses.add(type="InternalIP", address="127.0.0.1")
        n.status.daemon_endpoints.kubelet_endpoint.port = port

    await _update_status(server, "n1", reachable)
    for name, containers, node_name in (("p", ("a", "b"), "n1"), ("one", ("c",), "n1")):
        pod = core_pb2.Pod(api_version="v1", kind="Pod")
        pod.metadata.name, pod.metadata.namespace = name, "default"
        pod.spec.node_name = node_name
        for cname in containers:
            pod.spec.containers.add(name=cname, image="i")
        await server.store.create(pod)
    pending = core_pb2.Pod(api_version="v1", kind="Pod")
    pending.metadata.name, pending.metadata.namespace = "pending", "default"
    pending.spec.containers.add(name="c", image="i")
    await server.store.create(pending)
    try:
        yield stand_in
    finally:
        await grpc_server.stop(0)


@pytest.fixture
async def stub(server: APIServer) -> AsyncIterator[api_pb2_grpc.ResourcesStub]:
    async with grpc.aio.insecure_channel(server.local_address) as channel:
        yield api_pb2_grpc.ResourcesStub(channel)


def servicer_of(server: APIServer) -> ResourcesServicer:
    return ResourcesServicer(server.store, server.guard, server.rbac.index)


async def _messages(*items: Any) -> AsyncIterator[Any]:
    for item in items:
        yield item


async def _then_wait(*items: Any) -> AsyncIterator[Any]:
    """The items, then a caller that stays without sending more."""
    for item in items:
        yield item
    await asyncio.Event().wait()


async def _error_of(call: Any) -> errors.StatusError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for _ in call:
            pass
    return errors.from_rpc_error(raised.value)


def exec_start(pod: str = "one", container: str = "", *command: str) -> ExecReq:
    start = kubelet_pb2.ExecStart(pod=pod, container=container, command=command or ("cat",))
    start.stdin = start.stdout = start.stderr = True
    return ExecReq(start=start)


async def test_exec_relays_stdin_resize_and_the_exit_code(
    server: APIServer, kubelet: StandInKubelet, stub: api_pb2_grpc.ResourcesStub
) -> None:
    requests = _messages(
        exec_start(),
        ExecReq(stdin=b"hello "),
        ExecReq(resize=kubelet_pb2.TerminalSize(width=80, height=24)),
        ExecReq(stdin=b"world"),
        ExecReq(stdin_close=True),
    )
    got = [r async for r in stub.PodExecStream(requests)]
    assert [r.WhichOneof("payload") for r in got] == ["stdout", "stderr", "stdout", "exit_code"]
    assert (got[0].stdout, got[1].stderr, got[2].stdout, got[3].exit_code) == (
        b"HELLO ",
        b"80x24",
        b"WORLD",
        3,
    )
    start = kubelet.starts[-1]
    pod = await server.store.get(scheme.for_resource("pods"), "default", "one")
    assert (start.namespace, start.pod, start.container) == ("default", "one", "c")
    assert start.pod_uid == pod.metadata.uid and list(start.command) == ["cat"]
    assert start.stdin and start.stdout and start.stderr and not start.tty


async def test_exec_chooses_the_container_as_pod_exec_does(
    kubelet: StandInKubelet, stub: api_pb2_grpc.ResourcesStub
) -> None:
    err = await _error_of(stub.PodExecStream(_messages(exec_start("p"))))
    assert isinstance(err, errors.BadRequest)
    assert err.message == "a container name must be specified for pod p, choose one of: [a b]"
    err = await _error_of(stub.PodExecStream(_messages(exec_start("p", "zz"))))
    assert err.message == "container zz is not valid for pod p"
    err = await _error_of(stub.PodExecStream(_messages(exec_start("pending"))))
    assert err.message == "pod pending does not have a host assigned"
    err = await _error_of(stub.PodExecStream(_messages(exec_start("nope"))))
    assert isinstance(err, errors.NotFound)
    got = [r async for r in stub.PodExecStream(_messages(exec_start("p", "b"), ExecReq()))]
    assert got[-1].exit_code == 3 and kubelet.starts[-1].container == "b"


async def test_the_first_message_must_start_the_stream(
    kubelet: StandInKubelet, stub: api_pb2_grpc.ResourcesStub
) -> None:
    err = await _error_of(stub.PodExecStream(_messages(ExecReq(stdin=b"x"))))
    assert err.message == "the first message of the stream must be its start"
    err = await _error_of(stub.PodExecStream(_messages()))
    assert err.message == "the stream ended before its start message"
    err = await _error_of(stub.PodExecStream(_messages(exec_start(), exec_start())))
    assert err.message == "only the first message of a stream may be a start"


async def test_kubelet_errors_pass_through_and_an_unreachable_one_is_503(
    server: APIServer, kubelet: StandInKubelet, stub: api_pb2_grpc.ResourcesStub
) -> None:
    err = await _error_of(stub.PodExecStream(_messages(exec_start("one", "", "missing"))))
    assert isinstance(err, errors.BadRequest) and err.message == 'container "a" is not running'

    def unreachable(n: Any) -> None:
        n.status.daemon_endpoints.kubelet_endpoint.port = 1  # nothing listens there

    await _update_status(server, "n1", unreachable)
    err = await _error_of(stub.PodExecStream(_messages(exec_start())))
    assert isinstance(err, errors.ServiceUnavailable)
    assert "cannot reach the kubelet at 127.0.0.1:1" in err.message
    port_err = await _error_of(stub.PodPortForward(_messages(pf_start(80))))
    assert "cannot reach the kubelet at 127.0.0.1:1" in port_err.message


async def test_a_caller_that_goes_away_cancels_the_kubelet_call(
    kubelet: StandInKubelet, stub: api_pb2_grpc.ResourcesStub
) -> None:
    call = stub.PodExecStream()
    await call.write(exec_start("one", "", "sleep"))
    await call.write(ExecReq(stdin=b"x"))
    assert (await call.read()).stdout == b"X"
    call.cancel()
    await asyncio.wait_for(kubelet.cancelled.wait(), 10)


def pf_start(port: int, pod: str = "p") -> PFReq:
    return PFReq(start=kubelet_pb2.PortForwardStart(pod=pod, port=port))


async def test_port_forward_relays_data_until_close_write(
    server: APIServer, kubelet: StandInKubelet, stub: api_pb2_grpc.ResourcesStub
) -> None:
    requests = _messages(pf_start(8080), PFReq(data=b"GET /"), PFReq(data=b" x"))
    got = [r.data async for r in stub.PodPortForward(requests)]
    assert got == [b"GET /", b" x"]
    start = kubelet.starts[-1]
    pod = await server.store.get(scheme.for_resource("pods"), "default", "p")
    assert (start.namespace, start.pod, start.port) == ("default", "p", 8080)
    assert start.pod_uid == pod.metadata.uid
    ended = [r async for r in stub.PodPortForward(_messages(pf_start(80), PFReq(close_write=True)))]
    assert ended == []
    err = await _error_of(stub.PodPortForward(_messages(pf_start(0))))
    assert err.message == "invalid port 0: must be between 1 and 65535, inclusive"
    err = await _error_of(stub.PodPortForward(_messages(pf_start(80, "pending"))))
    assert err.message == "pod pending does not have a host assigned"


async def test_the_in_process_entry_authorizes_the_given_user(
    server: APIServer, kubelet: StandInKubelet
) -> None:
    servicer = servicer_of(server)
    start = exec_start().start
    with pytest.raises(errors.Forbidden) as refused:
        await servicer.open_exec_stream(BOB, start)
    assert 'cannot create resource "pods/exec"' in refused.value.message
    await server.store.create(role("exec", "default", rule(["create"], ["pods/exec"])))
    binding = role_binding("bob-exec", "default", "Role", "exec", subject("User", "bob"))
    await server.store.create(binding)
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        try:
            stream = await servicer.open_exec_stream(BOB, start)
            break
        except errors.Forbidden:
            assert asyncio.get_running_loop().time() < deadline, "the binding never counted"
            await asyncio.sleep(0.02)
    got = [
        r async for r in stream.relay(_messages(ExecReq(stdin=b"ok"), ExecReq(stdin_close=True)))
    ]
    assert (got[0].stdout, got[-1].exit_code) == (b"OK", 3)
    with pytest.raises(errors.Forbidden) as no_forward:
        await servicer.open_port_forward(BOB, pf_start(80).start)
    assert 'cannot create resource "pods/portforward"' in no_forward.value.message
    sleeper = exec_start("one", "", "sleep").start
    responses = servicer.exec_stream(BOB, sleeper, _then_wait(ExecReq(stdin=b"a")))
    assert (await responses.__anext__()).stdout == b"A"
    await responses.aclose()  # leaving early cancels the kubelet's call
    await asyncio.wait_for(kubelet.cancelled.wait(), 10)
