"""`top node` and `top pod`: CPU and memory now, as kubectl top shows them.

The numbers travel from the cgroups on each node to this table:

    cgroups -> kubelet KubeletStats.Summary -> API server Metrics (metrics.k8s.io)
            -> tinykube top (the gRPC Metrics service) / kubectl top (HTTP)

(kubelet/stats/ and apiserver/metrics.py tell each step.) The table is
kubectl's, cell for cell (k8s.io/kubectl/pkg/metricsutil), with the headers kubectl
1.32 prints (older kubectls wrote CPU% and MEMORY%):

    $ tinykube top nodes
    NAME    CPU(cores)   CPU(%)   MEMORY(bytes)   MEMORY(%)
    node1   250m         12%      1034Mi          13%
    $ tinykube top pods -A --sort-by memory
    NAMESPACE     NAME          CPU(cores)   MEMORY(bytes)
    default       web-7d4b9-x   3m           12Mi

CPU is in millicores, rounded up (329087452 nanocores -> "330m"); memory is
the working set in MiB, rounded down; a node's percentages are of its
allocatable (Node status), truncated. A node with no metrics (its kubelet
down) is a row of <unknown>. Sorting is by name (by namespace first with
-A), or by CPU or memory, largest first; with --containers each container is
a row under its pod.

kubectl's words where metrics are missing:

    error: Metrics API not available      the server has no metrics service
    error: metrics not available yet      none of the asked nodes/pods has metrics
    error: Metrics not available for pod default/web, age: 3m10.5s
                                          a pod older than two minutes without them
    No resources found in default namespace.   (stderr, exit 0) nothing to show
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click
import grpc
import grpc.aio

from apimachinery.quantity import milli_value, value
from cli import context
from cli.context import CommandError, Options, effective, namespace_option
from cli.tabwriter import GET_MIN_WIDTH, GET_PADDING, render
from protos import metrics_pb2, metrics_pb2_grpc

if TYPE_CHECKING:
    from apimachinery.client import Client

NODE_COLUMNS = ("NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)")
POD_COLUMNS = ("NAME", "CPU(cores)", "MEMORY(bytes)")
UNKNOWN = "<unknown>"
SORT_FIELDS = ("cpu", "memory")
METRICS_CREATION_DELAY = 120.0  # kubectl's: younger pods may simply not have metrics yet
MIB = 1024 * 1024


class MetricsClient:
    """The API server's Metrics service on a channel of its own (same address, same identity)."""

    def __init__(self, client: Client) -> None:
        from apimachinery.channel import Connection, open_channel

        self.connection = Connection(
            client.server, timeout=client.timeout, credentials=client.credentials
        )
        self.channel = open_channel(client.server, client.credentials)
        self.stub = metrics_pb2_grpc.MetricsStub(self.channel)
        self.timeout = client.timeout

    async def _call(self, call: Any) -> Any:
        try:
            return await call
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                raise CommandError("Metrics API not available") from None
            raise self.connection.error(exc) from None

    async def nodes(self, name: str, selector: str) -> list[metrics_pb2.NodeMetrics]:
        if name:
            request = metrics_pb2.GetNodeMetricsRequest(name=name)
            return [await self._call(self.stub.GetNodeMetrics(request, timeout=self.timeout))]
        listing = metrics_pb2.ListNodeMetricsRequest(label_selector=selector)
        found = await self._call(self.stub.ListNodeMetrics(listing, timeout=self.timeout))
        return list(found.items)

    async def pods(self, namespace: str, name: str, selector: str) -> list[metrics_pb2.PodMetrics]:
        if name:
            request = metrics_pb2.GetPodMetricsRequest(namespace=namespace, name=name)
            return [await self._call(self.stub.GetPodMetrics(request, timeout=self.timeout))]
        listing = metrics_pb2.ListPodMetricsRequest(namespace=namespace, label_selector=selector)
        found = await self._call(self.stub.ListPodMetrics(listing, timeout=self.timeout))
        return list(found.items)

    async def close(self) -> None:
        await self.channel.close()


# ---- the table ---------------------------------------------------------------------------


def cpu_cell(quantity: str) -> str:
    return f"{milli_value(quantity or '0')}m"


def memory_cell(quantity: str) -> str:
    return f"{value(quantity or '0') // MIB}Mi"


def percent(used: str, available: str) -> str:
    """kubectl's share of allocatable: milli over milli, times 100, truncated."""
    total = milli_value(available)
    return f"{int(milli_value(used or '0') / total * 100) if total else 0}%"


def _table(rows: list[list[str]]) -> str:
    """kubectl's tabwriter (minwidth 6, padding 3), every cell tab-terminated as kubectl's."""
    return render(
        ("\t".join(row) + "\t" for row in rows), min_width=GET_MIN_WIDTH, padding=GET_PADDING
    )


def _usage_key(usage: Any, sort_by: str) -> int:
    return (
        milli_value(usage.get("cpu", "0")) if sort_by == "cpu" else value(usage.get("memory", "0"))
    )


def node_table(
    metrics: Sequence[metrics_pb2.NodeMetrics],
    allocatable: dict[str, dict[str, str]],
    *,
    sort_by: str = "",
    no_headers: bool = False,
) -> str:
    """kubectl's node table; nodes in `allocatable` without metrics are rows of <unknown>."""
    rows: list[list[str]] = [] if no_headers else [list(NODE_COLUMNS)]
    items = sorted(metrics, key=lambda m: m.metadata.name)
    if sort_by:
        items.sort(key=lambda m: _usage_key(m.usage, sort_by), reverse=True)
    missing = dict(allocatable)
    for m in items:
        available = missing.pop(m.metadata.name, None)
        cpu, memory = m.usage.get("cpu", "0"), m.usage.get("memory", "0")
        row = [m.metadata.name, cpu_cell(cpu)]
        if available is not None and "cpu" in available:
            row.append(percent(cpu, available["cpu"]))
        row.append(memory_cell(memory))
        if available is not None and "memory" in available:
            row.append(percent(memory, available["memory"]))
        rows.append(row)
    rows.extend([name, UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN] for name in sorted(missing))
    return _table(rows)


def pod_usage(pod: metrics_pb2.PodMetrics) -> dict[str, str]:
    """The sum of a pod's containers, as quantities (millicores and bytes)."""
    cpu = sum(milli_value(c.usage.get("cpu", "0")) for c in pod.containers)
    memory = sum(value(c.usage.get("memory", "0")) for c in pod.containers)
    return {"cpu": f"{cpu}m", "memory": str(memory)}


def pod_table(
    metrics: Sequence[metrics_pb2.PodMetrics],
    *,
    all_namespaces: bool = False,
    containers: bool = False,
    sort_by: str = "",
    no_headers: bool = False,
) -> str:
    """kubectl's pod table: one row a pod (its containers' sum), or one a container."""
    rows: list[list[str]] = []
    if not no_headers:
        lead = (["NAMESPACE"] if all_namespaces else []) + (["POD"] if containers else [])
        rows.append([*lead, *POD_COLUMNS])
    items = sorted(
        metrics,
        key=lambda m: ((m.metadata.namespace if all_namespaces else ""), m.metadata.name),
    )
    if sort_by:
        items.sort(key=lambda m: _usage_key(pod_usage(m), sort_by), reverse=True)
    for m in items:
        lead = [m.metadata.namespace] if all_namespaces else []
        if not containers:
            usage = pod_usage(m)
            rows.append(
                [*lead, m.metadata.name, cpu_cell(usage["cpu"]), memory_cell(usage["memory"])]
            )
            continue
        ordered = sorted(m.containers, key=lambda c: c.name)
        if sort_by:
            ordered.sort(key=lambda c: _usage_key(c.usage, sort_by), reverse=True)
        for c in ordered:
            cpu, memory = cpu_cell(c.usage.get("cpu", "0")), memory_cell(c.usage.get("memory", "0"))
            rows.append([*lead, m.metadata.name, c.name, cpu, memory])
    return _table(rows)


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String() to the nanosecond: 190.5 -> "3m10.5s"."""
    nanos = max(0, round(seconds * 1e9))
    minutes, rest = divmod(nanos, 60 * 1_000_000_000)
    hours, minutes = divmod(minutes, 60)
    whole, fraction = divmod(rest, 1_000_000_000)
    text = f"{whole}" + (f".{fraction:09d}".rstrip("0") if fraction else "") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    return f"{minutes}m{text}" if minutes else text


# ---- the verbs ---------------------------------------------------------------------------

# Swapped in tests for a source without a server: `fn(client) -> MetricsClient-like`.
make_metrics: Any = MetricsClient


async def top_nodes(
    client: Client, name: str, selector: str, *, sort_by: str = "", no_headers: bool = False
) -> int:
    source = make_metrics(client)
    try:
        metrics = await source.nodes(name, selector)
    finally:
        await source.close()
    if not metrics:
        raise CommandError("metrics not available yet")
    if name:
        nodes = [await client.get("nodes", name)]
    else:
        nodes, _ = await client.list("nodes", label_selector=selector)
    allocatable = {n.metadata.name: dict(n.status.allocatable) for n in nodes}
    click.echo(node_table(metrics, allocatable, sort_by=sort_by, no_headers=no_headers), nl=False)
    return 0


async def _why_empty(client: Client, namespace: str, name: str, selector: str) -> str:
    """kubectl's verifyEmptyMetrics: "" when there are no pods at all, else the error."""
    if name:
        pods = [await client.get("pods", name, namespace)]
    else:
        pods, _ = await client.list("pods", namespace, label_selector=selector)
        if not pods:
            return ""
    for pod in pods:
        age = time.time() - pod.metadata.creation_timestamp.seconds
        if age > METRICS_CREATION_DELAY:
            where = f"{pod.metadata.namespace}/{pod.metadata.name}"
            return f"Metrics not available for pod {where}, age: {go_duration(age)}"
    return "metrics not available yet"


async def top_pods(
    client: Client,
    namespace: str,
    name: str,
    selector: str,
    *,
    all_namespaces: bool = False,
    containers: bool = False,
    sort_by: str = "",
    no_headers: bool = False,
) -> int:
    source = make_metrics(client)
    asked = "" if all_namespaces else namespace
    try:
        metrics = await source.pods(asked, name, selector)
    finally:
        await source.close()
    if not metrics:
        problem = await _why_empty(client, asked, name, selector)
        if problem:
            raise CommandError(problem)
        where = "" if all_namespaces else f" in {namespace} namespace."
        context.echo_err("No resources found" + where)
        return 0
    table = pod_table(
        metrics,
        all_namespaces=all_namespaces,
        containers=containers,
        sort_by=sort_by,
        no_headers=no_headers,
    )
    click.echo(table, nl=False)
    return 0


def _validate(sort_by: str, name: str, selector: str, node: bool) -> None:
    if sort_by and sort_by not in SORT_FIELDS:
        raise CommandError("--sort-by accepts only cpu or memory")
    if name and selector:
        flag = "--selector" if node else "selector"
        raise CommandError(f"only one of NAME or {flag} can be provided")


def _fail(err: CommandError) -> None:
    context.echo_err(f"error: {err}")
    raise click.exceptions.Exit(1)


class AliasGroup(click.Group):
    """kubectl's aliases: `top nodes`/`top no`, `top pods`/`top po`."""

    ALIASES = {"nodes": "node", "no": "node", "pods": "pod", "po": "pod"}

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, self.ALIASES.get(cmd_name, cmd_name))


@click.group("top", cls=AliasGroup)
def top() -> None:
    """Display resource (CPU/memory) usage."""


_SORT_HELP = "Sort by 'cpu' or 'memory' (largest first)."


@top.command("node")
@click.argument("name", default="")
@click.option("-l", "--selector", default="", help="Selector (label query) to filter on.")
@click.option("--sort-by", default="", help=_SORT_HELP)
@click.option("--no-headers", is_flag=True, help="Print output without headers.")
@click.pass_obj
def top_node_cmd(opts: Options, name: str, selector: str, sort_by: str, no_headers: bool) -> None:
    """Display resource (CPU/memory) usage of nodes."""
    try:
        _validate(sort_by, name, selector, node=True)
    except CommandError as err:
        _fail(err)

    def run(client: Client) -> Any:
        return top_nodes(client, name, selector, sort_by=sort_by, no_headers=no_headers)

    context.exit_with(context.run(opts, run))


@top.command("pod")
@click.argument("name", default="")
@click.option("-l", "--selector", default="", help="Selector (label query) to filter on.")
@click.option("-A", "--all-namespaces", is_flag=True, help="List across all namespaces.")
@click.option("--containers", is_flag=True, help="Print usage of containers within a pod.")
@click.option("--sort-by", default="", help=_SORT_HELP)
@click.option("--no-headers", is_flag=True, help="Print output without headers.")
@namespace_option
@click.pass_obj
def top_pod_cmd(
    opts: Options, /, name: str, selector: str, namespace: str | None, **flags: Any
) -> None:
    """Display resource (CPU/memory) usage of pods."""
    opts = effective(opts, namespace)
    try:
        _validate(flags["sort_by"], name, selector, node=False)
    except CommandError as err:
        _fail(err)

    def run(client: Client) -> Any:
        return top_pods(client, opts.namespace, name, selector, **flags)

    context.exit_with(context.run(opts, run))
