"""A netlink socket inside a pod's network namespace, made by this thread alone: setns(2) and back.

The plugin talks to two network namespaces at once: the node's (the bridge,
the node end of the veth) and the pod's (eth0, its address and route). A
netlink socket belongs to the namespace its creator was in when it called
socket(2), and keeps it: so to get a socket in the pod's namespace, the
calling thread enters that namespace, creates the socket, and goes back.

    own = open("/proc/thread-self/ns/net")    # where this thread is now
    setns(open(CNI_NETNS), CLONE_NEWNET)      # the pod's namespace, this thread only
    ipr = IPRoute()                           # its netlink socket: the pod's
    setns(own, CLONE_NEWNET)                  # back; ipr still talks to the pod's

setns(2) with CLONE_NEWNET changes only the calling thread, so this is safe in
the network agent, where many CNI requests run at once, each on a thread of
its own (server.py), beside the agent's other threads: none of them sees the
switch. (Go programs must lock the goroutine to its OS thread for the same
trick; a Python thread is an OS thread.) pyroute2's own `IPRoute(netns=...)`
does it by forking a child that sends the socket back -- fork() in a
multi-threaded process that also runs gRPC is what this avoids, and it is
slower (9 ms against 2 ms here).

Failure modes: CNI_NETNS missing -> ContainerUnknown; a path that is no
network namespace (setns says EINVAL) -> InvalidEnvironment; going back fails
(it cannot, short of losing CAP_SYS_ADMIN between the two calls) -> the
thread would be stranded in the pod's namespace, so the process aborts rather
than let it touch the node's links by mistake.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from collections.abc import Callable, Iterator
from typing import TypeVar

from netplugin.cni.errors import ContainerUnknown, InvalidEnvironment

CLONE_NEWNET = 0x40000000
T = TypeVar("T")

_libc: ctypes.CDLL | None = None


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace open at `fd` (libc's setns: Python
    has os.setns only from 3.12)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def made_in(netns: str, make: Callable[[], T]) -> T:
    """`make()` run with this thread in `netns` (a /run/netns/... or /proc/PID/ns/net path)."""
    try:
        target = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as e:
        raise ContainerUnknown(
            f"network namespace {netns} does not exist",
            "CNI_NETNS names a path that is not there: the sandbox is gone",
        ) from e
    with contextlib.ExitStack() as close:
        close.callback(os.close, target)
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        close.callback(os.close, own)
        try:
            setns(target)
        except OSError as e:
            if e.errno == errno.EINVAL:
                raise InvalidEnvironment(
                    f"CNI_NETNS {netns} is not a network namespace", str(e)
                ) from e
            raise
        with _back_to(own):
            return make()
    raise AssertionError("unreachable")  # for mypy: the with block returns or raises


@contextlib.contextmanager
def _back_to(own: int) -> Iterator[None]:
    try:
        yield
    finally:
        try:
            setns(own)
        except OSError:
            os.abort()  # a thread stranded in a pod's namespace must not go on
