"""The controller manager: runs the registered controllers over shared informers.

    await run_controller_manager(client, ControllerOptions())     # every controller
    await run_controller_manager(client, opts, only=["replicaset"])

Start-up order is Kubernetes': construct every controller (each asks the
factory for the informers it needs and adds its handlers), start the
informers, wait until every cache has synced — a controller acting on a
half-filled cache would, say, create pods that already exist — and only then
start the workers.
"""

from __future__ import annotations

import asyncio
import importlib
import logging

from apimachinery import tracing
from apimachinery.client import Client
from apimachinery.factory import SharedInformerFactory
from controllers import CONTROLLERS
from controllers.base import Controller, ControllerContext, ControllerOptions

log = logging.getLogger(__name__)

# Modules that register controllers; importing them fills CONTROLLERS.
CONTROLLER_MODULES = (
    "controllers.replicaset",
    "controllers.deployment",
    "controllers.endpoints",
    "controllers.nodeipam",
    "controllers.nodelifecycle",
    "controllers.garbagecollector",
    "controllers.namespace",
    "controllers.csrapproving",
    "controllers.csrsigning",
    "controllers.tokencleaner",
)


def load_controllers() -> None:
    for module in CONTROLLER_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
            log.debug("controller module not present", extra={"module": module})


async def run_controller_manager(
    client: Client,
    options: ControllerOptions | None = None,
    *,
    only: list[str] | None = None,
    factory: SharedInformerFactory | None = None,
) -> None:
    """Run controllers until cancelled."""
    load_controllers()
    options = options or ControllerOptions()
    own_factory = factory is None
    factory = factory or SharedInformerFactory(client)
    ctx = ControllerContext(client, factory, options)
    tracing.configure(client, "kube-controller-manager")  # spans go to the API server
    names = only if only is not None else sorted(CONTROLLERS)
    unknown = [n for n in names if n not in CONTROLLERS]
    if unknown:
        raise ValueError(
            f"unknown controllers: {', '.join(unknown)} (known: {sorted(CONTROLLERS)})"
        )
    controllers: list[Controller] = [CONTROLLERS[n](ctx) for n in names]
    factory.start()
    await factory.wait_for_sync()
    log.info("controllers started", extra={"controllers": ",".join(names)})
    try:
        await asyncio.gather(*(c.run() for c in controllers))
    finally:
        if own_factory:
            await factory.stop()
