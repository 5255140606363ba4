"""Per-kind strategy: the rules that differ between kinds, behind one small interface.

Kubernetes' generic registry (pkg/registry/generic/registry/store.go) is one
implementation of create, update and delete for every kind; whatever a kind
does differently it asks of that kind's strategy (RESTCreateStrategy,
RESTUpdateStrategy, RESTDeleteStrategy, RESTGracefulDeleteStrategy) and of
the hooks wired into its store (BeginCreate, BeginUpdate, AfterDelete).
tinykube's `RESTStrategy` is both in one class. The generic store (store.py)
calls these hooks at fixed points and never looks at what kind it holds:

    start:   start(registry)            rebuild memory from the store, seed objects
    create:  prepare_for_create -> defaults -> validate -> admission -> admit_create
             -> begin_create ... write ... finish(ok)
    update:  prepare_for_update -> defaults -> bump_generation -> validate_update
             -> begin_update ... write ... finish(ok)
    status:  prepare_for_status_update -> validate_update -> write
    delete:  before_delete -> grace_period -> (mark_deleting + write | remove)
    remove:  finalized -> before_remove -> delete from storage -> after_delete

`begin_*` return a finish function, called once with whether the write
landed (False on failure and on dry run): Kubernetes' FinishFunc. That is how
a Service's ClusterIP is taken before the write and given back if the write
fails, so a failed create never leaks an address (services.py).

This class is also the default strategy: a kind registered with no rules of
its own (ConfigMap, Endpoints, ...) gets exactly these. The kinds with rules
of their own live beside it: pods.py, services.py, namespaces.py; kinds.py
says which kind uses which.

The spec/status split. Users own spec, controllers and kubelets own status,
and they write through different verbs so neither can clobber the other:
Update keeps the stored status whatever the request carries; UpdateStatus
keeps the stored metadata and spec and takes only the request's status.
`metadata.generation` counts spec changes (a status write never bumps it),
which is how a controller's `status.observedGeneration` can say "I have acted
on the spec you last wrote".
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from google.protobuf import timestamp_pb2

from apimachinery.scheme import KindInfo

# Called once after the write a begin_* hook prepared: True if it landed.
FinishFunc = Callable[[bool], None]


def finish_nothing(success: bool) -> None:
    """The finish function of a hook that took nothing."""


def now() -> timestamp_pb2.Timestamp:
    """Kubernetes' metav1.Time has whole seconds."""
    return timestamp_pb2.Timestamp(seconds=int(time.time()))


def kind_group(info: KindInfo) -> str:
    """`Deployment.apps`, `Pod`: how Kubernetes names a kind in an Invalid message."""
    return f"{info.kind}.{info.group}" if info.group else info.kind


def has_spec(obj: Any) -> bool:
    return "spec" in obj.DESCRIPTOR.fields_by_name


def has_status(obj: Any) -> bool:
    return "status" in obj.DESCRIPTOR.fields_by_name


def spec_bytes(obj: Any) -> bytes:
    return bytes(obj.spec.SerializeToString(deterministic=True))


class ObjectRegistry(Protocol):
    """What of the generic store a strategy may use when it starts (not the Store class
    itself: the strategies are imported by the store, never the other way round)."""

    async def create(self, obj: Any, *, dry_run: bool = False) -> Any: ...

    async def list_objects(self, info: KindInfo, namespace: str = "") -> tuple[list[Any], int]: ...


class Admission(Protocol):
    """An admission plugin for writes of every kind (apiserver/admission/)."""

    async def admit_create(self, info: KindInfo, obj: Any) -> None: ...

    async def admit_update(self, info: KindInfo, new: Any, old: Any) -> None: ...


class RESTStrategy:
    """The hooks the generic store calls; as is, the default strategy."""

    def __init__(self, kind: str, *, reset_status_on_create: bool = False) -> None:
        self.kind = kind
        # Kubernetes' strategies reset status on create for kinds a controller or kubelet
        # reports on: a client may not create an object that claims to be already running.
        # Nodes keep theirs: the kubelet registers its Node with capacity and addresses.
        self.reset_status_on_create = reset_status_on_create

    # ---- life of the server ----------------------------------------------------------------

    async def start(self, registry: ObjectRegistry) -> None:
        """Before the port opens: rebuild what the strategy keeps in memory from the store."""

    async def close(self) -> None:
        """The server is stopping."""

    # ---- create ----------------------------------------------------------------------------

    def prepare_for_create(self, info: KindInfo, obj: Any) -> None:
        """System metadata of a new object; before defaulting and validation."""
        meta = obj.metadata
        obj.api_version = info.api_version
        obj.kind = info.kind
        meta.uid = str(uuid.uuid4())
        meta.creation_timestamp.CopyFrom(now())
        meta.generation = 1
        meta.resource_version = ""
        meta.ClearField("deletion_timestamp")
        meta.ClearField("deletion_grace_period_seconds")
        if self.reset_status_on_create:
            obj.ClearField("status")

    async def admit_create(self, obj: Any) -> None:
        """Mutating admission of this kind, after validation and the admission plugins."""

    async def begin_create(self, obj: Any) -> FinishFunc:
        """Just before the write: take what the object needs (may fill fields in)."""
        return finish_nothing

    # ---- update ----------------------------------------------------------------------------

    def prepare_for_update(self, info: KindInfo, new: Any, old: Any) -> None:
        """Update: keep the stored status and the system's metadata."""
        new.api_version = info.api_version
        new.kind = info.kind
        carry_system_metadata(new, old)
        if info.has_status:
            if old.HasField("status"):
                new.status.CopyFrom(old.status)
            else:
                new.ClearField("status")

    def prepare_for_status_update(self, info: KindInfo, new: Any, old: Any) -> Any:
        """UpdateStatus: the stored object with the request's status, nothing else."""
        result = type(old)()
        result.CopyFrom(old)
        if new.HasField("status"):
            result.status.CopyFrom(new.status)
        else:
            result.ClearField("status")
        return result

    async def begin_update(self, new: Any, old: Any) -> FinishFunc:
        """Just before an Update's write (not UpdateStatus's); as begin_create."""
        return finish_nothing

    # ---- delete ----------------------------------------------------------------------------

    async def before_delete(self, obj: Any) -> None:
        """Raise to refuse a delete (a protected object)."""

    def grace_period(self, obj: Any, requested: int | None) -> int:
        """Seconds the object lingers, marked, before it goes (0: not graceful)."""
        return 0

    def mark_deleting(self, obj: Any) -> None:
        """The object is being marked (deletionTimestamp set); change it in the same write."""

    def finalized(self, obj: Any) -> bool:
        """Nothing holds a marked object back any more: it may leave storage."""
        return not obj.metadata.finalizers

    async def before_remove(self, obj: Any) -> None:
        """Raise to keep a finalized object a while longer (a namespace not yet empty)."""

    async def after_delete(self, obj: Any) -> None:
        """The object has left storage: give back what it held."""


class Strategies:
    """Each kind's strategy, by kind name; kinds nobody registered get the default."""

    def __init__(self, strategies: Iterable[RESTStrategy] = ()) -> None:
        self._by_kind: dict[str, RESTStrategy] = {}
        for strategy in strategies:
            self.register(strategy)

    def register(self, strategy: RESTStrategy) -> None:
        if strategy.kind in self._by_kind:
            raise ValueError(f"a strategy for {strategy.kind} is registered already")
        self._by_kind[strategy.kind] = strategy

    def for_kind(self, info: KindInfo) -> RESTStrategy:
        strategy = self._by_kind.get(info.kind)
        if strategy is None:
            strategy = self._by_kind[info.kind] = RESTStrategy(info.kind)
        return strategy

    def __iter__(self) -> Iterator[RESTStrategy]:
        """In registration order, which is start-up order (kinds.py puts namespaces first)."""
        return iter(list(self._by_kind.values()))


def carry_system_metadata(new: Any, old: Any) -> None:
    """Fields of metadata a client can never set through an update."""
    for name in ("uid", "creation_timestamp", "generation", "namespace", "name"):
        field = new.metadata.DESCRIPTOR.fields_by_name[name]
        if field.message_type is not None:
            getattr(new.metadata, name).CopyFrom(getattr(old.metadata, name))
        else:
            setattr(new.metadata, name, getattr(old.metadata, name))
    if old.metadata.HasField("deletion_timestamp"):
        new.metadata.deletion_timestamp.CopyFrom(old.metadata.deletion_timestamp)
        new.metadata.deletion_grace_period_seconds = old.metadata.deletion_grace_period_seconds
    else:
        new.metadata.ClearField("deletion_timestamp")
        new.metadata.ClearField("deletion_grace_period_seconds")


def bump_generation(new: Any, old: Any) -> None:
    """After defaulting: a changed spec is a new generation (kinds without a spec keep theirs,
    as in Kubernetes: an Endpoints object rewritten by its controller is not a new "generation")."""
    if has_spec(new) and spec_bytes(new) != spec_bytes(old):
        new.metadata.generation = old.metadata.generation + 1
