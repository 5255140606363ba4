"""`tinykube explain-placement` and `tinykube scheduler`.

`explain-placement pod/NAME [--node N]` answers "why is my pod (not) on that
node?" for the cluster as it is now: it lists Nodes, Pods and Services
through the client and re-runs the scheduler's framework locally
(scheduler/explain.py), printing every Filter's verdict and every
Score for that node, or for every node without `--node`. It changes
nothing. The placement record shown by `describe pod` is the other half:
what the scheduler saw when it decided.

`scheduler --server ADDR` runs the scheduler as its own process, talking to
the API server only through the client (`tinykube apiserver` runs the same
scheduler in-process by default). Stop it with SIGTERM or Ctrl-C. It takes
kube-scheduler's --leader-elect* flags (cli/cmd_controlplane.py): by default
it schedules only while holding the Lease kube-system/kube-scheduler, so
several may run, and exits with status 1 ("leaderelection lost") when it
cannot renew the Lease in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import click

from cli import context
from cli.cmd_controlplane import leader_election_config, leader_election_flags
from cli.context import CommandError, Options, effective, namespace_option, until_signalled

if TYPE_CHECKING:
    from apimachinery.client import Client

_POD_WORDS = ("pod", "pods", "po")


def parse_pod_arg(arg: str) -> str:
    """`pod/NAME`, `pods/NAME`, `po/NAME` or `NAME` -> NAME."""
    kind, sep, name = arg.partition("/")
    if not sep:
        return arg
    if kind.lower() not in _POD_WORDS or not name:
        raise CommandError(f"explain-placement works on pods: expected pod/NAME, got {arg!r}")
    return name


@click.command("explain-placement")
@click.argument("target")
@click.option("--node", default=None, help="Explain this node only (default: every node).")
@namespace_option
@click.pass_obj
def explain_placement(opts: Options, target: str, node: str | None, namespace: str | None) -> None:
    """Re-run the scheduler's filters and scores for a pod on today's cluster state."""
    opts = effective(opts, namespace)
    from scheduler.explain import explain

    async def verb(client: Client) -> int:
        name = parse_pod_arg(target)
        pod = await client.get("pods", name, opts.namespace)
        nodes, _ = await client.list("nodes")
        pods, _ = await client.list("pods")
        services, _ = await client.list("services", pod.metadata.namespace)
        for line in explain(pod, nodes, pods, node, services=services):
            click.echo(line)
        return 0

    context.exit_with(context.run(opts, verb))


@click.command("scheduler")
@leader_election_flags("kube-scheduler")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_obj
def scheduler(opts: Options, /, **flags: object) -> None:
    """Run the scheduler against the API server (--server) in the foreground."""
    from apimachinery.leaderelection import LeaderElectionLost
    from cli.main import configure_logging
    from controlplane import run_scheduler

    configure_logging(logging.DEBUG if flags["verbose"] else logging.INFO)
    logger = logging.getLogger("cli.scheduler")
    election = leader_election_config(flags, "kube-scheduler")

    async def run() -> None:
        client = opts.new_client()  # the kubeconfig's identity, if any
        try:
            if await until_signalled(run_scheduler(client, leader_election=election)):
                logger.info("stopped", extra={"server": opts.server})
        finally:
            await client.close()

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run())
    except LeaderElectionLost as err:  # kube-scheduler exits: its supervisor restarts it
        logger.error("leaderelection lost", extra={"error": str(err)})
        raise click.exceptions.Exit(1) from None
