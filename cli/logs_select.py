"""Which pods and containers `tinykube logs` reads (kubectl's polymorphichelpers for logs).

`kubectl logs` takes a pod, or any object that selects pods, or a selector:

    logs web-1                    the pod web-1
    logs pod/web-1                the same
    logs deploy/web               the first pod of the Deployment's selector
    logs rs/web-7d4b9  svc/web    the same for a ReplicaSet, a Service
    logs -l app=web               every pod the selector matches

For `TYPE/NAME` the object is read first (so a missing one is `Error from
server (NotFound): deployments.apps "web" not found`), its selector is
listed, and the pods are sorted the way kubectl picks "the best pod to show
logs of" (podutils.ByLogging): a pod on a node before one not yet
scheduled; Running before Unknown before Pending; ready before not ready;
ready for longer first; more restarts first (the interesting one); older
first. When several match, kubectl says which it took, on stderr:

    Found 2 pods, using pod/web-7d4b9-x2kq9

When none match yet, it waits (`--pod-running-timeout`, 20 s) for one to
appear, then gives up with `timed out waiting for the condition`. A kind
without a pod selector (a ConfigMap, a Node) cannot have logs:
`cannot get the logs from *v1.ConfigMap: selector for *v1.ConfigMap not
implemented`, kubectl's words with Go's type name.

Containers: `-c NAME` must be one of the pod's (init containers included),
else `container NAME is not valid for pod POD`; without it, the one named
by the `kubectl.kubernetes.io/default-container` annotation, else the first,
with a note on stderr when there was a choice:

    Defaulted container "web" out of: web, sidecar, init-db (init)

`--all-containers` reads the init containers, then the others, in spec order.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from apimachinery import labels, scheme
from cli.cells import timestamp_seconds
from cli.context import CommandError, echo_err
from cli.inputs import kind_for
from protos import core_pb2, meta_pb2

if TYPE_CHECKING:
    from apimachinery.client import Client

DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
_PHASE_RANK = {"Running": 0, "Unknown": 1, "Pending": 2}  # others rank with Running, as in Go


def go_type(info: scheme.KindInfo) -> str:
    """`*v1.ConfigMap`, `*v1.Deployment`: how kubectl names a kind in this error."""
    return f"*{info.api_version.rpartition('/')[2]}.{info.kind}"


def selector_of(info: scheme.KindInfo, obj: Any) -> str:
    """The label selector (as text) of an object that selects pods; CommandError otherwise."""
    spec = getattr(obj, "spec", None)
    selector = getattr(spec, "selector", None) if spec is not None else None
    if isinstance(selector, meta_pb2.LabelSelector):
        return str(labels.from_label_selector(selector))
    if selector is not None and hasattr(selector, "items"):
        if not selector:
            raise CommandError(
                f"invalid service '{obj.metadata.name}': Service is defined without a selector"
            )
        return ",".join(f"{k}={selector[k]}" for k in sorted(selector))
    kind = go_type(info)
    raise CommandError(f"cannot get the logs from {kind}: selector for {kind} not implemented")


def _ready_since(pod: core_pb2.Pod) -> float | None:
    for condition in pod.status.conditions:
        if condition.type == "Ready" and condition.status == "True":
            return timestamp_seconds(condition, "last_transition_time") or None
    return None


def logging_order(pod: core_pb2.Pod) -> tuple[Any, ...]:
    """The sort key of kubectl's ByLogging (see the module docstring)."""
    ready_at = _ready_since(pod)
    ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)
    restarts = max((s.restart_count for s in pod.status.container_statuses), default=0)
    created = timestamp_seconds(pod.metadata, "creation_timestamp")
    return (
        0 if pod.spec.node_name else 1,
        _PHASE_RANK.get(pod.status.phase, 0),
        0 if ready else 1,
        (0, ready_at) if ready and ready_at is not None else (1, 0.0),
        -restarts,
        (0, created) if created is not None else (1, 0.0),
    )


async def first_pod(
    client: Client, namespace: str, selector: str, timeout: float
) -> tuple[core_pb2.Pod, int]:
    """The best pod for logs among those `selector` matches, and how many matched."""
    pods, rv = await client.list(core_pb2.Pod, namespace, label_selector=selector)
    if pods:
        return min(pods, key=logging_order), len(pods)

    async def appears() -> core_pb2.Pod:
        stream = client.watch(core_pb2.Pod, namespace, resource_version=rv, label_selector=selector)
        async for event in stream:
            if event.type in ("ADDED", "MODIFIED"):
                return event.object
        raise CommandError("timed out waiting for the condition")

    try:
        return await asyncio.wait_for(appears(), timeout), 1
    except asyncio.TimeoutError:
        raise CommandError("timed out waiting for the condition") from None


async def resolve_pods(
    client: Client, namespace: str, target: str, selector: str, timeout: float
) -> list[core_pb2.Pod]:
    """The pods to read: `-l` -> all matches (by name); TYPE/NAME -> the first one."""
    if selector:
        pods, _ = await client.list(core_pb2.Pod, namespace, label_selector=selector)
        return sorted(pods, key=lambda p: p.metadata.name)
    kind_word, slash, name = target.partition("/")
    if not slash:
        return [await client.get(core_pb2.Pod, target, namespace)]
    if not kind_word or not name or "/" in name:
        raise CommandError(
            f'arguments in resource/name form must have a single resource and name: "{target}"'
        )
    info = kind_for(kind_word)
    if info.kind == "Pod":
        return [await client.get(core_pb2.Pod, name, namespace)]
    obj = await client.get(info, name, namespace)
    pod, count = await first_pod(client, namespace, selector_of(info, obj), timeout)
    if count > 1:
        echo_err(f"Found {count} pods, using pod/{pod.metadata.name}")
    return [pod]


def all_container_names(pod: core_pb2.Pod) -> str:
    """`web, sidecar, init-db (init)`: kubectl's list of a pod's containers."""
    names = [c.name for c in pod.spec.containers]
    names += [f"{c.name} (init)" for c in pod.spec.init_containers]
    return ", ".join(names)


def containers_for(pod: core_pb2.Pod, container: str, all_containers: bool) -> list[str]:
    """The container names to read in `pod` (see the module docstring)."""
    if all_containers:
        return [c.name for c in pod.spec.init_containers] + [c.name for c in pod.spec.containers]
    if not container:
        container = pod.metadata.annotations.get(DEFAULT_CONTAINER_ANNOTATION, "")
    if not container:
        if not pod.spec.containers:
            raise CommandError(f"pod {pod.metadata.name} has no containers")
        container = pod.spec.containers[0].name
        if len(pod.spec.containers) > 1 or pod.spec.init_containers:
            echo_err(f'Defaulted container "{container}" out of: {all_container_names(pod)}')
    known = {c.name for c in pod.spec.containers} | {c.name for c in pod.spec.init_containers}
    if container not in known:
        raise CommandError(f"container {container} is not valid for pod {pod.metadata.name}")
    return [container]
