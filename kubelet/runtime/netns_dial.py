"""A TCP connection made inside a pod's network namespace: the heart of CRI PortForward.

`kubectl port-forward pod/web 8080:80` must reach port 80 of the pod even
when nothing is published on the node, and even when the server inside
listens on 127.0.0.1 only. Kubernetes' runtimes (containerd's CRI
PortForward, dockershim before it) therefore dial "localhost:80" from inside
the sandbox's network namespace. That works because a socket belongs to the
namespace it was *created* in, for its whole life, wherever the file
descriptor travels afterwards:

    thread T (made for this one connection)
        setns(open("/var/run/netns/cni-1234"), CLONE_NEWNET)   only T moves: the
                                                               namespace is per thread
        s = socket(); s.connect(("127.0.0.1", 80))            made in the pod's netns
        setns(back to the node's)                              T ends anyway
    the event loop's thread: asyncio.open_connection(sock=s)   bytes flow; s stays in the pod

A fresh thread per connection (not the asyncio default executor) keeps the
event loop's own threads in the node's namespace whatever happens: should
returning fail, only that thread was ever elsewhere, and it ends.

Which namespace: `ContainerRuntime.sandbox_netns(sandbox_id)` -- containerd's
PodSandboxStatus (its verbose info names the namespace's path, or the
sandbox task's pid for /proc/PID/ns/net), Docker's `SandboxKey` of the pause
container. An empty path means the node's own namespace (a hostNetwork pod):
dialled directly.

Errors keep containerd's wording, so `kubectl port-forward` users see the
sentence they know:

    failed to connect to localhost:80 inside namespace "/var/run/netns/cni-1234",
    IPv4: dial tcp4 127.0.0.1:80: connect: connection refused IPv6 dial tcp6 [::1]:80: ...
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import socket
import threading

from kubelet.errors import ContainerRuntimeError

CLONE_NEWNET = 0x40000000
CONNECT_TIMEOUT = 10.0


def _setns(fd: int, what: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns into {what}: {os.strerror(errno)}")


def _dial(host: str, family: socket.AddressFamily, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        sock.connect((host, port))
        sock.settimeout(None)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _reason(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connect: connection refused"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "i/o timeout"
    return f"connect: {exc.strerror or exc}".lower()


def connect_local(port: int, netns: str) -> socket.socket:
    """localhost:port from the calling thread's namespace: 127.0.0.1, else ::1."""
    try:
        return _dial("127.0.0.1", socket.AF_INET, port)
    except OSError as v4:
        try:
            return _dial("::1", socket.AF_INET6, port)
        except OSError as v6:
            where = f"inside namespace {netns!r}" if netns else "on the node"
            where = where.replace("'", '"')
            raise ContainerRuntimeError(
                f"failed to connect to localhost:{port} {where}, "
                f"IPv4: dial tcp4 127.0.0.1:{port}: {_reason(v4)} "
                f"IPv6 dial tcp6 [::1]:{port}: {_reason(v6)}"
            ) from None


def connect_in_netns(netns: str, port: int) -> socket.socket:
    """Blocking: a connected socket to localhost:port made inside `netns` (see above)."""
    if not netns:
        return connect_local(port, "")
    result: list[socket.socket] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
            try:
                target = os.open(netns, os.O_RDONLY)
            except OSError as exc:
                os.close(own)
                raise ContainerRuntimeError(
                    f"network namespace {netns} of the sandbox is gone: {exc.strerror}"
                ) from None
            try:
                _setns(target, netns)
                try:
                    result.append(connect_local(port, netns))
                finally:
                    _setns(own, "the node's network namespace")
            finally:
                os.close(target)
                os.close(own)
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"portforward-{port}", daemon=True)
    thread.start()
    thread.join()
    if failure:
        exc = failure[0]
        if isinstance(exc, OSError) and not isinstance(exc, ContainerRuntimeError):
            raise ContainerRuntimeError(f"port forward to {port} in {netns}: {exc}") from None
        raise exc
    return result[0]


async def open_connection(
    netns: str, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """asyncio streams over a connection to localhost:port inside `netns` ("" = the node)."""
    sock = await asyncio.to_thread(connect_in_netns, netns, port)
    try:
        return await asyncio.open_connection(sock=sock)
    except BaseException:
        sock.close()
        raise
