"""Shared informers: one list + watch per resource, however many controllers want it.

The scheduler, the replicaset, deployment, endpoints, node-lifecycle and
garbage-collector controllers all watch Pods. Kubernetes' controller-manager
does not open one watch per controller: a SharedInformerFactory hands every
controller the same informer for a resource, and each adds its own handlers.
This is that factory.

    factory = SharedInformerFactory(client)
    pods = factory.informer(core_pb2.Pod)      # Informer[core_pb2.Pod], the same for all callers
    pods.add_handlers(on_add=queue_pod)
    factory.start()                            # one task per informer
    await factory.wait_for_sync()

An informer asked for after `start()` is started at once. The cached objects
are shared by every handler: read-only (copy before changing).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, overload

from apimachinery.client import Client, DynamicRef, M, ResourceRef, scheme_info
from apimachinery.informer import Informer, wait_for_cache_sync

_Key = tuple[str, str, str, str]


class SharedInformerFactory:
    """One informer per (resource, namespace, selectors), shared by every caller."""

    def __init__(self, client: Client, *, resync_period: float = 0.0) -> None:
        self.client = client
        self.resync_period = resync_period
        self._informers: dict[_Key, Informer[Any]] = {}
        self._tasks: dict[_Key, asyncio.Task[None]] = {}
        self._started = False

    @overload
    def informer(
        self,
        resource: type[M],
        namespace: str = "",
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> Informer[M]: ...
    @overload
    def informer(
        self,
        resource: DynamicRef,
        namespace: str = "",
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> Informer[Any]: ...
    def informer(
        self,
        resource: ResourceRef,
        namespace: str = "",
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> Informer[Any]:
        info = scheme_info(resource)
        key = (info.resource, namespace, label_selector, field_selector)
        inf = self._informers.get(key)
        if inf is None:
            inf = Informer(
                self.client,
                info,
                namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                resync_period=self.resync_period,
            )
            self._informers[key] = inf
            if self._started:
                self._start_one(key, inf)
        return inf

    def _start_one(self, key: _Key, inf: Informer[Any]) -> None:
        self._tasks[key] = asyncio.get_running_loop().create_task(inf.run())

    def start(self) -> None:
        self._started = True
        for key, inf in self._informers.items():
            if key not in self._tasks:
                self._start_one(key, inf)

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        return await wait_for_cache_sync(*self._informers.values(), timeout=timeout)

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self._started = False
