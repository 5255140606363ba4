"""The control plane beside the API server: scheduler and controllers, as clients.

`tinykube apiserver` runs them in its own process by default, the way a
single-binary distribution does; `tinykube scheduler` and `tinykube
controller-manager` run the same code as separate processes. Either way they
hold no reference to the server's internals: they connect to its address
through the client, list, watch and write like any other client. That is
what makes it possible to kill one mid-rollout, restart it, and have it pick
up exactly where the cluster is (every controller is level-triggered).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable

from apimachinery.client import Client
from apimachinery.factory import SharedInformerFactory
from apiserver.controllers.base import ControllerOptions
from apiserver.controllers.manager import run_controller_manager

log = logging.getLogger(__name__)


async def run_scheduler(client: Client, factory: SharedInformerFactory | None = None) -> None:
    """Run the scheduler until cancelled (its own informers unless a factory is shared)."""
    module = importlib.import_module("apiserver.scheduler.scheduler")
    own = factory is None
    factory = factory or SharedInformerFactory(client)
    scheduler = module.Scheduler(client, factory)
    factory.start()
    try:
        await scheduler.run()
    finally:
        if own:
            await factory.stop()


async def run_control_plane(
    address: str,
    *,
    scheduler: bool = True,
    controllers: bool = True,
    options: ControllerOptions | None = None,
) -> None:
    """Scheduler and controllers against the API server at `address`, until cancelled."""
    if not (scheduler or controllers):
        return
    client = Client(address)
    factory = SharedInformerFactory(client)
    parts: list[Awaitable[None]] = []
    if scheduler:
        parts.append(run_scheduler(client, factory))
    if controllers:
        parts.append(run_controller_manager(client, options, factory=factory))
    try:
        await asyncio.gather(*parts)
    finally:
        await factory.stop()
        await client.close()
