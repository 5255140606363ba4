"""`cp`: files and directories to and from a container, through tar (kubectl cp).

kubectl has no file API: `kubectl cp` runs `tar` in the container over an
interactive exec (pods/exec with stdin), and so does tinykube
(PodExecStream, cli/exec_stream.py), so the container needs a `tar`:

    tinykube cp notes.txt web:/tmp          (1) `test -d /tmp` in the pod: a directory,
                                                so the copy lands at /tmp/notes.txt
                                            (2) a tar of notes.txt named "notes.txt"
                                                -> stdin of `tar xmf - -C /tmp`
    tinykube cp web:/tmp/notes.txt copy.txt (1) `tar cf - /tmp/notes.txt`: its stdout
                                                is a tar with "tmp/notes.txt"
                                            (2) each member, "tmp/notes.txt" stripped,
                                                written under copy.txt

File specs are kubectl's: `[[NAMESPACE/]POD:]PATH`, the pod side named by
the colon (a namespace in the spec outranks -n). Exactly one side is a pod.
As kubectl does: a directory copies recursively; into the pod, an existing
directory as the destination receives the source by its base name, any
other destination is the new name; out of the pod, the source's path is
the prefix taken off every member, members that would land outside the
destination are skipped with a warning, and so are symlinks ("warning:
skipping symlink: ..."). Files are written with the default mode, as
kubectl's os.Create does. The remote `tar`'s stderr is passed on (GNU tar
says "Removing leading `/' from member names"); a remote tar that fails is
"error: command terminated with exit code 2", and that is our exit code.
Errors in kubectl's words: "source and destination are required", "one of
src or dest must be a local file specification" (and "... a remote ..."),
"filepath can not be empty", "notes.txt doesn't exist in local filesystem",
"filespec must match the canonical format: [[namespace/]pod:]file/path".

The archive is spooled (in memory up to SPOOL bytes, then a temporary file)
rather than piped, which keeps the tar code synchronous and simple.
"""

from __future__ import annotations

import os
import posixpath
import sys
import tarfile
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

import click

from apimachinery import errors
from cli import context, exec_stream
from cli.context import CommandError, Options, effective, namespace_option
from protos import kubelet_pb2

if TYPE_CHECKING:
    from apimachinery.client import Client

SPOOL = 16 * 1024 * 1024
FORMAT = "filespec must match the canonical format: [[namespace/]pod:]file/path"


@dataclass(frozen=True)
class FileSpec:
    """One side of a copy: a local path, or a path in NAMESPACE/POD."""

    path: str
    pod: str = ""
    namespace: str = ""


def parse_spec(arg: str) -> FileSpec:
    """kubectl's extractFileSpec: `PATH`, `POD:PATH`, `NS/POD:PATH`."""
    colon = arg.find(":")
    if colon == 0:
        raise CommandError(FORMAT)
    if colon < 0:
        return FileSpec(arg)
    pod, path = arg[:colon], arg[colon + 1 :]
    pieces = pod.split("/")
    if len(pieces) == 1:
        return FileSpec(path, pieces[0])
    if len(pieces) == 2:
        return FileSpec(path, pieces[1], pieces[0])
    raise CommandError(FORMAT)


def strip_shortcuts(path: str) -> str:
    """kubectl's stripPathShortcuts: no leading "../", "." or ".." alone, no leading "/"."""
    while path.startswith("../"):
        path = path[3:]
    if path in (".", ".."):
        return ""
    return path[1:] if path.startswith("/") else path


def make_tar(source: str, name: str, out: IO[bytes]) -> None:
    """A tar of `source` (file or directory, recursively, symlinks as links) named `name`."""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.add(source, arcname=name)


def untar(archive: IO[bytes], prefix: str, dest: str) -> None:
    """Members of `archive` under `dest`, `prefix` taken off their names (kubectl's untarAll)."""
    root = os.path.abspath(dest)
    with tarfile.open(fileobj=archive, mode="r|") as tar:
        for member in tar:
            if not member.name.startswith(prefix):
                raise CommandError("tar contents corrupted")
            rest = posixpath.normpath("/" + member.name[len(prefix) :]).lstrip("/")
            target = os.path.abspath(os.path.join(root, rest)) if rest else root
            if target != root and not target.startswith(root.rstrip("/") + "/"):
                context.echo_err(
                    f'warning: file "{target}" is outside target destination, skipping'
                )
                continue
            os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
            if member.isdir():
                os.makedirs(target, exist_ok=True)
            elif member.issym() or member.islnk():
                context.echo_err(f'warning: skipping symlink: "{target}" -> "{member.linkname}"')
            elif member.isfile():
                data = tar.extractfile(member)
                with open(target, "wb") as handle:
                    while data is not None and (chunk := data.read(exec_stream.CHUNK)):
                        handle.write(chunk)


async def _chunks(spool: IO[bytes]) -> AsyncIterator[bytes]:
    spool.seek(0)
    while chunk := spool.read(exec_stream.CHUNK):
        yield chunk


def _start(
    spec: FileSpec, namespace: str, container: str, command: list[str]
) -> kubelet_pb2.ExecStart:
    start = kubelet_pb2.ExecStart(
        namespace=spec.namespace or namespace, pod=spec.pod, container=container, command=command
    )
    start.stdout = start.stderr = True
    return start


def _to_stderr(data: bytes) -> None:
    sys.stderr.buffer.write(data)
    sys.stderr.flush()


def _failed(code: int) -> int:
    context.echo_err(f"error: command terminated with exit code {code}")
    return code


async def copy_to_pod(
    client: Client, namespace: str, src: str, dest: FileSpec, container: str, no_preserve: bool
) -> int:
    target = dest.path
    ns = dest.namespace or namespace
    try:
        probe = await client.pod_exec(dest.pod, ["test", "-d", target], ns, container=container)
        if probe.exit_code == 0:  # a directory: the source goes in by its name
            target = posixpath.join(target, os.path.basename(os.path.normpath(src)))
    except errors.StatusError:
        pass  # as kubectl: not known to be a directory; the copy itself reports the error
    command = ["tar", "xmf", "-"]
    if no_preserve:
        command = ["tar", "--no-same-permissions", "--no-same-owner", "-xmf", "-"]
    directory = posixpath.dirname(target)
    if directory:
        command += ["-C", directory]
    start = _start(dest, namespace, container, command)
    start.stdin = True
    with tempfile.SpooledTemporaryFile(SPOOL) as spool:
        make_tar(src, posixpath.basename(target) or target, spool)
        code = await exec_stream.exec_session(
            client, start, _chunks(spool), lambda _: None, _to_stderr
        )
    return _failed(code) if code else 0


async def copy_from_pod(
    client: Client, namespace: str, src: FileSpec, dest: str, container: str
) -> int:
    start = _start(src, namespace, container, ["tar", "cf", "-", src.path])
    with tempfile.SpooledTemporaryFile(SPOOL) as spool:
        code = await exec_stream.exec_session(client, start, None, spool.write, _to_stderr)
        sys.stderr.flush()
        if code:
            return _failed(code)
        spool.seek(0)
        prefix = strip_shortcuts(posixpath.normpath(src.path.lstrip("/")))
        try:
            untar(spool, prefix, dest)
        except (tarfile.TarError, OSError) as exc:
            raise CommandError(str(exc)) from None
    return 0


def plan(args: tuple[str, ...]) -> tuple[FileSpec, FileSpec]:
    """The two file specs, checked in kubectl's order (CommandError in its words)."""
    if len(args) != 2:
        raise CommandError("source and destination are required")
    src, dest = parse_spec(args[0]), parse_spec(args[1])
    if src.pod and dest.pod:
        raise CommandError("one of src or dest must be a local file specification")
    if not src.path or not dest.path:
        raise CommandError("filepath can not be empty")
    if not src.pod and not dest.pod:
        raise CommandError("one of src or dest must be a remote file specification")
    if dest.pod and not os.path.lexists(src.path):
        raise CommandError(f"{src.path} doesn't exist in local filesystem")
    return src, dest


@click.command("cp")
@click.argument("args", nargs=-1)
@click.option("-c", "--container", default="", help="The container (default: the only one).")
@click.option(
    "--no-preserve", is_flag=True, help="Do not keep ownership and permissions in the container."
)
@namespace_option
@click.pass_obj
def cp(
    opts: Options,
    args: tuple[str, ...],
    container: str,
    no_preserve: bool,
    namespace: str | None,
) -> None:
    """Copy files and directories to and from containers."""
    opts = effective(opts, namespace)
    try:
        src, dest = plan(args)
    except CommandError as err:
        context.echo_err(f"error: {err}")
        raise click.exceptions.Exit(1) from None

    async def copy(client: Client) -> int:
        if src.pod:
            return await copy_from_pod(client, opts.namespace, src, dest.path, container)
        return await copy_to_pod(client, opts.namespace, src.path, dest, container, no_preserve)

    context.exit_with(context.run(opts, copy))
