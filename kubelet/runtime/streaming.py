"""Streaming exec and port-forward: what a runtime hands the kubelet's streaming server.

CRI's streaming calls (Exec, Attach, PortForward) do not carry the bytes
themselves: each answers with a URL of the runtime's own streaming server,
and Kubernetes' kubelet hands that URL to the API server, which connects the
user's `kubectl exec -i` or `port-forward` to it. In tinykube the kubelet
keeps the connection itself and relays it over its gRPC ExecStream and
PortForward (kubelet/streams.py), so a runtime adapter only has to give it
two things:

    exec_stream(container_id, ExecOptions) -> ExecSession
        a started process with its stdin, stdout and stderr attached:

        containerd  CRI Exec -> URL; SPDY/3.1 to containerd's streaming server,
                    v4.channel.k8s.io (kubelet/runtime/cri_exec.py)
        docker      Engine API: POST /containers/ID/exec, then /exec/ID/start
                    upgraded to a raw socket (kubelet/runtime/docker_attach.py)
        fake        `cat` echoes stdin; other commands answer as exec_sync does

    port_forward(sandbox_id, port) -> (StreamReader, StreamWriter)
        a TCP connection to 127.0.0.1:port inside the sandbox's network
        namespace (kubelet/runtime/netns_dial.py, from `sandbox_netns`);
        the fake runtime answers a pod's declared ports with an echo

An ExecSession's contract:

* `output()` yields ("stdout" | "stderr", bytes) as the process writes, and
  ends when the process has closed its output (with a TTY there is only
  "stdout": the terminal merges both);
* `exit_code()` then answers the process's exit status; a command that
  could not be started answers the runtime's 126/127 and has already
  written the runtime's message to stderr, as ExecSync does;
* `write_stdin()` / `close_stdin()` feed the process (EOF on close);
  `resize()` sets a TTY's size (nothing without one);
* `close()` drops the session's connection: idempotent, and what the
  kubelet calls when its caller goes away. As in Kubernetes, a process
  that ignores its stdin's end may outlive the session.

A failure of the runtime itself (the streaming server unreachable, a
protocol error) raises ContainerRuntimeError from any of them.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass

STDOUT = "stdout"
STDERR = "stderr"


@dataclass(frozen=True)
class ExecOptions:
    """CRI ExecRequest: the command and which streams to attach (with `tty`, no stderr)."""

    command: tuple[str, ...]
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    tty: bool = False

    def __post_init__(self) -> None:
        if self.tty and self.stderr:  # a terminal has one output: stderr is merged into it
            object.__setattr__(self, "stderr", False)
        if not self.command:
            raise ValueError("an exec needs a command")
        if not (self.stdin or self.stdout or self.stderr):
            raise ValueError("an exec needs at least one of stdin, stdout and stderr")


class ExecSession(abc.ABC):
    """A started process with its streams attached; see the module docstring."""

    @abc.abstractmethod
    async def write_stdin(self, data: bytes) -> None: ...

    @abc.abstractmethod
    async def close_stdin(self) -> None: ...

    @abc.abstractmethod
    async def resize(self, width: int, height: int) -> None: ...

    @abc.abstractmethod
    def output(self) -> AsyncIterator[tuple[str, bytes]]: ...

    @abc.abstractmethod
    async def exit_code(self) -> int: ...

    @abc.abstractmethod
    async def close(self) -> None: ...


def not_started(message: str) -> int | None:
    """The exit code a runtime's "cannot start this command" message stands for, if it is
    one: 127 for a command not found, 126 for one that may not be run (as a shell says)."""
    lowered = message.lower()
    if "executable file not found" in lowered or "no such file" in lowered:
        return 127
    if "permission denied" in lowered:
        return 126
    return None
