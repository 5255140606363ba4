"""The controller pattern every tinykube controller follows.

A controller is level-triggered (DESIGN §7.2): informer handlers only put a
key ("namespace/name") on a work queue; `sync(key)` reads the *current*
state from the informer caches, computes desired minus actual, takes one step
toward the desired state through the API, and returns. It never trusts the
event that woke it: an event is only a hint that something about this key
may have changed. So a missed event, a duplicate, a restart in the middle of
a rollout — none leaves anything wrong for long: the next sync of the key
sees the world as it is and continues from there.

The queue guarantees one worker per key at a time; a sync that raises is
retried with per-key exponential backoff (5 ms doubling to 1000 s), and a
sync that succeeds resets the key's backoff. The workers themselves are
apimachinery/worker.py's WorkLoop, the one copy of that loop every
reconciler in tinykube shares; a Controller adds only what is its own: the
log line of a failed sync (none for a Conflict, which only means "re-read
and retry") and closing its event recorder on the way out.

    class MyController(Controller):
        name = "my-controller"

        def __init__(self, ctx: ControllerContext) -> None:
            super().__init__(ctx)
            self.pods = ctx.factory.informer(core_pb2.Pod)
            self.pods.add_handlers(on_add=self.enqueue_obj, ...)

        async def sync(self, key: str) -> None:
            ...
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass, field
from typing import Any

from apimachinery import errors
from apimachinery.cache import meta_namespace_key
from apimachinery.client import Client
from apimachinery.events import EventRecorder
from apimachinery.factory import SharedInformerFactory
from apimachinery.worker import WorkLoop
from apimachinery.workqueue import RateLimitingQueue
from controllers.controller_utils import HasMetadata

log = logging.getLogger(__name__)


@dataclass
class ControllerOptions:
    """Timings, all configurable so that tests run in seconds (defaults are Kubernetes')."""

    # node lifecycle: a node whose Lease is older than this is NotReady / Unknown
    node_monitor_grace_period: float = 40.0
    node_monitor_period: float = 5.0
    # tolerationSeconds given to pods for not-ready / unreachable taints (DefaultTolerationSeconds)
    default_toleration_seconds: int = 300
    # node IPAM
    cluster_cidr: str = "10.244.0.0/16"
    node_cidr_mask_size: int = 24
    # CSR signing (kube-controller-manager's --cluster-signing-cert-file / -key-file): the
    # cluster CA that signs approved CSRs; empty = the csrsigning controller signs nothing
    cluster_signing_cert_file: str = ""
    cluster_signing_key_file: str = ""
    # --cluster-signing-duration: the longest validity it gives (a CSR may ask for less)
    cluster_signing_duration: float = 365 * 24 * 3600.0
    # deployment progress deadline is per object (spec.progressDeadlineSeconds)
    workers: int = 2
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ControllerContext:
    """What every controller is built from: the client, the shared informers, the options."""

    client: Client
    factory: SharedInformerFactory
    options: ControllerOptions

    def recorder(self, component: str) -> EventRecorder:
        return EventRecorder(self.client, component)


class Controller(abc.ABC):
    """A level-triggered controller: handlers enqueue keys, workers run `sync(key)` on each."""

    name = "controller"

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.queue: RateLimitingQueue[str] = RateLimitingQueue(name=self.name)
        self.recorder = ctx.recorder(self.name)

    # ---- handlers: only enqueue ------------------------------------------------------------

    def enqueue(self, key: str) -> None:
        self.queue.add(key)

    def enqueue_obj(self, obj: HasMetadata, *_: object) -> None:
        self.queue.add(meta_namespace_key(obj))

    # ---- the loop --------------------------------------------------------------------------

    @abc.abstractmethod
    async def sync(self, key: str) -> None:
        """Move `key` one step toward its desired state. Raise to retry with backoff."""

    async def run(self, workers: int | None = None) -> None:
        """Run the workers until cancelled; then stop them and flush the event recorder."""
        loop = WorkLoop(self.queue, self.sync, on_error=self._sync_failed)
        try:
            await loop.run(workers or self.ctx.options.workers)
        finally:
            await self.recorder.close()

    def _sync_failed(self, key: str, exc: Exception) -> None:
        if isinstance(exc, errors.Conflict):
            return  # somebody wrote first: re-read and retry, nothing to report
        log.warning(
            "sync failed; requeued",
            extra={"controller": self.name, "key": key, "error": repr(exc)},
        )
