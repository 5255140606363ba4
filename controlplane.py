"""The control plane's wiring: the API server, the scheduler and the controllers.

Kubernetes runs five peers over shared machinery: kube-apiserver,
kube-scheduler, kube-controller-manager, the kubelet and the network plugin.
tinykube keeps the first three in their own top-level packages (`apiserver/`,
`scheduler/`, `controllers/`), and this module is the one place that knows
all three. `apiserver/` imports neither of the others; they import nothing of
the server's: they are clients of its API.

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
from collections.abc import Awaitable, Sequence
from functools import partial

from apimachinery.client import Client
from apimachinery.factory import SharedInformerFactory
from apiserver.auth.authorizer import UserInfo
from apiserver.listeners import ServingOptions
from apiserver.proxy import KubeletClientConfig
from apiserver.registry.eventttl import DEFAULT_EVENT_TTL
from apiserver.server import serve
from controllers.base import ControllerOptions
from controllers.manager import run_controller_manager

log = logging.getLogger(__name__)


async def run_scheduler(client: Client, factory: SharedInformerFactory | None = None) -> None:
    """Run the scheduler until cancelled (its own informers unless a factory is shared)."""
    module = importlib.import_module("scheduler.scheduler")
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
    if not (scheduler or controllers):  # both run elsewhere: nothing to do until cancelled
        await asyncio.Event().wait()
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


async def serve_control_plane(
    data_dir: str,
    listen: str = "127.0.0.1:6443",
    *,
    extra_listen: Sequence[str] = (),
    serving: ServingOptions | None = None,
    static_tokens: dict[str, UserInfo] | None = None,
    kubelet_client: KubeletClientConfig | None = None,
    storage: str = "sqlite",
    scheduler: bool = True,
    controllers: bool = True,
    options: ControllerOptions | None = None,
    encryption_provider_config: str = "",
    event_ttl: float = DEFAULT_EVENT_TTL,
) -> None:
    """`tinykube apiserver`: the API server, with the scheduler and controllers unless turned off.

    They dial the server's private loopback socket once it is open, through
    the client, exactly as they would dial it from another process.
    """
    options = options or ControllerOptions()
    await serve(
        data_dir,
        listen,
        extra_listen=extra_listen,
        serving=serving,
        static_tokens=static_tokens,
        kubelet_client=kubelet_client,
        storage=storage,
        default_toleration_seconds=options.default_toleration_seconds,
        encryption_provider_config=encryption_provider_config,
        event_ttl=event_ttl,
        beside=partial(
            run_control_plane, scheduler=scheduler, controllers=controllers, options=options
        ),
    )
