"""What the rollout helpers need from the Deployment controller, and nothing more.

Kubernetes writes the strategies (rolling.go, recreate.go, sync.go,
progress.go) as methods of one DeploymentController struct. Here they are
functions in their own modules, and each takes the controller as its first
argument, `dc`. Typing `dc` as the DeploymentController class would make
every helper import controller.py, which imports every helper: a circle of
six modules, each of which could only be read (or tested) with all the
others. Instead the helpers name this Protocol: the few things they really
touch, so a reader sees the whole dependency at a glance and a test can pass
a small fake.

    dc.client                       reads and writes ReplicaSets and the Deployment
    dc.recorder                     events on the Deployment (ScalingReplicaSet, ...)
    dc.pods_of(rs)                  the cached pods a set controls (Recreate waits for them)
    dc.active_pod_count(rs)         the same, not terminating (the rolling surge guard)
    dc.enqueue_after(d, seconds)    sync again later (the progress deadline has no event)

DeploymentController (controller.py) satisfies it structurally; nothing
imports controller.py but the package's __init__, which registers it. A
test of rolling.py's arithmetic needs no informers at all:

    class FakeDC:                     # pods counted straight from spec.replicas
        client = FakeClient()         # records the ReplicaSet updates
        recorder = FakeRecorder()
        def active_pod_count(self, rs): return rs.spec.replicas
"""

from __future__ import annotations

from typing import Protocol

from apimachinery.client import Client
from apimachinery.events import EventRecorder
from protos import apps_pb2, core_pb2


class SyncContext(Protocol):
    """The Deployment controller as the rollout helpers see it."""

    client: Client
    recorder: EventRecorder

    def pods_of(self, rs: apps_pb2.ReplicaSet) -> list[core_pb2.Pod]:
        """Every cached pod `rs` controls, terminating ones included."""
        ...

    def active_pod_count(self, rs: apps_pb2.ReplicaSet) -> int:
        """How many of those pods are active (not terminating, not finished)."""
        ...

    def enqueue_after(self, d: apps_pb2.Deployment, delay: float) -> None:
        """Sync `d` again after `delay` seconds."""
        ...
