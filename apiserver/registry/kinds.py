"""Which strategy each kind gets, and which admission plugins run: the one place naming kinds.

Kubernetes wires this in pkg/registry/core/rest/storage_core.go (and one
such file per API group): every kind's REST storage is the generic store
plus that kind's strategy. tinykube's generic store (store.py) holds no kind
names at all; it is handed what this module builds.

    Namespace    namespaces.py  built-in namespaces, `kubernetes` finalizer, Terminating
    Pod          pods.py        status reset, default tolerations, graceful deletion
    Service      services.py    status reset, ClusterIP / NodePort allocation
    Deployment   strategy.py    status reset (the default strategy, configured)
    ReplicaSet   strategy.py    status reset
    the rest     strategy.py    the default strategy (Node keeps the status its
                                kubelet registers it with)

Order matters once, at start-up: the Namespace strategy comes first, so the
built-in namespaces exist before anything else is created.

Worked example, `tinykube apply -f examples/web-app.yaml` (a Deployment and
a Service, both new): the store creates each through the same code.

    Deployment web-app  strategy: default, reset_status_on_create
                        admission: NamespaceLifecycle (default exists, Active),
                        PodSecurity (the template meets default's levels)
                        begin_create: nothing to take; written
    Service web-app     strategy: ServiceStrategy
                        admission: NamespaceLifecycle
                        begin_create: takes 10.96.x.y under the Service lock;
                        written; finish(True) keeps it, and lets go of the lock
"""

from __future__ import annotations

from apiserver.admission.namespacelifecycle import NamespaceLifecycle
from apiserver.admission.podsecurityadmission import PodSecurityAdmission
from apiserver.registry.namespaces import NamespaceStrategy
from apiserver.registry.pods import PodStrategy
from apiserver.registry.services import ServiceStrategy
from apiserver.registry.strategy import Admission, RESTStrategy, Strategies
from apiserver.storage.interface import Storage


def core_strategies(storage: Storage, *, default_toleration_seconds: int = 300) -> Strategies:
    """The strategies of every kind with rules of its own, namespaces first."""
    return Strategies(
        [
            NamespaceStrategy(storage),
            PodStrategy(default_toleration_seconds=default_toleration_seconds),
            ServiceStrategy(),
            RESTStrategy("Deployment", reset_status_on_create=True),
            RESTStrategy("ReplicaSet", reset_status_on_create=True),
        ]
    )


def admission_plugins(storage: Storage) -> list[Admission]:
    """The admission chain every write passes, after validation (a malformed object is
    refused for what it is before anyone looks for its namespace)."""
    return [NamespaceLifecycle(storage), PodSecurityAdmission(storage)]
