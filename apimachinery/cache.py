"""The informer's local cache: client-go's Store and Indexer, for one event loop.

An informer keeps every object of one kind (in its namespace and selectors)
in memory, so a controller's `sync(key)` reads the cache instead of the API
server. Kubernetes' cache.Indexer is a thread-safe map from a key
("namespace/name") to the object, plus secondary indices: an index function
maps each object to the values it is filed under, and `by_index` answers
"which objects are filed under this value" without scanning everything.

Example: the kubelet-facing question "which pods are bound to node-1" is an
index on spec.nodeName:

    store.add_index("node", lambda pod: pod.spec.node_name)
    store.by_index("node", "node-1")     # -> [pod-a, pod-c]
    store.by_index("node", "")           # -> the pods not yet scheduled

Internally: items = {"default/pod-a": pod-a, ...}; for the index "node",
indices["node"] = {"node-1": {"default/pod-a", "default/pod-c"}, "": {...}}.
When pod-a is updated the index values its old version was filed under are
removed and the new version's added, so the index never goes stale.

Assumptions: one event loop touches the cache, so there are no locks. The
stored objects are shared with everyone who reads the cache (handlers,
controllers): they are read-only. Copy before changing one:

    new = type(obj)(); new.CopyFrom(obj); new.spec.replicas = 3
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

IndexFunc = Callable[[Any], "str | Iterable[str]"]


def meta_namespace_key(obj: Any) -> str:
    """client-go's MetaNamespaceKeyFunc: "namespace/name", or "name" for cluster-scoped objects."""
    meta = obj.metadata
    return f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name  # type: ignore[no-any-return]


def split_key(key: str) -> tuple[str, str]:
    """The (namespace, name) in a key made by meta_namespace_key; namespace "" if none."""
    namespace, sep, name = key.partition("/")
    if not sep:
        return "", key
    if not namespace or not name or "/" in name:
        raise ValueError(f"unexpected key format: {key!r}")
    return namespace, name


def _index_values(fn: IndexFunc, obj: Any) -> set[str]:
    values = fn(obj)
    if isinstance(values, str):
        return {values}
    return set(values)


class Indexer(Generic[T]):
    """A keyed object cache with secondary indices (client-go's cache.Indexer)."""

    def __init__(self, key_func: Callable[[T], str] = meta_namespace_key) -> None:
        self.key_func = key_func
        self._items: dict[str, T] = {}
        self._index_funcs: dict[str, IndexFunc] = {}
        # index name -> index value -> keys filed under it
        self._indices: dict[str, dict[str, set[str]]] = {}

    # ---- reads ----------------------------------------------------------------------------

    def get(self, key: str) -> T | None:
        return self._items.get(key)

    def list(self) -> list[T]:
        return list(self._items.values())

    def keys(self) -> builtins.list[str]:
        return list(self._items)

    def items(self) -> builtins.list[tuple[str, T]]:
        return list(self._items.items())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def by_index(self, name: str, value: str) -> builtins.list[T]:
        """Objects filed under `value` by the index `name` (KeyError for an unknown index)."""
        return [self._items[k] for k in sorted(self.index_keys(name, value))]

    def index_keys(self, name: str, value: str) -> set[str]:
        if name not in self._index_funcs:
            raise KeyError(f"index {name!r} does not exist")
        return set(self._indices[name].get(value, ()))

    # ---- writes ---------------------------------------------------------------------------

    def add_index(self, name: str, fn: IndexFunc) -> None:
        """Add an index; objects already cached are filed at once."""
        if name in self._index_funcs:
            raise ValueError(f"index {name!r} already exists")
        self._index_funcs[name] = fn
        self._indices[name] = {}
        for key, obj in self._items.items():
            self._file(name, key, obj)

    def add(self, obj: T) -> str:
        """Insert or replace `obj`; returns its key."""
        key = self.key_func(obj)
        old = self._items.get(key)
        if old is not None:
            self._unfile_all(key, old)
        self._items[key] = obj
        for name in self._index_funcs:
            self._file(name, key, obj)
        return key

    update = add

    def delete_key(self, key: str) -> T | None:
        """Remove the object at `key`; returns it, or None if there was none."""
        old = self._items.pop(key, None)
        if old is not None:
            self._unfile_all(key, old)
        return old

    def delete(self, obj: T) -> T | None:
        return self.delete_key(self.key_func(obj))

    def replace(self, objs: Iterable[T]) -> None:
        """Make the cache hold exactly `objs` (indices rebuilt)."""
        self._items = {self.key_func(o): o for o in objs}
        for name in self._index_funcs:
            self._indices[name] = {}
            for key, obj in self._items.items():
                self._file(name, key, obj)

    # ---- index bookkeeping ----------------------------------------------------------------

    def _file(self, name: str, key: str, obj: T) -> None:
        index = self._indices[name]
        for value in _index_values(self._index_funcs[name], obj):
            index.setdefault(value, set()).add(key)

    def _unfile_all(self, key: str, obj: T) -> None:
        for name, fn in self._index_funcs.items():
            index = self._indices[name]
            for value in _index_values(fn, obj):
                keys = index.get(value)
                if keys is None:
                    continue
                keys.discard(key)
                if not keys:
                    del index[value]


# client-go calls the index-less interface Store; here every Store can be indexed.
Store = Indexer
