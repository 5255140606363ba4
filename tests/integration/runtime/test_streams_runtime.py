"""The runtimes' streaming exec and port-forward, in-process, on containerd and on Docker.

Below the kubelet server (kubelet/streams.py): each adapter's `exec_stream`
(containerd: CRI Exec and SPDY to its streaming server; Docker: the Engine
API's exec with a hijacked socket) and `port_forward` (a socket made in the
sandbox's network namespace), against pods run by the kubelet's own runtime
manager (pod_runner.py). `runtime` is parametrized over both runtimes.
"""

from __future__ import annotations

import asyncio
import io
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kubelet.errors import ContainerRuntimeError
from kubelet.runtime.interface import ContainerRuntime
from kubelet.runtime.streaming import STDOUT, ExecOptions, ExecSession
from tests.integration.runtime.pod_runner import PodRunner, pod

pytestmark = pytest.mark.root

SHELL = pod(
    "streams",
    """  terminationGracePeriodSeconds: 1
  containers:
  - name: box
    image: busybox:1.36
    command: ["sleep", "3600"]
""",
)
WEB = pod(
    "streams-web",
    """  containers:
  - name: web
    image: nginx:1.25
    ports:
    - containerPort: 80
""",
)


@pytest.fixture
async def runner(runtime: ContainerRuntime, tmp_path: Path) -> AsyncIterator[PodRunner]:
    run = PodRunner(runtime, tmp_path / "kubelet")
    try:
        yield run
    finally:
        await run.close()


async def collect(session: ExecSession, *stdin: bytes, close: bool = True) -> tuple[bytes, bytes]:
    """Feed `stdin` (then its end), and read stdout and stderr to the end."""
    for chunk in stdin:
        await session.write_stdin(chunk)
    if close:
        await session.close_stdin()
    out, err = bytearray(), bytearray()
    async for stream, data in session.output():
        (out if stream == STDOUT else err).extend(data)
    return bytes(out), bytes(err)


async def test_exec_with_stdin_output_and_exit_codes(runner: PodRunner) -> None:
    p = await runner.run(SHELL, "box")
    cid = await runner.container_id(p, "box")
    rt = runner.runtime

    cat = await rt.exec_stream(cid, ExecOptions(("cat",), stdin=True))
    try:
        out, err = await asyncio.wait_for(collect(cat, b"hello ", b"world\n"), 30)
        assert (out, err, await cat.exit_code()) == (b"hello world\n", b"", 0)
    finally:
        await cat.close()

    script = "read line; echo got:$line; echo oops >&2; exit 3"
    sh = await rt.exec_stream(cid, ExecOptions(("sh", "-c", script), stdin=True))
    try:
        out, err = await asyncio.wait_for(collect(sh, b"abc\n"), 30)
        assert (out, err, await sh.exit_code()) == (b"got:abc\n", b"oops\n", 3)
    finally:
        await sh.close()

    missing = await rt.exec_stream(cid, ExecOptions(("no-such-command",)))
    try:
        out, err = await asyncio.wait_for(collect(missing, close=False), 30)
        assert await missing.exit_code() in (126, 127)
        assert b"no-such-command" in err, (out, err)
    finally:
        await missing.close()


async def test_exec_with_a_terminal(runner: PodRunner) -> None:
    p = await runner.run(SHELL, "box")
    cid = await runner.container_id(p, "box")
    script = "sleep 0.5; stty size; echo err >&2"
    session = await runner.runtime.exec_stream(cid, ExecOptions(("sh", "-c", script), tty=True))
    try:
        await session.resize(100, 30)
        out, err = await asyncio.wait_for(collect(session, close=False), 30)
    finally:
        await session.close()
    assert err == b""  # a terminal has one output: stderr comes on it too
    assert b"30 100" in out and b"err" in out, out
    assert await session.exit_code() == 0


async def test_a_large_archive_in_and_out(runner: PodRunner) -> None:
    """What `cp` does: tar into the container through stdin, and back out (past any window)."""
    p = await runner.run(SHELL, "box")
    cid = await runner.container_id(p, "box")
    payload = bytes(range(256)) * 4096  # 1 MiB
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("blob.bin")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    body = archive.getvalue()
    put = await runner.runtime.exec_stream(
        cid, ExecOptions(("tar", "xmf", "-", "-C", "/tmp"), stdin=True)
    )
    try:
        chunks = [body[i : i + 32768] for i in range(0, len(body), 32768)]
        _, err = await asyncio.wait_for(collect(put, *chunks), 60)
        assert await put.exit_code() == 0, err
    finally:
        await put.close()
    get = await runner.runtime.exec_stream(cid, ExecOptions(("tar", "cf", "-", "/tmp/blob.bin")))
    try:
        out, _ = await asyncio.wait_for(collect(get, close=False), 60)
    finally:
        await get.close()
    with tarfile.open(fileobj=io.BytesIO(out)) as tar:
        member = tar.extractfile("tmp/blob.bin")
        assert member is not None and member.read() == payload


async def test_port_forward_reaches_nginx_inside_the_pod(runner: PodRunner) -> None:
    p = await runner.run(WEB, "web")
    sandboxes = await runner.runtime.list_pod_sandboxes(pod_uid=p.metadata.uid)
    sandbox = sandboxes[0].id
    assert await runner.runtime.sandbox_netns(sandbox)  # its own namespace, not the node's
    for _ in range(50):
        try:
            reader, writer = await runner.runtime.port_forward(sandbox, 80)
            break
        except ContainerRuntimeError:
            await asyncio.sleep(0.1)  # nginx is still coming up
    else:
        raise AssertionError("nginx never listened on port 80 in the pod")
    writer.write(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
    await writer.drain()
    reply = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert reply.startswith(b"HTTP/1.1 200 OK"), reply[:200]
    with pytest.raises(ContainerRuntimeError) as refused:
        await runner.runtime.port_forward(sandbox, 81)
    assert "failed to connect to localhost:81 inside namespace" in str(refused.value)
    assert "connection refused" in str(refused.value)
