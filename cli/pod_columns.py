"""The pod READY, STATUS and RESTARTS columns, as kubectl computes them (printPod in
pkg/printers/internalversion/printers.go, Kubernetes 1.29 with native sidecars).

None of the three is a field of the pod: each is a summary of its container
statuses, taken in one walk.

READY is `ready/total`. total counts the app containers *and the sidecars*
(init containers with restartPolicy Always), since those run beside the
app; ready counts the running, ready app containers and the started, ready
sidecars. One app container and one sidecar, both up: `2/2`.

STATUS:

1. start from `status.phase` ("Running"), or `status.reason` when set
   ("Evicted");
2. walk the init containers in order, skipping the ones that succeeded and
   the sidecars that have started: a failed one gives `Init:<reason>` /
   `Init:ExitCode:N`, a waiting one `Init:<reason>`, one still running (or a
   sidecar not started yet) `Init:i/n`; stop at the first such;
3. if initialisation is over (or the Initialized condition is True: the
   pod was initialized and a sidecar is merely restarting), walk the app
   containers last to first: a waiting reason (`ContainerCreating`,
   `CrashLoopBackOff`, `ErrImagePull`) or a terminated reason (`Completed`,
   `Error`, `OOMKilled`) replaces the phase; so the *first* container's
   trouble wins;
4. `Completed` while some container still runs and is ready is shown as
   `Running` (if the pod is Ready) or `NotReady`;
5. a deletion timestamp makes it `Terminating` whatever else is true.

RESTARTS adds up the restart counts, `3 (5m ago)` with the newest
termination seen. While the pod initializes every init container counts;
once initialized, only the sidecars' and the app containers' restarts do.

Example: init containers [log-shipper (sidecar), migrate], app [web].
migrate running: `1/2  Init:1/2`. migrate done, web running and ready,
log-shipper started and ready: `2/2  Running`. log-shipper crashes and waits
out its backoff: `1/2  Init:CrashLoopBackOff`, RESTARTS 1 -- kubectl's own
reading: a sidecar not started is looked at as an init container, and the
app containers, all running, do not replace that reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cli.cells import PrintContext, timestamp_seconds
from cli.cells import human_duration as _human


def _is_sidecar(spec: Any) -> bool:
    return bool(spec.HasField("restart_policy") and spec.restart_policy == "Always")


@dataclass
class _Summary:
    ready: int = 0
    total: int = 0
    reason: str = ""
    restarts: int = 0
    last_restart: float | None = None
    sidecar_restarts: int = 0
    last_sidecar_restart: float | None = None


def _finished_at(cs: Any) -> float | None:
    if not cs.last_state.HasField("terminated"):
        return None
    return timestamp_seconds(cs.last_state.terminated, "finished_at")


def _later(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _init_reason(cs: Any, index: int, n_init: int) -> str:
    """STATUS for the first init container not done yet (step 2)."""
    state = cs.state
    if state.HasField("terminated"):
        t = state.terminated
        if t.reason:
            return f"Init:{t.reason}"
        return f"Init:Signal:{t.signal}" if t.signal else f"Init:ExitCode:{t.exit_code}"
    if state.HasField("waiting") and state.waiting.reason not in ("", "PodInitializing"):
        return f"Init:{state.waiting.reason}"
    return f"Init:{index}/{n_init}"


def _walk_init(pod: Any, out: _Summary) -> bool:
    """Step 2 and the sidecars' part of READY and RESTARTS; True while initializing."""
    specs = {c.name: c for c in pod.spec.init_containers}
    for i, cs in enumerate(pod.status.init_container_statuses):
        out.restarts += cs.restart_count
        out.last_restart = _later(out.last_restart, _finished_at(cs))
        sidecar = cs.name in specs and _is_sidecar(specs[cs.name])
        if sidecar:
            out.sidecar_restarts += cs.restart_count
            out.last_sidecar_restart = _later(out.last_sidecar_restart, _finished_at(cs))
        state = cs.state
        if state.HasField("terminated") and state.terminated.exit_code == 0:
            continue
        if sidecar and cs.started:
            out.ready += bool(cs.ready)
            continue
        out.reason = _init_reason(cs, i, len(pod.spec.init_containers))
        return True
    return False


def _walk_apps(pod: Any, out: _Summary) -> None:
    """Step 3 and 4, and the app containers' part of READY and RESTARTS."""
    status = pod.status
    out.restarts = out.sidecar_restarts
    out.last_restart = out.last_sidecar_restart
    has_running = False
    for cs in reversed(status.container_statuses):
        out.restarts += cs.restart_count
        out.last_restart = _later(out.last_restart, _finished_at(cs))
        state = cs.state
        if state.HasField("waiting") and state.waiting.reason:
            out.reason = state.waiting.reason
        elif state.HasField("terminated") and state.terminated.reason:
            out.reason = state.terminated.reason
        elif state.HasField("terminated"):
            t = state.terminated
            out.reason = f"Signal:{t.signal}" if t.signal else f"ExitCode:{t.exit_code}"
        elif cs.ready and state.HasField("running"):
            has_running = True
            out.ready += 1
    if out.reason == "Completed" and has_running:
        ready = any(c.type == "Ready" and c.status == "True" for c in status.conditions)
        out.reason = "Running" if ready else "NotReady"


def pod_summary(pod: Any) -> _Summary:
    """READY, STATUS and RESTARTS of one pod, from one walk (see the module docstring)."""
    status = pod.status
    out = _Summary(reason=status.reason or status.phase)
    out.total = len(pod.spec.containers) + sum(
        1 for c in pod.spec.init_containers if _is_sidecar(c)
    )
    initializing = _walk_init(pod, out)
    initialized = any(c.type == "Initialized" and c.status == "True" for c in status.conditions)
    if not initializing or initialized:
        _walk_apps(pod, out)
    if pod.metadata.HasField("deletion_timestamp"):
        out.reason = "Unknown" if status.reason == "NodeLost" else "Terminating"
    return out


def pod_status(pod: Any) -> str:
    """kubectl's STATUS for a pod (see the module docstring for the steps)."""
    return pod_summary(pod).reason or "Pending"


def pod_ready(pod: Any, ctx: PrintContext) -> str:
    summary = pod_summary(pod)
    return f"{summary.ready}/{summary.total}"


def pod_restarts(pod: Any, ctx: PrintContext) -> str:
    """`0`, or `3 (5m ago)` counting from the last termination kubectl can see."""
    summary = pod_summary(pod)
    if summary.restarts and summary.last_restart is not None:
        return f"{summary.restarts} ({_human(ctx.now - summary.last_restart)} ago)"
    return str(summary.restarts)
