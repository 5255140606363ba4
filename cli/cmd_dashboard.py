"""`tinykube dashboard`: a live web view of the cluster, for one user, on this machine.

    $ tinykube dashboard
    Starting to serve on 127.0.0.1:41233
    Open http://127.0.0.1:41233/?token=3q2-7w... (this run's secret; Ctrl-C stops it)

The page shows, as they change: the nodes with their pods (status, IP, restarts),
the Services with their endpoints, why the scheduler put each pod where it is
(its placement record), the packet path of a Service request from a pod on a
node you choose (client -> nft rule -> VXLAN -> pod), and the trace of the latest
change when the API server keeps traces. docs/dashboard.md has a picture.

How it is built (the counterpart is `kubectl proxy` with a Kubernetes Dashboard
behind it, folded into one small process):

    browser --HTTP, loopback, secret cookie--> this process --the user's kubeconfig-->
        API server (gRPC watch through informers)

* cli/dashboard/server.py: the HTTP server, why it runs here rather than in the
  API server, its routes and headers;
* cli/dashboard/auth.py: the per-run secret: printed URL, then an HttpOnly
  SameSite=Strict cookie; every request without it is a 401;
* cli/dashboard/live.py: informers and the server-sent event stream;
* cli/dashboard/view.py: API objects -> the JSON document the page draws;
* cli/dashboard/static/: the page itself, plain HTML, CSS and JavaScript;
* netplugin/pathview.py: the packet path, from the proxy's and overlay's state.

Flags: `-n NAMESPACE` / `-A` choose the pods and Services shown (nodes are
cluster-wide); `--port` (0: any free port) and `--address` (a loopback address
only; from another machine, use an SSH tunnel). The command runs until SIGINT or
SIGTERM, exit 0; an unreachable API server is kubectl's one line and exit 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from cli import context
from cli.context import CommandError, Options, effective, namespace_option

if TYPE_CHECKING:
    from apimachinery.client import Client


async def serve_dashboard(
    client: Client, namespace: str, address: str, port: int, echo: bool = True
) -> int:
    """Start the informers, then the server; print the address; run until cancelled."""
    import asyncio

    from cli.dashboard.auth import new_secret
    from cli.dashboard.live import LiveCluster
    from cli.dashboard.server import DashboardServer
    from cli.dashboard.traces import TraceFeed

    live = LiveCluster(client, namespace, traces=TraceFeed(client))
    try:
        server = DashboardServer(live, address=address, port=port)
    except (ValueError, RuntimeError) as err:  # a public --address; static files not installed
        raise CommandError(str(err)) from None
    try:
        await live.start()
        try:
            url = await server.start(new_secret())
        except OSError as err:
            raise CommandError(f"unable to listen on {address}:{port}: {err.strerror}") from None
        assert server.gate is not None
        if echo:
            click.echo(f"Starting to serve on {address}:{server.gate.port}")
            click.echo(f"Open {url} (this run's secret; Ctrl-C stops it)")
        await asyncio.Event().wait()
    finally:
        await server.close()
        await live.stop()
    return 0


@click.command("dashboard")
@click.option(
    "--address",
    default="127.0.0.1",
    show_default=True,
    help="The loopback address to serve on (127.0.0.1 or ::1).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="The port to serve on (0: any free port).",
)
@click.option(
    "-A", "--all-namespaces", is_flag=True, help="Show pods and Services of every namespace."
)
@namespace_option
@click.pass_obj
def dashboard(
    opts: Options, address: str, port: int, all_namespaces: bool, namespace: str | None
) -> None:
    """Serve a live web view of the cluster."""
    opts = effective(opts, namespace)
    scope = "" if all_namespaces else opts.namespace

    async def run(client: Client) -> int:
        await context.until_signalled(serve_dashboard(client, scope, address, port))
        return 0

    context.exit_with(context.run(opts, run))
