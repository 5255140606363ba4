"""Termination messages: what a container says about its own end (Kubernetes'
terminationMessagePath / terminationMessagePolicy).

A container may write why it stopped to a file, `/dev/termination-log` by
default (`terminationMessagePath`); once it has exited, the kubelet puts
that text into `state.terminated.message` (and `lastState.terminated.message`
after a restart), where `kubectl describe` and controllers can read it
without the container's logs.

How it gets out of the container, as Kubernetes does it (makeMounts and
getTerminationMessage in kuberuntime):

1. before creating the container, the kubelet makes an empty file of its
   own on the host, `<root-dir>/pods/<uid>/containers/<name>/<attempt as
   8 hex digits>`, mode 0666 (the container may run as any user), and
   bind-mounts it at terminationMessagePath -- a fresh file per container
   instance, so a restarted container's lastState keeps its own message;
   the path and policy also go on the container as the annotations
   `io.kubernetes.container.terminationMessagePath` / `...Policy`, so the
   kubelet reads them back from the runtime, not from a spec that may have
   changed;
2. once the runtime reports the container exited, the kubelet reads the
   file's last 4096 bytes (MaxContainerTerminationMessageLength);
3. with `terminationMessagePolicy: FallbackToLogsOnError`, an empty (or
   missing) file and a non-zero exit code, the message is the last 80
   lines of the container's log instead, cut to 2048 bytes;
4. the runtime's own message, if any, comes first: `<runtime's>: <ours>`.

An exited container never changes, so each message is read once and kept
(per pod, only for the containers that still exist). A hollow node (the
fake runtime) writes no files: there only the log fallback gives a message.

Worked example: a container running `echo "config missing" >
/dev/termination-log; exit 3`, policy File, shows

    state: {terminated: {exitCode: 3, reason: Error, message: "config missing\\n"}}

and the same container under FallbackToLogsOnError with nothing in the file
but `echo boom >&2; exit 1` shows `message: "boom\\n"`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from kubelet import errors
from kubelet.runtime.interface import (
    Container,
    ContainerConfig,
    ContainerRuntime,
    ContainerState,
    Mount,
)
from protos import core_pb2

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 4096  # of the file: its end
MAX_LOG_LINES = 80  # of the log, for FallbackToLogsOnError
MAX_LOG_BYTES = 2048

PATH_ANNOTATION = "io.kubernetes.container.terminationMessagePath"
POLICY_ANNOTATION = "io.kubernetes.container.terminationMessagePolicy"
FALLBACK_TO_LOGS = "FallbackToLogsOnError"


def message_file(pod_dir: Path, name: str, attempt: int) -> Path:
    """The host file mounted at one container instance's terminationMessagePath."""
    return pod_dir / "containers" / name / f"{attempt:08x}"


def _tail(path: Path, limit: int) -> bytes:
    with path.open("rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - limit))
        return f.read()


class TerminationMessages:
    """Mounts each container's message file, and reads the messages of exited containers.

    `pod_dir(uid)` is the pod's directory on the host; None on a hollow node.
    """

    def __init__(
        self, runtime: ContainerRuntime, pod_dir: Callable[[str], Path] | None = None
    ) -> None:
        self.runtime = runtime
        self.pod_dir = pod_dir
        self._read: dict[str, dict[str, str]] = {}  # pod uid -> container id -> message

    def prepare(
        self, pod: core_pb2.Pod, spec: core_pb2.Container, config: ContainerConfig
    ) -> ContainerConfig:
        """`config` with the message file made and mounted, and the annotations set."""
        annotations = dict(config.annotations)
        annotations[PATH_ANNOTATION] = spec.termination_message_path
        annotations[POLICY_ANNOTATION] = spec.termination_message_policy or "File"
        mounts = config.mounts
        if self.pod_dir is not None and spec.termination_message_path:
            host = message_file(self.pod_dir(pod.metadata.uid), spec.name, config.attempt)
            host.parent.mkdir(parents=True, exist_ok=True)
            host.write_bytes(b"")  # fresh: a reused attempt number must not show an old message
            host.chmod(0o666)
            mounts = (*mounts, Mount(spec.termination_message_path, str(host)))
        return replace(config, annotations=annotations, mounts=mounts)

    async def fill(self, pod: core_pb2.Pod, containers: list[Container]) -> None:
        """Add the termination message to each exited container's `message`."""
        known = self._read.get(pod.metadata.uid, {})
        read: dict[str, str] = {}
        for c in containers:
            if c.state != ContainerState.EXITED:
                continue
            text = known[c.id] if c.id in known else await self._message(pod, c)
            read[c.id] = text
            if text:
                c.message = f"{c.message}: {text}" if c.message else text
        if read:
            self._read[pod.metadata.uid] = read
        else:
            self._read.pop(pod.metadata.uid, None)

    def forget(self, pod_uid: str, container: Container) -> None:
        """A removed container: its message file and what was read of it go."""
        self._read.get(pod_uid, {}).pop(container.id, None)
        if self.pod_dir is not None and container.annotations.get(PATH_ANNOTATION):
            path = message_file(self.pod_dir(pod_uid), container.name, container.attempt)
            with contextlib.suppress(OSError):
                path.unlink()

    def forget_pod(self, pod_uid: str) -> None:
        self._read.pop(pod_uid, None)

    async def _message(self, pod: core_pb2.Pod, c: Container) -> str:
        path = c.annotations.get(PATH_ANNOTATION, "")
        policy = c.annotations.get(POLICY_ANNOTATION, "")
        fallback = policy == FALLBACK_TO_LOGS and c.exit_code != 0
        fallback = fallback and c.reason != "ContainerCannotRun"
        text = ""
        if path and self.pod_dir is not None:
            host = message_file(self.pod_dir(pod.metadata.uid), c.name, c.attempt)
            try:
                data = await asyncio.to_thread(_tail, host, MAX_MESSAGE_BYTES)
            except FileNotFoundError:
                data = b""
            except OSError as exc:
                return f"Error on reading termination log {host}: {exc}"
            text = data.decode("utf-8", "replace")
        if text or not fallback:
            return text
        return await self._from_logs(c)

    async def _from_logs(self, c: Container) -> str:
        """The log's last MAX_LOG_LINES lines, at most MAX_LOG_BYTES of them."""
        out = bytearray()
        try:
            async for line in self.runtime.container_logs(c.id, tail=MAX_LOG_LINES):
                out += (line.text + "\n").encode()
        except errors.ContainerRuntimeError as exc:
            return f"Error on reading termination message from logs: {exc}"
        return bytes(out[:MAX_LOG_BYTES]).decode("utf-8", "replace")
