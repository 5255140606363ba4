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

Leader election (apimachinery/leaderelection.py). When more than one
scheduler or controller-manager may run -- several API servers on one etcd,
each with its control plane beside it, or separate processes -- each one
campaigns for its Lease (kube-system/kube-scheduler,
kube-system/kube-controller-manager) and runs its loops only while it holds
it. A separate process exits when it loses the Lease, as Kubernetes'
components do (its supervisor restarts it, and it campaigns anew); the
control plane inside `tinykube apiserver` cannot exit without taking the API
server down, so it stops its loops and campaigns again, with fresh informers,
which is what a restarted process would do.

The default (`leader_elect=None`): on for etcd storage, where other API
servers -- and so other control planes -- may share the cluster; off for
SQLite, where this API server owns the store alone: there a Lease would only
make a restarted server wait out its own predecessor's 15 s.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from functools import partial

from apimachinery.client import Client
from apimachinery.factory import SharedInformerFactory
from apimachinery.leaderelection import LeaderElectionConfig, LeaderElectionLost, run_elected
from apiserver.auth.authorizer import UserInfo
from apiserver.inflight import InflightLimits
from apiserver.listeners import ServingOptions
from apiserver.proxy import KubeletClientConfig
from apiserver.registry.eventttl import DEFAULT_EVENT_TTL
from apiserver.server import serve
from controllers.base import ControllerOptions
from controllers.manager import run_controller_manager, with_leader_election

log = logging.getLogger(__name__)

SCHEDULER_LEASE = "kube-scheduler"
CONTROLLER_MANAGER_LEASE = "kube-controller-manager"


async def run_scheduler(
    client: Client,
    factory: SharedInformerFactory | None = None,
    *,
    leader_election: LeaderElectionConfig | None = None,
) -> None:
    """Run the scheduler until cancelled (its own informers unless a factory is shared).

    With `leader_election`, only while holding its Lease (each term with its own
    informers); raises LeaderElectionLost when the Lease is lost.
    """
    if leader_election is not None:
        await run_elected(client, leader_election, lambda: run_scheduler(client))
        return
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
    leader_election: LeaderElectionConfig | None = None,
) -> None:
    """Scheduler and controllers against the API server at `address`, until cancelled.

    With `leader_election` (its timings; the names are the components'), each
    campaigns for its own Lease and, having lost it, campaigns again.
    """
    if not (scheduler or controllers):  # both run elsewhere: nothing to do until cancelled
        await asyncio.Event().wait()
    client = Client(address)
    factory = SharedInformerFactory(client)
    parts: list[Awaitable[None]] = []
    if leader_election is not None:
        if scheduler:
            election = replace(leader_election, resource_name=SCHEDULER_LEASE)
            parts.append(_campaign(partial(run_scheduler, client, leader_election=election)))
        if controllers:
            election = replace(leader_election, resource_name=CONTROLLER_MANAGER_LEASE)
            elected = with_leader_election(options or ControllerOptions(), election)
            parts.append(_campaign(partial(run_controller_manager, client, elected)))
    else:
        if scheduler:
            parts.append(run_scheduler(client, factory))
        if controllers:
            parts.append(run_controller_manager(client, options, factory=factory))
    try:
        await asyncio.gather(*parts)
    finally:
        await factory.stop()
        await client.close()


async def _campaign(term: Callable[[], Awaitable[None]]) -> None:
    """Run elected terms one after another: a lost Lease means campaigning again."""
    while True:
        try:
            await term()
            return
        except LeaderElectionLost as err:
            log.warning("leadership lost, campaigning again", extra={"reason": str(err)})


def default_leader_elect(storage: str) -> bool:
    """Whether to elect by default: when other API servers may share the store (etcd)."""
    return storage.startswith("etcd://")


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
    leader_elect: bool | None = None,
    leader_election: LeaderElectionConfig | None = None,
    advertise_address: str = "",
    inflight: InflightLimits | None = None,
) -> None:
    """`tinykube apiserver`: the API server, with the scheduler and controllers unless turned off.

    They dial the server's private loopback socket once it is open, through
    the client, exactly as they would dial it from another process.
    `leader_elect` None chooses by the storage (module docstring);
    `leader_election` gives the timings (default: Kubernetes').
    """
    options = options or ControllerOptions()
    if leader_elect is None:
        leader_elect = default_leader_elect(storage)
    election = None
    if leader_elect:
        election = leader_election or LeaderElectionConfig(SCHEDULER_LEASE)
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
        advertise_address=advertise_address,
        inflight=inflight,
        beside=partial(
            run_control_plane,
            scheduler=scheduler,
            controllers=controllers,
            options=options,
            leader_election=election,
        ),
    )
