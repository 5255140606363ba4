"""Container lifecycle hooks: postStart and preStop handlers (Kubernetes' lifecycle/handlers.go).

A container's `lifecycle` names up to two handlers the kubelet runs itself:

    postStart   right after StartContainer, before the kubelet goes on (the
                next container of the sync, the next init container): the
                container counts as started only once it returns. If it
                fails, the container is killed (event Warning
                FailedPostStartHook with the handler's message, then Killing
                "FailedPostStartHook"), its start is reported as failed with
                reason PostStartHookError, and restartPolicy with
                CrashLoopBackOff decides what happens next -- as for a crash.
    preStop     before the stop signal (kuberuntime_container.ContainerKiller),
                within the grace period; a failure is an event
                (FailedPreStopHook) and the stop goes on.

What a handler does, and when it fails (`run_handler`):

    exec       CRI ExecSync of the command in the container (no shell);
               fails on a non-zero exit, a timeout or a runtime error
    httpGet    a GET to host (default: the pod's IP; the node's for a
               hostNetwork pod) : port + path; fails only if no answer can be
               had (refused, timed out) -- the status code is not looked at,
               as in Kubernetes
    sleep      waits that many seconds (cut short by the time limit)
    tcpSocket  accepted by the API for old manifests, but never run: it fails
               with "Cannot run handler: invalid handler", as in Kubernetes

The messages are Kubernetes' own, e.g. for `exec: [sh, -c, "exit 3"]`:

    Exec lifecycle hook ([sh -c exit 3]) for Container "web" in Pod
    "web_default(<uid>)" failed - error: command 'sh -c exit 3' exited with 3: ,
    message: ""

Kubernetes gives a postStart hook no deadline at all, so a hook that hangs
holds the pod's worker forever; here it is bounded by POST_START_TIMEOUT.
"""

from __future__ import annotations

import asyncio
import json

from kubelet import errors
from kubelet.prober.prober import Result, http_get, resolve_port
from kubelet.runtime.interface import ContainerRuntime
from protos import core_pb2

# The longest a postStart hook may take before it counts as failed.
POST_START_TIMEOUT = 120.0


class PostStartHookError(errors.ContainerRuntimeError):
    """The postStart hook failed, and the container was killed (ErrPostStartHook)."""

    reason = "PostStartHookError"


def _go_quote(text: str) -> str:
    """Go's %q of a string, near enough: double quotes, escapes for quotes and controls."""
    return json.dumps(text, ensure_ascii=False)


def _pod_text(pod: core_pb2.Pod) -> str:
    meta = pod.metadata
    return f"{meta.name}_{meta.namespace}({meta.uid})"


async def _exec(
    runtime: ContainerRuntime, container_id: str, command: list[str], timeout: float
) -> tuple[str, str]:
    """(error, output) of an exec handler; error "" on success."""
    joined = " ".join(command)
    try:
        result = await runtime.exec_sync(container_id, command, timeout)
    except errors.ExecTimeout:
        return f"command '{joined}' timed out after {timeout:g}s", ""
    except errors.ContainerRuntimeError as exc:
        return str(exc), ""
    output = (result.stdout + result.stderr).decode("utf-8", "replace")
    if result.exit_code != 0:
        stderr = result.stderr.decode("utf-8", "replace")
        return f"command '{joined}' exited with {result.exit_code}: {stderr}", output
    return "", output


async def run_handler(
    runtime: ContainerRuntime,
    handler: core_pb2.LifecycleHandler,
    pod: core_pb2.Pod,
    spec: core_pb2.Container,
    container_id: str,
    pod_ip: str,
    timeout: float,
) -> str:
    """Run one postStart/preStop handler; "" if it succeeded, else the event's message."""
    who = f"for Container {_go_quote(spec.name)} in Pod {_go_quote(_pod_text(pod))}"
    if handler.HasField("exec"):
        command = list(handler.exec.command)
        error, output = await _exec(runtime, container_id, command, timeout)
        if not error:
            return ""
        shown = "[" + " ".join(command) + "]"
        return (
            f"Exec lifecycle hook ({shown}) {who} failed - error: {error}, "
            f"message: {_go_quote(output)}"
        )
    if handler.HasField("http_get"):
        action = handler.http_get
        try:
            port = resolve_port(action.port, spec)
        except ValueError as exc:
            return f"HTTP lifecycle hook ({action.path}) {who} failed - error: {exc}"
        outcome = await http_get(
            action.host or pod_ip, port, action.path, scheme=action.scheme, timeout=timeout
        )
        answered = outcome.result == Result.SUCCESS or outcome.output.startswith("HTTP probe")
        if answered:  # any status code will do: only a request that got no answer fails
            return ""
        return f"HTTP lifecycle hook ({action.path}) {who} failed - error: {outcome.output}"
    if handler.HasField("sleep"):
        await asyncio.sleep(max(0.0, min(float(handler.sleep.seconds), timeout)))
        return ""
    what = "tcpSocket" if handler.HasField("tcp_socket") else "no action"
    return f"Cannot run handler: invalid handler: {what} is not a supported lifecycle handler"


async def post_start(
    runtime: ContainerRuntime,
    pod: core_pb2.Pod,
    spec: core_pb2.Container,
    container_id: str,
    pod_ip: str,
) -> str:
    """The container's postStart hook, if it has one: "" on success, else the message."""
    if not spec.lifecycle.HasField("post_start"):
        return ""
    handler = spec.lifecycle.post_start
    return await run_handler(runtime, handler, pod, spec, container_id, pod_ip, POST_START_TIMEOUT)
