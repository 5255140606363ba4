"""The Pod strategy: default tolerations on create, graceful deletion.

Kubernetes keeps these in pkg/registry/core/pod/strategy.go (CheckGracefulDelete)
and in the DefaultTolerationSeconds admission plugin; tinykube gives both to
the Pod's strategy, so the generic store never asks "is this a Pod?".

Graceful deletion. A Pod that may have containers running on a node is not
deleted at once: the store marks it (deletionTimestamp = now + grace period)
and leaves it for its kubelet, which stops the containers and then deletes
it with grace 0; the object disappears only once nothing runs. The period is
the one the request asks for, else the pod's terminationGracePeriodSeconds.
A pod that never ran (not bound to a node) or has finished (Succeeded,
Failed) has nothing to stop, so its grace period is 0 and it goes at once:

    pod bound to node1, Running, terminationGracePeriodSeconds 30
      delete                -> marked, deletionTimestamp now+30, grace 30
      delete --grace 5      -> marked again, now+5 (a shorter period is news)
      kubelet: delete --grace 0 -> gone
    pod not yet scheduled   -> gone at once

Default tolerations. Every pod tolerates the node lifecycle controller's
NoExecute taints (not-ready, unreachable) for a while, 300 s unless the
server is told otherwise, unless it says otherwise itself: after that the
pod is evicted from a lost node and its controller replaces it elsewhere.
"""

from __future__ import annotations

from typing import Any

from apimachinery.scheme import KindInfo
from apiserver.registry.strategy import RESTStrategy

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"


def add_default_tolerations(pod: Any, seconds: int) -> None:
    """Kubernetes' DefaultTolerationSeconds admission: how long a pod stays on a lost node."""
    if any(
        not t.key and t.operator == "Exists" and t.effect in ("", "NoExecute")
        for t in pod.spec.tolerations
    ):
        return  # tolerates everything already
    have = {(t.key, t.effect) for t in pod.spec.tolerations}
    for key in (NOT_READY_TAINT, UNREACHABLE_TAINT):
        if (key, "NoExecute") not in have and (key, "") not in have:
            pod.spec.tolerations.add(
                key=key, operator="Exists", effect="NoExecute", toleration_seconds=seconds
            )


def pod_grace(pod: Any, requested: int | None) -> int:
    """The grace period a Pod deletion gets: none for a pod that never ran."""
    if not pod.spec.node_name or pod.status.phase in ("Succeeded", "Failed"):
        return 0
    if requested is not None:
        return max(0, requested)
    return int(pod.spec.termination_grace_period_seconds)


class PodStrategy(RESTStrategy):
    """Pods: status reset on create, default tolerations, graceful deletion."""

    def __init__(self, *, default_toleration_seconds: int = 300) -> None:
        super().__init__("Pod", reset_status_on_create=True)
        self.default_toleration_seconds = default_toleration_seconds

    async def admit_create(self, obj: Any) -> None:
        add_default_tolerations(obj, self.default_toleration_seconds)

    def prepare_for_update(self, info: KindInfo, new: Any, old: Any) -> None:
        super().prepare_for_update(info, new, old)
        # DefaultTolerationSeconds admits updates too: a manifest applied again, which
        # never named the tolerations added at create, gets them back before the update
        # is validated -- else "existing toleration can not be modified" would refuse it.
        add_default_tolerations(new, self.default_toleration_seconds)

    def grace_period(self, obj: Any, requested: int | None) -> int:
        return pod_grace(obj, requested)
