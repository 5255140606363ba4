"""Per-kind strategies: the generic store calls their hooks and names no kind itself."""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from apimachinery import errors, scheme
from apiserver.registry import store as store_module
from apiserver.registry.kinds import core_strategies
from apiserver.registry.pods import PodStrategy, pod_grace
from apiserver.registry.services import ServiceStrategy
from apiserver.registry.store import Store
from apiserver.registry.strategy import FinishFunc, ObjectRegistry, RESTStrategy, Strategies
from apiserver.storage import open_storage
from apiserver.storage.interface import Storage

from .objects import configmap, pod, service

SERVICES = scheme.for_resource("services")
CONFIGMAPS = scheme.for_resource("configmaps")


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    backend = await open_storage("sqlite", str(tmp_path))
    try:
        yield backend
    finally:
        await backend.close()


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the docstring nodes (module, classes, functions): prose may name kinds."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def test_the_generic_store_names_no_kind() -> None:
    tree = ast.parse(Path(store_module.__file__).read_text())
    kinds = {k.kind for k in scheme.KINDS} | {k.resource for k in scheme.KINDS}
    # `namespace` is every namespaced object's metadata field, not the kind.
    words = ({k.singular for k in scheme.KINDS} | {k.resource for k in scheme.KINDS}) - {
        "namespace"
    }
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        text = node.value if isinstance(node, ast.Constant) else None
        if isinstance(text, str) and id(node) not in docstrings and text in kinds:
            found.append(repr(text))
        name = ""
        if isinstance(node, ast.Name):
            name = node.id
        elif isinstance(node, ast.Attribute):
            name = node.attr
        elif isinstance(node, ast.alias):
            name = node.asname or node.name.rpartition(".")[2]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.arg)):
            name = node.name if not isinstance(node, ast.arg) else node.arg
        if words & set(name.lower().split("_")):
            found.append(name)
    assert not found, f"store.py names kinds: {found}"


class Recording(RESTStrategy):
    """A ConfigMap strategy that writes down each hook the store calls."""

    def __init__(self) -> None:
        super().__init__("ConfigMap")
        self.calls: list[tuple[str, Any]] = []

    async def start(self, registry: ObjectRegistry) -> None:
        self.calls.append(("start", None))

    async def begin_create(self, obj: Any) -> FinishFunc:
        self.calls.append(("begin_create", obj.metadata.name))
        return lambda ok: self.calls.append(("finish", ok))

    async def begin_update(self, new: Any, old: Any) -> FinishFunc:
        self.calls.append(("begin_update", dict(old.data)))
        return lambda ok: self.calls.append(("finish", ok))

    async def before_delete(self, obj: Any) -> None:
        if obj.metadata.labels.get("keep"):
            raise errors.Forbidden("kept")

    async def after_delete(self, obj: Any) -> None:
        self.calls.append(("after_delete", obj.metadata.name))


async def test_store_dispatches_to_the_kinds_strategy(storage: Storage) -> None:
    recording = Recording()
    store = Store(storage, strategies=Strategies([recording]), admission=[])
    await store.start()
    assert recording.calls == [("start", None)]
    recording.calls.clear()

    await store.create(configmap("a", k="1"))
    assert recording.calls == [("begin_create", "a"), ("finish", True)]
    recording.calls.clear()
    await store.create(configmap("dry"), dry_run=True)  # a dry run gives back what it took
    with pytest.raises(errors.AlreadyExists):
        await store.create(configmap("a"))  # and so does a failed write
    assert recording.calls == [
        ("begin_create", "dry"),
        ("finish", False),
        ("begin_create", "a"),
        ("finish", False),
    ]
    recording.calls.clear()

    changed = configmap("a", k="2")
    await store.update(changed)
    await store.update(changed)  # unchanged: no write, no hook
    assert recording.calls == [("begin_update", {"k": "1"}), ("finish", True)]
    recording.calls.clear()

    kept = configmap("kept")
    kept.metadata.labels["keep"] = "yes"
    await store.create(kept)
    with pytest.raises(errors.Forbidden, match="kept"):
        await store.delete(CONFIGMAPS, "default", "kept")
    await store.delete(CONFIGMAPS, "default", "a")
    assert recording.calls[-1] == ("after_delete", "a")
    assert (await store.get(CONFIGMAPS, "default", "kept")).metadata.name == "kept"


def test_strategies_default_and_registration(storage: Storage) -> None:
    strategies = core_strategies(storage)
    assert next(iter(strategies)).kind == "Namespace"  # built-in namespaces first
    plain = strategies.for_kind(CONFIGMAPS)
    assert type(plain) is RESTStrategy and not plain.reset_status_on_create
    assert strategies.for_kind(scheme.for_resource("deployments")).reset_status_on_create
    assert not strategies.for_kind(scheme.for_resource("nodes")).reset_status_on_create
    with pytest.raises(ValueError, match="registered already"):
        strategies.register(RESTStrategy("Pod"))


async def test_service_allocations_taken_released_and_rebuilt(storage: Storage) -> None:
    store = Store(storage)
    await store.start()
    strategy = store.strategies.for_kind(SERVICES)
    assert isinstance(strategy, ServiceStrategy)
    ips = strategy.allocations.cluster_ips
    ports = strategy.allocations.node_ports
    svc = await store.create(service("web", type_="NodePort"))
    ip, port = svc.spec.cluster_ip, svc.spec.ports[0].node_port
    assert ips.is_allocated(ip) and ports.is_allocated(port)

    again = Store(storage)  # a restarted server rebuilds the allocators from the store
    await again.start()
    rebuilt = again.strategies.for_kind(SERVICES)
    assert isinstance(rebuilt, ServiceStrategy)
    assert rebuilt.allocations.cluster_ips.is_allocated(ip)
    assert rebuilt.allocations.node_ports.is_allocated(port)

    svc.spec.type = "ClusterIP"  # replaced: the node port is given back, the IP kept
    await store.update(svc)
    assert ips.is_allocated(ip) and not ports.is_allocated(port)
    await store.delete(SERVICES, "default", "web")
    assert not ips.is_allocated(ip)


def test_pod_strategy_grace_and_tolerations() -> None:
    unbound = pod("a")
    bound = pod("b", node="node1")
    bound.spec.termination_grace_period_seconds = 30
    done = pod("c", node="node1")
    done.status.phase = "Succeeded"
    assert pod_grace(unbound, None) == 0 and pod_grace(done, None) == 0
    assert pod_grace(bound, None) == 30 and pod_grace(bound, 5) == 5 and pod_grace(bound, -1) == 0
    strategy = PodStrategy(default_toleration_seconds=7)
    assert strategy.grace_period(bound, None) == 30
    assert strategy.reset_status_on_create


async def test_pod_strategy_adds_default_tolerations() -> None:
    strategy = PodStrategy(default_toleration_seconds=7)
    p = pod("a")
    await strategy.admit_create(p)
    assert {(t.key, t.toleration_seconds) for t in p.spec.tolerations} == {
        ("node.kubernetes.io/not-ready", 7),
        ("node.kubernetes.io/unreachable", 7),
    }


async def test_a_pod_applied_again_without_its_default_tolerations_updates(
    storage: Storage,
) -> None:
    # DefaultTolerationSeconds runs on update too: the manifest, which never named the
    # tolerations added at create, changes the image and the tolerations stay
    store = Store(storage)
    await store.start()
    created = await store.create(pod("web"))
    assert len(created.spec.tolerations) == 2
    edited = pod("web")
    edited.spec.containers[0].image = "nginx:1.27"
    edited.metadata.resource_version = created.metadata.resource_version
    updated = await store.update(edited)
    assert updated.spec.containers[0].image == "nginx:1.27"
    assert list(updated.spec.tolerations) == list(created.spec.tolerations)
