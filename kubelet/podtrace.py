"""The kubelet's spans for a traced pod: SyncPod and the runtime calls in it, probes, status.

Kubernetes' kubelet traces its own work with OpenTelemetry: a `syncPod` span
whose children are the CRI calls (RunPodSandbox, PullImage, CreateContainer,
StartContainer). tinykube's does the same, under the span the scheduler's
Binding left on the pod (its `tinykube.io/trace-context`), so the kubelet's
part hangs in the trace of the change that made the pod:

    Bind (default-scheduler)                          the pod's stored context
      SyncPod (kubelet, node1)                        from the sync's start
        RunPodSandbox                                 CRI, the runtime's network
          CNI ADD (tinykube-cni)                      from the plugin's journal
        PullImage nginx:latest
        StartContainer web-app                        CreateContainer + StartContainer
        UpdatePodStatus Running, Ready                the write carries this span
      Probe readiness success                         (a pod with probes)
        UpdatePodStatus Ready                         ... on to the endpoints controller

Rules that keep the trace to real steps:

* SyncPod is started lazily, at its first action, with the sync's start
  time: a periodic sync that finds nothing to do records nothing.
* A status write's parent is the sync it is part of, else the probe result
  that caused it, else the pod's stored context; the write carries the new
  span, so the endpoints controller continues from it.
* A probe's span marks a result that *changed* (after its thresholds), not
  every attempt.
* CNI ADD. The runtime runs the plugin, not the kubelet (containerd's CRI
  plugin; for Docker, kubelet/runtime/cni_invoke.py). The plugin writes what
  it did to `<dataDir>/journal/<container id>.json` (netplugin/cni/main.py):
  times and the kernel changes as commands. After RunPodSandbox the kubelet
  reads the sandbox's entry and records it as a span of its own; the journal
  keeps one file per sandbox, removed by DEL.

Nothing here changes what the kubelet does; with tracing off every hook is a
no-op.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.trace import Span

from apimachinery import tracing
from apimachinery.tracecontext import TraceParent
from protos import core_pb2

log = logging.getLogger(__name__)

COMPONENT = "kubelet"
CNI_COMPONENT = "tinykube-cni"
JOURNAL = "journal"  # under the CNI plugin's dataDir
_LATEST_LIMIT = 4096


@dataclass
class _Settings:
    node: str = ""
    journal_dir: Path | None = None
    # The last span the kubelet made for each pod uid (a probe result, a status write).
    latest: OrderedDict[str, TraceParent] = field(default_factory=OrderedDict)


_settings = _Settings()


def configure(client: tracing.HasTarget, node: str) -> None:
    """Export through the kubelet's client; spans carry `node`."""
    tracing.configure(client, "kubelet")
    _settings.node = node


def use_cni_data_dir(data_dir: str) -> None:
    """Where the CNI plugin keeps its journal (its conflist's dataDir, `--cni-data-dir`)."""
    _settings.journal_dir = Path(data_dir) / JOURNAL


def _obj(pod: core_pb2.Pod) -> str:
    return f"pods/{pod.metadata.namespace}/{pod.metadata.name}"


def _remember(uid: str, parent: TraceParent | None) -> None:
    if parent is None:
        return
    _settings.latest[uid] = parent
    _settings.latest.move_to_end(uid)
    while len(_settings.latest) > _LATEST_LIMIT:
        _settings.latest.popitem(last=False)


def forget(uid: str) -> None:
    _settings.latest.pop(uid, None)


# ---- SyncPod --------------------------------------------------------------------------------


@dataclass
class _Sync:
    pod: core_pb2.Pod
    start_ns: int
    span: Span | None = None
    tried: bool = False
    done: list[str] = field(default_factory=list)  # the actions taken, for the one line
    sandbox: Span | None = None  # RunPodSandbox, the parent of the CNI ADD

    def materialize(self) -> Span | None:
        if not self.tried:
            self.tried = True
            self.span = tracing.start(
                "SyncPod",
                parent=self.pod,
                component=COMPONENT,
                node=_settings.node,
                obj=_obj(self.pod),
                start_time=self.start_ns,
            )
        return self.span


_sync: ContextVar[_Sync | None] = ContextVar("tinykube_pod_sync", default=None)


@contextmanager
def syncing(pod: core_pb2.Pod) -> Iterator[None]:
    """One sync of one pod (Kubelet.sync_pod): its SyncPod span, if it acts."""
    token = _sync.set(_Sync(pod, time.time_ns()))
    try:
        yield
    finally:
        sync = _sync.get()
        _sync.reset(token)
        if sync is not None and sync.span is not None:
            sync.span.set_attribute(tracing.WHY, "; ".join(sync.done) or "sync the pod")
            sync.span.end()


def _current(pod: core_pb2.Pod, *, start: bool = True) -> Span | None:
    """The pod's SyncPod in this task: started now if `start`, else only if it acted."""
    sync = _sync.get()
    if sync is None or sync.pod.metadata.uid != pod.metadata.uid:
        return None
    return sync.materialize() if start else sync.span


@contextmanager
def action(
    name: str,
    pod: core_pb2.Pod,
    why: str,
    attributes: dict[str, tracing.AttrValue] | None = None,
    label: str = "",
) -> Iterator[Span | None]:
    """A runtime call made for `pod`, as a child of its SyncPod (or of the pod's context);
    `label` is how the SyncPod's line names it."""
    parent: object = _current(pod) or pod
    with tracing.step(
        name,
        parent=parent,
        component=COMPONENT,
        node=_settings.node,
        obj=_obj(pod),
        why=why,
        attributes=attributes,
    ) as span:
        yield span
    sync = _sync.get()
    if span is not None and sync is not None:
        sync.done.append(label or name)


@contextmanager
def sandbox(pod: core_pb2.Pod, attempt: int) -> Iterator[None]:
    """RunPodSandbox: the pod's network namespace, its IP (the CNI ADD under it)."""
    why = f"attempt {attempt}: the pod's network namespace, its IP from the network plugin"
    with action("RunPodSandbox", pod, why) as span:
        sync = _sync.get()
        if sync is not None:
            sync.sandbox = span
        yield


@contextmanager
def pulling(pod: core_pb2.Pod, image: str, policy: str) -> Iterator[None]:
    """PullImage: the runtime fetches the image (the pull policy asked for it)."""
    why = f"imagePullPolicy {policy}: pull {image}"
    with action("PullImage", pod, why, {"tinykube.image": image}, f"PullImage {image}"):
        yield


@contextmanager
def starting(
    pod: core_pb2.Pod, spec: core_pb2.Container, attempt: int, sandbox_id: str
) -> Iterator[None]:
    """CreateContainer + StartContainer of one container, as one span."""
    why = f"{spec.name} ({spec.image}), attempt {attempt}, in sandbox {sandbox_id[:12]}"
    label = f"StartContainer {spec.name}"
    with action("StartContainer", pod, why, {"tinykube.container": spec.name}, label):
        yield


# ---- CNI ADD, from the plugin's journal -----------------------------------------------------


def read_journal(journal_dir: Path, container_id: str) -> dict[str, Any] | None:
    """The plugin's journal entry for one sandbox (see netplugin/cni/main.py), if readable."""
    try:
        entry = json.loads((journal_dir / f"{container_id}.json").read_text())
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) else None


def network_added(pod: core_pb2.Pod, sandbox_id: str) -> None:
    """After the sync's runtime step: the CNI ADD the runtime ran for the sandbox it created."""
    sync = _sync.get()
    span = sync.sandbox if sync is not None and sync.pod.metadata.uid == pod.metadata.uid else None
    if span is None or _settings.journal_dir is None or not sandbox_id:
        return
    entry = read_journal(_settings.journal_dir, sandbox_id)
    if entry is None:
        return  # not our plugin, a hollow node, or no journal: no span rather than a guess
    commands = [str(c) for c in entry.get("commands", [])]
    ip = str(entry.get("ip", ""))
    tracing.record(
        "CNI ADD",
        parent=span,
        start_ns=int(entry.get("start_ns", 0)),
        end_ns=int(entry.get("end_ns", 0)),
        component=CNI_COMPONENT,
        node=_settings.node,
        obj=f"pods/{entry.get('pod', '')}",
        why=f"{entry.get('ifname', 'eth0')} {ip} on the node's bridge: "
        f"{len(commands)} kernel change(s)",
        attributes={
            "tinykube.cni.commands": commands,
            "tinykube.cni.netns": entry.get("netns", ""),
        },
        error=str(entry.get("error", "")),
    )


# ---- status and probes ----------------------------------------------------------------------


@contextmanager
def status_write(pod: core_pb2.Pod, status: core_pb2.PodStatus) -> Iterator[None]:
    """The kubelet's status write for `pod`: a span the write carries on to the pod."""
    uid = pod.metadata.uid
    parent: object = _current(pod, start=False) or _settings.latest.pop(uid, None) or pod
    ready = next((c.status for c in status.conditions if c.type == "Ready"), "Unknown")
    why = f"phase {status.phase or 'Pending'}, Ready {ready}"
    if status.pod_ip:
        why += f", podIP {status.pod_ip}"
    with tracing.step(
        "UpdatePodStatus",
        parent=parent,
        component=COMPONENT,
        node=_settings.node,
        obj=_obj(pod),
        why=why,
    ) as span:
        yield
    _remember(uid, tracing.parent_of(span))


def probe_changed(
    pod: core_pb2.Pod,
    kind: str,
    container: str,
    result: str,
    output: str,
    start_ns: int,
) -> None:
    """A probe's result changed (after its thresholds): the cause of the next status write."""
    uid = pod.metadata.uid
    parent: object = _settings.latest.get(uid) or pod
    why = f"{kind} probe of {container}: {result}"
    if output:
        why += f" ({output.strip().splitlines()[0] if output.strip() else output})"
    recorded = tracing.record(
        "Probe",
        parent=parent,
        start_ns=start_ns,
        end_ns=time.time_ns(),
        component=COMPONENT,
        node=_settings.node,
        obj=_obj(pod),
        why=why,
        attributes={"tinykube.probe.kind": kind, "tinykube.probe.result": result},
    )
    _remember(uid, recorded)
