"""`tinykube controller-manager`: the controllers as their own process (kube-controller-manager).

By default `tinykube apiserver` runs the controllers in its own process. This
command runs the same controllers against any API server, through the client
only, so they can be stopped, killed and restarted independently — which is
how the tests show that a controller killed mid-rollout resumes without a
duplicate replica. Run the API server with `--no-controllers` beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import click

from cli.context import Options, until_signalled

if TYPE_CHECKING:
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
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_obj
def controller_manager(
    opts: Options,
    only: str,
    node_monitor_grace_period: float,
    cluster_signing_cert_file: str,
    cluster_signing_key_file: str,
    verbose: bool,
) -> None:
    """Run the controllers against the API server (--server) in the foreground."""
    from cli.main import configure_logging
    from controllers.manager import run_controller_manager

    configure_logging(logging.DEBUG if verbose else logging.INFO)
    logger = logging.getLogger("cli.controller-manager")
    options = controller_options(
        node_monitor_grace_period, cluster_signing_cert_file, cluster_signing_key_file
    )
    names = [n.strip() for n in only.split(",") if n.strip()] or None

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
