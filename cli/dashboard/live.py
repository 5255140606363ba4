"""The live half of the dashboard: informers in, one document per change out to every browser.

The dashboard is a client like any other component: it watches the API with the
informers every controller uses (apimachinery/informer.py), so it costs the API
server one list and one watch per kind, however many browsers look. The flow:

    API watch -> informer caches (nodes; pods, services, endpoints in the namespace)
              -> a handler marks the state dirty (handlers only mark, as controllers'
                 only enqueue)
              -> the publisher: at most one document per `min_interval` (0.2 s) --
                 a burst of 100 pod changes is one or two documents, never 100
              -> view.snapshot(caches) as JSON, generation + 1
              -> every open event stream sends it (server-sent events):

    retry: 2000

    event: state
    id: 7
    data: {"generation": 7, "nodes": [...], "pods": [...], ...}

A stream always sends the newest document and skips any it had no time to send (a
slow browser sees fewer frames, never a backlog); a quiet stream sends a comment
line every `heartbeat` seconds, so a dead connection is found and closed. The
browser's EventSource reconnects by itself after `retry` milliseconds; nothing
polls. The document carries everything, so a reconnect needs no history.

Access is the user's own: the client has the kubeconfig's identity, and a kind
the user may not list (RBAC) is not watched; the document names it under `errors`
with the server's sentence, and the page shows that instead of an empty list.

The packet path (`path`) is computed on request from the same caches by
netplugin/pathview.py, and the trace of the latest change comes from the API
server's span store through `traces` when one is given (cli/dashboard/traces.py:
spans have no watch, so it asks every 2 s and marks the state dirty on news).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from apimachinery import errors
from apimachinery.client import Client
from apimachinery.factory import SharedInformerFactory
from apimachinery.informer import Informer
from cli.dashboard import view
from cli.dashboard.traces import TraceFeed
from netplugin import pathview

KINDS = ("nodes", "pods", "services", "endpoints")


class LiveCluster:
    """Informers on the four kinds the page shows, and the documents made from them."""

    def __init__(
        self,
        client: Client,
        namespace: str,
        *,
        min_interval: float = 0.2,
        heartbeat: float = 15.0,
        traces: TraceFeed | None = None,
    ) -> None:
        self.client = client
        self.namespace = namespace  # "": all namespaces
        self.min_interval = min_interval
        self.heartbeat = heartbeat
        self.traces = traces
        self.factory = SharedInformerFactory(client)
        self.informers: dict[str, Informer[Any]] = {}
        self.errors: dict[str, str] = {}
        self.generation = 0
        self.latest = b""  # the newest document, JSON
        self._dirty = asyncio.Event()
        self._tick = asyncio.Event()  # replaced by a new one each time a document is published
        self._tasks: list[asyncio.Task[None]] = []

    # ---- start and stop --------------------------------------------------------------------

    async def start(self, sync_timeout: float = 30.0) -> None:
        """Probe what the user may list, start the informers, publish the first document."""
        for kind in KINDS:
            scope = "" if kind == "nodes" else self.namespace
            try:
                await self.client.list(kind, scope)
            except (errors.Forbidden, errors.Unauthorized) as err:
                self.errors[kind] = err.message
                continue
            informer = self.factory.informer(kind, scope)
            informer.add_handlers(self.changed, self.changed, self.changed)
            self.informers[kind] = informer
        self.factory.start()
        await self.factory.wait_for_sync(sync_timeout)
        self._dirty.set()
        self._publish()
        self._tasks.append(asyncio.ensure_future(self._publish_forever()))
        if self.traces is not None:
            self._tasks.append(asyncio.ensure_future(self.traces.run(self.changed)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.factory.stop()
        if self.traces is not None:
            await self.traces.close()

    # ---- from events to documents ------------------------------------------------------------

    def changed(self, *_: Any) -> None:
        """Every informer handler: mark dirty, nothing more."""
        self._dirty.set()

    def cached(self, kind: str) -> list[Any]:
        informer = self.informers.get(kind)
        return informer.store.list() if informer is not None else []

    def _publish(self) -> None:
        self._dirty.clear()
        self.generation += 1
        document = view.snapshot(
            nodes=self.cached("nodes"),
            pods=self.cached("pods"),
            services=self.cached("services"),
            endpoints=self.cached("endpoints"),
            context={"server": self.client.server, "namespace": self.namespace},
            errors=self.errors,
            generation=self.generation,
            trace=self.traces.current if self.traces is not None else None,
        )
        self.latest = json.dumps(document, separators=(",", ":")).encode()
        tick, self._tick = self._tick, asyncio.Event()
        tick.set()

    async def _publish_forever(self) -> None:
        while True:
            await self._dirty.wait()
            self._publish()
            await asyncio.sleep(self.min_interval)

    # ---- what the server serves ----------------------------------------------------------

    async def stream(self) -> AsyncIterator[bytes]:
        """Server-sent events: the newest document whenever there is a newer one."""
        yield b"retry: 2000\n\n"
        sent = 0
        while True:
            if self.generation != sent:
                sent = self.generation
                yield b"event: state\nid: %d\ndata: %s\n\n" % (sent, self.latest)
                continue
            tick = self._tick
            try:
                await asyncio.wait_for(tick.wait(), self.heartbeat)
            except asyncio.TimeoutError:
                yield b": keep-alive\n\n"

    def path(self, service: str, port: str, client_node: str) -> dict[str, Any]:
        """The packet path for `service` ("ns/name") from a pod on `client_node`.

        Raises pathview.PathError naming what is missing."""
        for kind in ("services", "nodes"):
            if kind in self.errors:
                raise pathview.PathError(f"cannot draw the path: {self.errors[kind]}")
        namespace, _, name = service.partition("/")
        if not name:
            raise pathview.PathError(f"service {service!r}: want NAMESPACE/NAME")
        svc = self.informers["services"].store.get(service)
        if svc is None:
            raise pathview.PathError(f'services "{name}" not found in namespace "{namespace}"')
        endpoints_informer = self.informers.get("endpoints")
        endpoints = endpoints_informer.store.get(service) if endpoints_informer else None
        found = pathview.service_path(svc, endpoints, self.cached("nodes"), client_node, port)
        return found.to_dict()
