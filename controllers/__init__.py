"""Controllers (kube-controller-manager): each turns one kind of desired state into actions.

Controllers register by name; the manager (manager.py) starts the ones asked
for, sharing one informer per resource between them (apimachinery/factory.py).
They reach the API only through the client, so the same code runs inside the
API server process (the default) or as `tinykube controller-manager`.

    @register("replicaset")
    class ReplicaSetController(Controller): ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from controllers.base import Controller, ControllerContext

C = TypeVar("C", bound=type[Controller])

CONTROLLERS: dict[str, Callable[[ControllerContext], Controller]] = {}


def register(name: str) -> Callable[[C], C]:
    def add(cls: C) -> C:
        CONTROLLERS[name] = cls
        return cls

    return add
