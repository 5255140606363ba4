"""The controller manager: runs the registered controllers over shared informers.

    await run_controller_manager(client, ControllerOptions())     # every controller
    await run_controller_manager(client, opts, only=["replicaset"])

Start-up order is Kubernetes': construct every controller (each asks the
factory for the informers it needs and adds its handlers), start the
informers, wait until every cache has synced — a controller acting on a
half-filled cache would, say, create pods that already exist — and only then
start the workers.

Leader election. Several controller-managers may run against one cluster
(one per control-plane machine), and only one may act: with
`ControllerManagerOptions(leader_election=LeaderElectionConfig(
"kube-controller-manager"))` the manager first campaigns for the Lease
kube-system/kube-controller-manager (apimachinery/leaderelection.py) and
builds its informers and controllers only once it leads -- each term from a
fresh list, as a restarted process would. When it cannot renew the Lease
within the renew deadline, the controllers are cancelled and
LeaderElectionLost is raised: `tinykube controller-manager` exits with it
(as kube-controller-manager does), the control plane inside `tinykube
apiserver` campaigns again (controlplane.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import logging
from dataclasses import dataclass

from apimachinery import tracing
from apimachinery.client import Client
from apimachinery.factory import SharedInformerFactory
from apimachinery.leaderelection import LeaderElectionConfig, run_elected
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


LEASE_NAME = "kube-controller-manager"


@dataclass
class ControllerManagerOptions(ControllerOptions):
    """The controllers' options plus the manager's own (kube-controller-manager's
    generic configuration): its leader election, None to act without one."""

    leader_election: LeaderElectionConfig | None = None


def with_leader_election(
    options: ControllerOptions, election: LeaderElectionConfig | None
) -> ControllerManagerOptions:
    """`options` with the manager's leader election set."""
    values = {f.name: getattr(options, f.name) for f in dataclasses.fields(ControllerOptions)}
    return ControllerManagerOptions(**values, leader_election=election)


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
    """Run controllers until cancelled (with a leader election: while leading)."""
    load_controllers()
    options = options or ControllerOptions()
    names = only if only is not None else sorted(CONTROLLERS)
    unknown = [n for n in names if n not in CONTROLLERS]
    if unknown:
        raise ValueError(
            f"unknown controllers: {', '.join(unknown)} (known: {sorted(CONTROLLERS)})"
        )
    election = getattr(options, "leader_election", None)
    if election is not None:
        term_options = options
        await run_elected(client, election, lambda: _run(client, term_options, names, None))
        return
    await _run(client, options, names, factory)


async def _run(
    client: Client,
    options: ControllerOptions,
    names: list[str],
    factory: SharedInformerFactory | None,
) -> None:
    """One term: informers, a synced cache, then every controller's workers."""
    own_factory = factory is None
    factory = factory or SharedInformerFactory(client)
    ctx = ControllerContext(client, factory, options)
    tracing.configure(client, "kube-controller-manager")  # spans go to the API server
    controllers: list[Controller] = [CONTROLLERS[n](ctx) for n in names]
    factory.start()
    await factory.wait_for_sync()
    log.info("controllers started", extra={"controllers": ",".join(names)})
    try:
        await asyncio.gather(*(c.run() for c in controllers))
    finally:
        if own_factory:
            await factory.stop()
