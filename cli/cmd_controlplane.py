"""`tinykube controller-manager`: the controllers as their own process (kube-controller-manager).

By default `tinykube apiserver` runs the controllers in its own process. This
command runs the same controllers against any API server, through the client
only, so they can be stopped, killed and restarted independently — which is
how the tests show that a controller killed mid-rollout resumes without a
duplicate replica. Run the API server with `--no-controllers` beside it.

Leader election, with kube-controller-manager's flags (`leader_election_flags`,
shared with `tinykube scheduler` and `tinykube apiserver`):

    --leader-elect[=true|false]          default true: another controller-manager may run
    --leader-elect-lease-duration 15s    --leader-elect-renew-deadline 10s
    --leader-elect-retry-period 2s       --leader-elect-resource-name kube-controller-manager
    --leader-elect-resource-namespace kube-system

With it on, the controllers run only while this process holds the Lease, and
the process exits with status 1 ("leaderelection lost") when it cannot renew
it in time, as kube-controller-manager does: a supervisor restarts it and it
campaigns again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import click

from cli.context import Options, until_signalled
from cli.durations import Duration

if TYPE_CHECKING:
    from apimachinery.leaderelection import LeaderElectionConfig
    from controllers.base import ControllerOptions


F = TypeVar("F", bound=Callable[..., object])


def controller_flags(fn: F) -> F:
    """The controller manager's flags, shared with `tinykube apiserver` (which runs it too)."""
    for option in reversed(
        [
            click.option(
                "--node-monitor-grace-period",
                type=float,
                default=40.0,
                show_default=True,
                help="Seconds without a Lease renewal before a node is NotReady/Unknown.",
            ),
            click.option(
                "--cluster-signing-cert-file",
                default="",
                type=click.Path(dir_okay=False),
                help="The CA that signs approved CSRs (pki/ca.crt); none: no signing.",
            ),
            click.option(
                "--cluster-signing-key-file",
                default="",
                type=click.Path(dir_okay=False),
                help="The private key of --cluster-signing-cert-file (pki/ca.key).",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def leader_election_flags(resource_name: str | None) -> Callable[[F], F]:
    """The --leader-elect* flags. With a resource name (a component of its own) the
    flag defaults to true and the Lease's name and namespace may be set; without one
    (`tinykube apiserver`, which names both Leases itself) --leader-elect has no
    default: the caller chooses by the storage."""
    options = [
        click.option(
            "--leader-elect",
            type=click.BOOL,
            is_flag=False,
            flag_value=True,
            default=True if resource_name else None,
            help="Run the loops only while holding a Lease (default: "
            + ("true" if resource_name else "true on etcd, false on SQLite")
            + "). --leader-elect=false to run without one.",
        ),
        click.option(
            "--leader-elect-lease-duration",
            type=Duration(),
            default="15s",
            show_default=True,
            help="How long a candidate waits after the Lease last changed before taking it.",
        ),
        click.option(
            "--leader-elect-renew-deadline",
            type=Duration(),
            default="10s",
            show_default=True,
            help="How long the leader tries to renew before it stops leading.",
        ),
        click.option(
            "--leader-elect-retry-period",
            type=Duration(),
            default="2s",
            show_default=True,
            help="How often candidates try to acquire or renew.",
        ),
    ]
    if resource_name:
        options += [
            click.option(
                "--leader-elect-resource-name",
                default=resource_name,
                show_default=True,
                help="The Lease's name.",
            ),
            click.option(
                "--leader-elect-resource-namespace",
                default="kube-system",
                show_default=True,
                help="The Lease's namespace.",
            ),
        ]

    def decorate(fn: F) -> F:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def leader_election_config(
    flags: dict[str, object], resource_name: str
) -> LeaderElectionConfig | None:
    """The LeaderElectionConfig the --leader-elect* flags ask for (None: off); a bad
    combination is a usage error naming client-go's rule."""
    from apimachinery.leaderelection import LeaderElectionConfig

    if not flags["leader_elect"]:
        return None
    try:
        return LeaderElectionConfig(
            resource_name=str(flags.get("leader_elect_resource_name") or resource_name),
            resource_namespace=str(flags.get("leader_elect_resource_namespace") or "kube-system"),
            lease_duration=float(str(flags["leader_elect_lease_duration"])),
            renew_deadline=float(str(flags["leader_elect_renew_deadline"])),
            retry_period=float(str(flags["leader_elect_retry_period"])),
        )
    except ValueError as err:
        raise click.UsageError(f"leader election: {err}") from None


def controller_options(
    grace: float, signing_cert: str, signing_key: str, toleration: int = 300
) -> ControllerOptions:
    """ControllerOptions from those flags (the node monitor period follows the grace)."""
    from controllers.base import ControllerOptions

    return ControllerOptions(
        node_monitor_grace_period=grace,
        node_monitor_period=min(5.0, max(0.5, grace / 8)),
        default_toleration_seconds=toleration,
        cluster_signing_cert_file=signing_cert,
        cluster_signing_key_file=signing_key,
    )


@click.command("controller-manager")
@click.option(
    "--controllers",
    "only",
    default="",
    help="Comma-separated controllers to run (default: all): "
    "deployment,replicaset,endpoints,nodeipam,nodelifecycle,garbagecollector,namespace,"
    "csrapproving,csrsigning,tokencleaner.",
)
@controller_flags
@leader_election_flags("kube-controller-manager")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_obj
def controller_manager(opts: Options, /, **flags: object) -> None:
    """Run the controllers against the API server (--server) in the foreground."""
    from apimachinery.leaderelection import LeaderElectionLost
    from cli.main import configure_logging
    from controllers.manager import run_controller_manager, with_leader_election

    configure_logging(logging.DEBUG if flags["verbose"] else logging.INFO)
    logger = logging.getLogger("cli.controller-manager")
    options = with_leader_election(
        controller_options(
            float(str(flags["node_monitor_grace_period"])),
            str(flags["cluster_signing_cert_file"]),
            str(flags["cluster_signing_key_file"]),
        ),
        leader_election_config(flags, "kube-controller-manager"),
    )
    names = [n.strip() for n in str(flags["only"]).split(",") if n.strip()] or None

    async def run() -> None:
        client = opts.new_client()  # the kubeconfig's identity, if any
        try:
            if await until_signalled(run_controller_manager(client, options, only=names)):
                logger.info("stopped", extra={"server": opts.server})
        finally:
            await client.close()

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run())
    except ValueError as err:  # an unknown controller name
        raise click.ClickException(str(err)) from None
    except LeaderElectionLost as err:  # kube-controller-manager exits: its supervisor restarts it
        logger.error("leaderelection lost", extra={"error": str(err)})
        raise click.exceptions.Exit(1) from None
