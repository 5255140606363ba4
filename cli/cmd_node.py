"""`cordon`, `uncordon`, `drain` (kubectl/pkg/cmd/drain, k8s.io/kubectl/pkg/drain).

Cordoning sets `spec.unschedulable`: the node lifecycle controller answers
with the taint `node.kubernetes.io/unschedulable:NoSchedule`, and the
scheduler places nothing new there. Pods already running stay.

Draining is cordon + remove every pod from the node, for maintenance:

    $ tinykube drain node2
    node/node2 cordoned
    evicting pod default/web-app-7d4b9-x2kq9
    pod/web-app-7d4b9-x2kq9 evicted
    node/node2 drained

Which pods may go (kubectl's filters, in its words):

* a pod that declares no controller (no ownerReference with controller=true)
  would be gone for good: refused unless `--force`, as "cannot delete Pods
  declare no controller (use --force to override): default/bare";
* a pod with an emptyDir volume loses that data: refused unless
  `--delete-emptydir-data`;
* a DaemonSet's pod would only come straight back: refused unless
  `--ignore-daemonsets`, which leaves it in place;
* a mirror pod (static, owned by its kubelet) is skipped;
* a finished pod (Succeeded/Failed) may always go.

Any refusal stops the drain before a single pod is deleted (the node stays
cordoned) and exits 1. tinykube has no Eviction subresource (and so no
PodDisruptionBudgets): "evicting" is a graceful delete with the pod's own
grace period unless `--grace-period` says otherwise. Then drain waits until
every pod is really gone -- a pod's kubelet has to stop it and finish the
deletion -- printing each as it goes; `--timeout` (0 = forever) bounds the
wait. A pod's controller (its ReplicaSet) creates a replacement at once,
which the scheduler places on another node since this one is cordoned.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from apimachinery import errors
from apimachinery.client import retry_on_conflict
from cli import context
from cli.context import Options, echo_err
from cli.durations import DURATION

if TYPE_CHECKING:
    from apimachinery.client import Client

POLL_SECONDS = 0.25
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"

DAEMONSET_FATAL = "DaemonSet-managed Pods (use --ignore-daemonsets to ignore)"
DAEMONSET_WARNING = "ignoring DaemonSet-managed Pods"
LOCAL_STORAGE_FATAL = "Pods with local storage (use --delete-emptydir-data to override)"
LOCAL_STORAGE_WARNING = "deleting Pods with local storage"
UNMANAGED_FATAL = "Pods declare no controller (use --force to override)"
UNMANAGED_WARNING = "deleting Pods that declare no controller"

Echo = Callable[[str], None]


# ------------------------------------------------------------------ cordon


async def set_unschedulable(client: Client, name: str, value: bool) -> bool:
    """Set the node's spec.unschedulable; False if it already had that value."""

    async def once() -> bool:
        node = await client.get("nodes", name)
        if node.spec.unschedulable == value:
            return False
        node.spec.unschedulable = value
        await client.update(node)
        return True

    return await retry_on_conflict(once)


async def cordon_node(client: Client, name: str, value: bool, out: Echo = click.echo) -> None:
    word = "cordoned" if value else "uncordoned"
    changed = await set_unschedulable(client, name, value)
    out(f"node/{name} {word}" if changed else f"node/{name} already {word}")


@click.command("cordon")
@click.argument("node")
@click.pass_obj
def cordon(opts: Options, node: str) -> None:
    """Mark NODE as unschedulable."""
    context.exit_with(context.run(opts, lambda client: _ok(cordon_node(client, node, True))))


@click.command("uncordon")
@click.argument("node")
@click.pass_obj
def uncordon(opts: Options, node: str) -> None:
    """Mark NODE as schedulable again."""
    context.exit_with(context.run(opts, lambda client: _ok(cordon_node(client, node, False))))


async def _ok(step: Any) -> int:
    await step
    return 0


# ------------------------------------------------------------------ drain


@dataclass
class DrainOptions:
    ignore_daemonsets: bool = False
    delete_emptydir_data: bool = False
    force: bool = False
    grace_period: int = -1  # -1: each pod's own terminationGracePeriodSeconds
    timeout: float = 0.0  # 0: wait forever


@dataclass
class PodFilterResult:
    """The pods to delete, and per kubectl message the pods it applies to."""

    delete: list[Any] = field(default_factory=list)
    errors: dict[str, list[str]] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)


def _key(pod: Any) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


def _controller(pod: Any) -> Any | None:
    return next((r for r in pod.metadata.owner_references if r.controller), None)


def filter_pods(pods: list[Any], opts: DrainOptions) -> PodFilterResult:
    """kubectl's drain filters: which pods go, which block the drain, which warn."""
    result = PodFilterResult()

    def note(table: dict[str, list[str]], message: str, pod: Any) -> None:
        table.setdefault(message, []).append(_key(pod))

    for pod in sorted(pods, key=_key):
        if MIRROR_ANNOTATION in pod.metadata.annotations:
            continue
        finished = pod.status.phase in ("Succeeded", "Failed")
        owner = _controller(pod)
        if owner is not None and owner.kind == "DaemonSet" and not finished:
            if opts.ignore_daemonsets:
                note(result.warnings, DAEMONSET_WARNING, pod)
            else:
                note(result.errors, DAEMONSET_FATAL, pod)
            continue
        blocked = False
        if not finished and any(v.HasField("empty_dir") for v in pod.spec.volumes):
            if opts.delete_emptydir_data:
                note(result.warnings, LOCAL_STORAGE_WARNING, pod)
            else:
                note(result.errors, LOCAL_STORAGE_FATAL, pod)
                blocked = True
        if owner is None and not finished:
            if opts.force:
                note(result.warnings, UNMANAGED_WARNING, pod)
            else:
                note(result.errors, UNMANAGED_FATAL, pod)
                blocked = True
        if not blocked:
            result.delete.append(pod)
    return result


async def drain_node(
    client: Client,
    name: str,
    opts: DrainOptions,
    out: Echo = click.echo,
    err: Echo = echo_err,
) -> int:
    """Cordon `name`, delete its pods, wait until they are gone; the exit code."""
    await cordon_node(client, name, True, out)
    pods, _ = await client.list("pods", "", field_selector=f"spec.nodeName={name}")
    result = filter_pods(pods, opts)
    if result.errors:
        text = "; ".join(
            f"cannot delete {msg}: {', '.join(keys)}" for msg, keys in result.errors.items()
        )
        _pending(err, name, text)
        return 1
    for message, keys in result.warnings.items():
        err(f"Warning: {message}: {', '.join(keys)}")
    deadline = time.monotonic() + opts.timeout if opts.timeout > 0 else None
    remaining = {}
    for pod in result.delete:
        out(f"evicting pod {_key(pod)}")
        try:
            await client.delete(
                "pods",
                pod.metadata.name,
                pod.metadata.namespace,
                grace_period_seconds=None if opts.grace_period < 0 else opts.grace_period,
                precondition_uid=pod.metadata.uid,
            )
        except (errors.NotFound, errors.Conflict):
            out(f"pod/{pod.metadata.name} evicted")  # already gone (or replaced under its name)
            continue
        remaining[_key(pod)] = pod
    while remaining:
        for key, pod in list(remaining.items()):
            try:
                now = await client.get("pods", pod.metadata.name, pod.metadata.namespace)
                gone = now.metadata.uid != pod.metadata.uid
            except errors.NotFound:
                gone = True
            if gone:
                del remaining[key]
                out(f"pod/{pod.metadata.name} evicted")
        if not remaining:
            break
        if deadline is not None and time.monotonic() >= deadline:
            _pending(err, name, f"drain did not complete within {opts.timeout:g}s")
            return 1
        await asyncio.sleep(POLL_SECONDS)
    out(f"node/{name} drained")
    return 0


def _pending(err: Echo, name: str, text: str) -> None:
    err(f'error: unable to drain node "{name}" due to error: {text}, continuing command...')
    err("There are pending nodes to be drained:")
    err(f" {name}")
    err(f"error: {text}")


@click.command("drain")
@click.argument("node")
@click.option("--ignore-daemonsets", is_flag=True, help="Ignore DaemonSet-managed pods.")
@click.option(
    "--delete-emptydir-data", is_flag=True, help="Delete pods using emptyDir (their data is lost)."
)
@click.option("--force", is_flag=True, help="Also delete pods that declare no controller.")
@click.option(
    "--grace-period",
    type=int,
    default=-1,
    help="Seconds each pod gets to terminate (-1: the pod's own).",
)
@click.option(
    "--timeout",
    type=DURATION,
    default=0.0,
    help="How long to wait for the pods to go before giving up: 60s, 2m (0: forever).",
)
@click.pass_obj
def drain(
    opts: Options,
    node: str,
    ignore_daemonsets: bool,
    delete_emptydir_data: bool,
    force: bool,
    grace_period: int,
    timeout: float,
) -> None:
    """Drain NODE in preparation for maintenance: cordon it and evict its pods."""
    drain_opts = DrainOptions(ignore_daemonsets, delete_emptydir_data, force, grace_period, timeout)
    context.exit_with(context.run(opts, lambda client: drain_node(client, node, drain_opts)))
