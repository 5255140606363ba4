"""`tinykube up | down | status | node-shell`: a local cluster of namespace nodes (kind's verbs).

    sudo tinykube up --nodes 2 [--runtime containerd|docker] [--name demo]
    sudo tinykube up --control-planes 3 --nodes 3      (etcd, HA: localcluster/stacked.py)
    sudo tinykube status [--name demo]
    sudo tinykube node-shell node1 -- ip addr          (exit code passed through)
    sudo tinykube node-shell underlay -- curl http://10.201.0.12:30080/
    sudo tinykube down [--name demo]

The work is localcluster.cluster.Cluster's; these commands parse flags,
print its progress and turn its errors into one `error:` line and exit 1.
Which cluster: `--name`, else the global `--cluster` / $TINYKUBE_CLUSTER,
else the most recent one `up` made, else "tinykube" (`up` uses `--name`
or "tinykube"). `node-shell` accepts a node's name or `underlay` (the
namespace that plays the host on the cluster's private network, where
NodePorts are reached from); without a command it starts $SHELL there.

`up`, `down` and `node-shell` need root. The user who ran `sudo tinykube
up` may then use every other command without sudo (`tinykube get nodes`):
the API socket belongs to their group, and whoever may open it is the
cluster's admin; `up` also writes them a kubeconfig with the admin's
certificate for use inside the cluster's network (localcluster/access.py).

`up --fast-failover` (hidden; or TINYKUBE_FAST_FAILOVER=1) shortens the
node lifecycle timings -- NotReady after ~6 s, eviction 5 s later -- for the
end-to-end tests' node failure scenarios.
"""

from __future__ import annotations

import os
import sys

import click

from apimachinery.clientcmd import ENV_CLUSTER
from localcluster import clusterstate

CLUSTER_META = "tinykube.cluster"  # ctx.meta key: the global --cluster flag


def _name(ctx: click.Context, name: str | None) -> str:
    if name:
        return name
    chosen = ctx.meta.get(CLUSTER_META) or os.environ.get(ENV_CLUSTER, "")
    return str(chosen) or clusterstate.current() or clusterstate.DEFAULT_NAME


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    raise click.exceptions.Exit(1)


def _progress(line: str) -> None:
    click.echo(line)
    sys.stdout.flush()


name_option = click.option(
    "--name", default=None, help="The cluster (default: --cluster, the most recent, tinykube)."
)


@click.command("up")
@click.option("--nodes", default=2, show_default=True, type=click.IntRange(1, 9))
@click.option(
    "--runtime",
    type=click.Choice(["containerd", "docker"]),
    default="containerd",
    show_default=True,
    help="Each node's container runtime.",
)
@click.option("--name", default=clusterstate.DEFAULT_NAME, show_default=True)
@click.option(
    "--control-planes",
    default=1,
    show_default=True,
    type=click.IntRange(1, 5),
    help="Nodes that run the control plane: 1 (SQLite on node1) or 3 (an etcd member, an"
    " API server, an elected scheduler and controller-manager on each of node1-3).",
)
@click.option(
    "--fast-failover",
    is_flag=True,
    hidden=True,
    envvar="TINYKUBE_FAST_FAILOVER",
    help="Short node lifecycle timings (tests).",
)
def up(nodes: int, runtime: str, name: str, control_planes: int, fast_failover: bool) -> None:
    """Create a cluster whose nodes are network namespaces on this host."""
    from localcluster.cluster import Cluster, ClusterError

    try:
        cluster = Cluster(
            name, nodes, runtime, fast_failover=fast_failover, control_planes=control_planes
        )
        cluster.up(progress=_progress)
    except (ClusterError, clusterstate.ClusterStateError) as err:
        _fail(str(err))
    except KeyboardInterrupt:
        raise click.exceptions.Exit(130) from None


@click.command("down")
@name_option
@click.pass_context
def down(ctx: click.Context, name: str | None) -> None:
    """Stop every process of the cluster and remove its namespaces, mounts and files."""
    from localcluster.cluster import Cluster, ClusterError

    if os.geteuid() != 0:
        _fail("tinykube down needs root: run it with sudo")
    try:
        Cluster(_name(ctx, name)).down(progress=_progress)
    except (ClusterError, clusterstate.ClusterStateError) as err:
        _fail(str(err))


@click.command("status")
@name_option
@click.pass_context
def status(ctx: click.Context, name: str | None) -> None:
    """Show the cluster's processes and nodes; exit 1 when something is down."""
    from localcluster.cluster import Cluster

    cluster_name = _name(ctx, name)
    try:
        state = clusterstate.load(cluster_name)
    except clusterstate.ClusterStateError as err:
        _fail(str(err))
        return
    cluster = Cluster(cluster_name)
    click.echo(
        f"cluster {state.name}: {len(state.nodes)} nodes"
        f"{f' ({state.control_planes} control planes)' if state.control_planes > 1 else ''}, "
        f"runtime {state.runtime}, "
        f"API {state.server} and {state.client_address}"
    )
    rows = [("COMPONENT", "NODE", "PID", "STATUS", "RSS", "LOG")]
    healthy = True
    for part in cluster.status():
        healthy = healthy and part.alive
        alive = "running" if part.alive else "DEAD"
        rss = f"{part.rss_kib / 1024:.0f}Mi" if part.rss_kib else "-"
        rows.append((part.key, part.node or "-", str(part.pid or "-"), alive, rss, part.log))
    try:
        ready = cluster.node_conditions()
    except Exception as err:  # the API server is down: say so, keep the process table
        ready = {}
        rows.append(("nodes", "-", "-", "UNKNOWN", "-", f"API server unreachable: {err}"))
        healthy = False
    for node in state.nodes:
        is_ready = ready.get(node, False)
        healthy = healthy and is_ready
        rows.append((f"node/{node}", node, "-", "Ready" if is_ready else "NotReady", "-", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if not healthy:
        raise click.exceptions.Exit(1)


@click.command(
    "node-shell",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("node")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@name_option
@click.pass_context
def node_shell(ctx: click.Context, node: str, command: tuple[str, ...], name: str | None) -> None:
    """Run COMMAND (default: a shell) in NODE's network namespace; its exit code is ours."""
    cluster_name = _name(ctx, name)
    try:
        state = clusterstate.load(cluster_name)
    except clusterstate.ClusterStateError as err:
        _fail(str(err))
        return
    if node == "underlay":
        namespace = f"{state.prefix}-ul"
    elif node in state.nodes:
        namespace = f"{state.prefix}-{node}"
    else:
        _fail(f"cluster {cluster_name!r} has no node {node!r} (nodes: {', '.join(state.nodes)})")
        return
    path = f"/run/netns/{namespace}"
    if not os.path.exists(path):
        _fail(f"namespace {namespace} does not exist: is the cluster up?")
    argv = list(command)
    if argv[:1] == ["--"]:  # click keeps the separator once options are no longer parsed
        argv = argv[1:]
    argv = argv or [os.environ.get("SHELL", "/bin/sh")]
    sys.stdout.flush()
    try:
        os.execvp("nsenter", ["nsenter", f"--net={path}", "--", *argv])
    except OSError as err:
        _fail(f"cannot run nsenter: {err}")
