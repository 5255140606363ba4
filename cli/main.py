"""The `tinykube` command group: global flags, the verbs, and `tinykube apiserver`.

Global flags come before the verb (`tinykube --server 10.0.0.1:6443 get
pods`); `-n` is accepted both there and after the verb, as kubectl users
type it. The server address is resolved lazily (cli.config) so that
`tinykube --help` works with a broken config file.

`tinykube apiserver` runs the API server in the foreground with structured
logs on stderr -- one line per record, a constant message then the context
as key=value pairs:

    2024-05-01T10:00:00.123Z INFO apiserver.server serving listen=127.0.0.1:6443 storage=sqlite

SIGTERM and SIGINT cancel the server task; `serve` shuts down gracefully in
its own `finally` and the process exits 0, which is what systemd and
`tinykube up` expect from a clean stop.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from typing import Any

import click

from cli import (
    cmd_apply,
    cmd_controlplane,
    cmd_get,
    cmd_kubelet,
    cmd_logs,
    cmd_netplugin,
    cmd_node,
    cmd_placement,
    cmd_render,
    cmd_rollout,
    cmd_run,
    cmd_up,
    config,
)
from cli.context import Options

# The attributes every LogRecord has; anything else came in through `extra=`.
_RECORD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)


class KeyValueFormatter(logging.Formatter):
    """`<time> <LEVEL> <logger> <msg> key=value ...`: the structured line every process logs."""

    def format(self, record: logging.LogRecord) -> str:
        at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [
            f"{at}.{int(record.msecs):03d}Z",
            record.levelname,
            record.name,
            record.getMessage(),
        ]
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                parts.append(f"{key}={_quote(value)}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _quote(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' ="\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--server",
    "-s",
    default=None,
    metavar="HOST:PORT",
    help="API server address (else $TINYKUBE_SERVER, the config file, 127.0.0.1:6443).",
)
@click.option(
    "-n", "--namespace", default=None, help="Namespace for the request (default: default)."
)
@click.option(
    "--cluster",
    default=None,
    metavar="NAME",
    help="A local cluster of `tinykube up` (else $TINYKUBE_CLUSTER, the most recent).",
)
@click.pass_context
def cli(ctx: click.Context, server: str | None, namespace: str | None, cluster: str | None) -> None:
    """tinykube controls a tinykube cluster, as kubectl controls Kubernetes."""
    ctx.meta[cmd_up.CLUSTER_META] = cluster or ""
    if ctx.invoked_subcommand in ("apiserver", "up", "down", "status", "node-shell"):
        return
    try:
        address = config.resolve_server(server, cluster=cluster)
    except config.ConfigError as err:
        click.echo(f"error: {err}", err=True)
        raise click.exceptions.Exit(1) from None
    ctx.obj = Options(address, namespace or "default", namespace is not None)


@cli.command("apiserver")
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory for the store (created if missing).",
)
@click.option(
    "--listen",
    "listen_addresses",
    multiple=True,
    default=["127.0.0.1:6443"],
    show_default=True,
    help="gRPC listen address: HOST:PORT or unix:/PATH; repeat to serve several.",
)
@click.option("--storage", default="sqlite", show_default=True, help="Storage backend.")
@click.option(
    "--scheduler/--no-scheduler", default=True, show_default=True, help="Run the scheduler here."
)
@click.option(
    "--controllers/--no-controllers",
    default=True,
    show_default=True,
    help="Run the controllers here.",
)
@click.option(
    "--node-monitor-grace-period",
    type=float,
    default=40.0,
    show_default=True,
    help="Seconds without a Lease renewal before a node is NotReady/Unknown.",
)
@click.option(
    "--default-toleration-seconds",
    type=int,
    default=300,
    show_default=True,
    help="How long pods tolerate a not-ready/unreachable node before eviction.",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def apiserver(
    data_dir: str,
    listen_addresses: tuple[str, ...],
    storage: str,
    scheduler: bool,
    controllers: bool,
    node_monitor_grace_period: float,
    default_toleration_seconds: int,
    verbose: bool,
) -> None:
    """Run the API server (with scheduler and controllers) in the foreground."""
    configure_logging(logging.DEBUG if verbose else logging.INFO)
    from apiserver.controllers.base import ControllerOptions
    from apiserver.server import serve

    options = ControllerOptions(
        node_monitor_grace_period=node_monitor_grace_period,
        node_monitor_period=min(5.0, max(0.5, node_monitor_grace_period / 8)),
        default_toleration_seconds=default_toleration_seconds,
    )

    listen, *extra_listen = listen_addresses

    async def run() -> None:
        task = asyncio.ensure_future(
            serve(
                data_dir,
                listen,
                extra_listen=extra_listen,
                storage=storage,
                scheduler=scheduler,
                controllers=controllers,
                options=options,
                default_toleration_seconds=default_toleration_seconds,
            )
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            logging.getLogger("cli.apiserver").info("stopped", extra={"listen": listen})

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    except (OSError, RuntimeError) as err:  # e.g. the listen address is taken
        logging.getLogger("cli.apiserver").error("failed", extra={"error": str(err)})
        raise click.exceptions.Exit(1) from None


for _command in (
    cmd_apply.apply,
    cmd_apply.create,
    cmd_apply.delete,
    cmd_get.get,
    cmd_get.describe_cmd,
    cmd_get.api_resources,
    cmd_get.version,
):
    cli.add_command(_command)
cli.add_command(cmd_node.cordon)
cli.add_command(cmd_node.uncordon)
cli.add_command(cmd_node.drain)
cli.add_command(cmd_placement.explain_placement)
cli.add_command(cmd_placement.scheduler)
cli.add_command(cmd_rollout.scale)
cli.add_command(cmd_rollout.set_group)
cli.add_command(cmd_rollout.rollout)
cli.add_command(cmd_kubelet.kubelet)
cli.add_command(cmd_netplugin.netplugin)
cli.add_command(cmd_logs.logs)
cli.add_command(cmd_logs.exec_cmd)
cli.add_command(cmd_controlplane.controller_manager)
cli.add_command(cmd_render.node)
cli.add_command(cmd_run.run)
for _command in (cmd_up.up, cmd_up.down, cmd_up.status, cmd_up.node_shell):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point (`tinykube = "cli.main:main"`)."""
    cli(prog_name="tinykube")


if __name__ == "__main__":
    main()
