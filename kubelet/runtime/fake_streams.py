"""The fake runtime's streaming exec and port-forward: enough of a process to test the pipes.

Nothing runs on a hollow node, so the fake's exec sessions are played from
memory, by the command's first words (the rest answer as the fake's
exec_sync does, `execs`/`exec_handler` included, without reading stdin):

    cat                     echoes stdin to stdout until stdin closes, exit 0
    tar cf - PATH           a tar of the container's `files` at or under PATH
                            (names without the leading '/', as GNU tar writes them);
                            "tar: PATH: Cannot stat: No such file or directory", exit 2
    tar xmf - -C DIR        reads a tar from stdin until it closes and stores each
                            regular file as files[(container, DIR/name)]
    anything else           exec_sync's answer: its stdout, stderr and exit code

`kubectl cp` runs exactly those two tar commands, so `tinykube cp` works
against a hollow node too. A resize is recorded in `calls` as
("resize", container_id, width, height).

Port-forward: a port that one of the sandbox's containers declares
(`ports[].containerPort`) answers as an echo server over a socket pair --
what a test's client writes comes back -- and any other port is refused with
the real runtime's sentence (netns_dial.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import posixpath
import socket
import tarfile
from collections.abc import AsyncIterator, Callable
from typing import Any

from kubelet.errors import ContainerRuntimeError
from kubelet.runtime.interface import ExecResult
from kubelet.runtime.streaming import STDERR, STDOUT, ExecOptions, ExecSession

Files = dict[tuple[str, str], bytes]


class FakeExecSession(ExecSession):
    """One played exec: output queued as it is "written", an exit code at the end."""

    def __init__(self, options: ExecOptions, record: Callable[..., None]) -> None:
        self.options = options
        self._record = record
        self._out: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()
        self._code = 0
        self._stdin = bytearray()
        self._stdin_open = options.stdin
        self._on_close: Callable[[bytes], ExecResult] | None = None
        self._echo = False

    # How the session plays (set by `play`):
    def echo(self) -> None:
        self._echo = True
        if not self._stdin_open:
            self._finish(ExecResult(0))

    def after_stdin(self, fn: Callable[[bytes], ExecResult]) -> None:
        self._on_close = fn
        if not self._stdin_open:
            self._finish(fn(b""))

    def answer(self, result: ExecResult) -> None:
        """Done at once, whatever stdin brings."""
        self._stdin_open = False
        self._finish(result)

    def _finish(self, result: ExecResult) -> None:
        stdout_name = STDOUT
        stderr_name = STDOUT if self.options.tty else STDERR
        if result.stdout and self.options.stdout:
            self._out.put_nowait((stdout_name, result.stdout))
        if result.stderr and (self.options.stderr or self.options.tty):
            self._out.put_nowait((stderr_name, result.stderr))
        self._code = result.exit_code
        self._out.put_nowait(None)

    async def write_stdin(self, data: bytes) -> None:
        if not self._stdin_open:
            return
        if self._echo:
            self._out.put_nowait((STDOUT, bytes(data)))
        else:
            self._stdin.extend(data)

    async def close_stdin(self) -> None:
        if not self._stdin_open:
            return
        self._stdin_open = False
        if self._echo:
            self._finish(ExecResult(0))
        elif self._on_close is not None:
            self._finish(self._on_close(bytes(self._stdin)))

    async def resize(self, width: int, height: int) -> None:
        self._record("resize", width, height)

    async def output(self) -> AsyncIterator[tuple[str, bytes]]:
        while (item := await self._out.get()) is not None:
            yield item

    async def exit_code(self) -> int:
        return self._code

    async def close(self) -> None:
        self._stdin_open = False


def tar_create(files: Files, container: str, path: str) -> ExecResult:
    """`tar cf - PATH` over the container's files."""
    root = posixpath.normpath(path)
    chosen = sorted(
        (p, data)
        for (name, p), data in files.items()
        if name == container and (p == root or p.startswith(root.rstrip("/") + "/"))
    )
    if not chosen:
        message = f"tar: {path}: Cannot stat: No such file or directory\n"
        return ExecResult(2, b"", message.encode())
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for p, data in chosen:
            info = tarfile.TarInfo(p.lstrip("/"))
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    notice = b"tar: Removing leading `/' from member names\n" if root.startswith("/") else b""
    return ExecResult(0, out.getvalue(), notice)


def tar_extract(files: Files, container: str, directory: str, archive: bytes) -> ExecResult:
    """`tar xmf - -C DIR` from stdin's bytes into the container's files."""
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
            for member in tar.getmembers():
                if not member.isfile():
                    continue
                handle = tar.extractfile(member)
                data = handle.read() if handle is not None else b""
                target = posixpath.normpath(posixpath.join(directory, member.name))
                files[(container, target)] = data
    except tarfile.TarError as exc:
        return ExecResult(2, b"", f"tar: {exc}\n".encode())
    return ExecResult(0)


def play(
    session: FakeExecSession,
    files: Files,
    container: str,
    run_sync: Callable[[tuple[str, ...]], ExecResult],
) -> None:
    """Choose how `session` plays its command (the table in the module docstring)."""
    cmd = session.options.command
    if cmd == ("cat",):
        session.echo()
    elif len(cmd) == 4 and cmd[:3] == ("tar", "cf", "-"):
        session.answer(tar_create(files, container, cmd[3]))
    elif len(cmd) == 5 and cmd[:4] == ("tar", "xmf", "-", "-C"):
        session.after_stdin(lambda data: tar_extract(files, container, cmd[4], data))
    else:
        session.answer(run_sync(cmd))


async def echo_connection(declared: set[int], port: int, sandbox_id: str) -> Any:
    """(reader, writer) to an echo of `port` if declared, else the real runtime's refusal."""
    if port not in declared:
        raise ContainerRuntimeError(
            f"failed to connect to localhost:{port} inside namespace "
            f'"fake-netns-{sandbox_id}", IPv4: dial tcp4 127.0.0.1:{port}: connect: '
            f"connection refused IPv6 dial tcp6 [::1]:{port}: connect: connection refused"
        )
    ours, theirs = socket.socketpair()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.write_eof()
        writer.close()

    reader, writer = await asyncio.open_connection(sock=theirs)
    task = asyncio.ensure_future(serve(reader, writer))
    _ECHOES.add(task)
    task.add_done_callback(_ECHOES.discard)
    return await asyncio.open_connection(sock=ours)


_ECHOES: set[asyncio.Future[None]] = set()
