"""metrics.k8s.io/v1beta1 in the API server: metrics-server's job, folded in.

In Kubernetes, `kubectl top` reads NodeMetrics and PodMetrics from the group
metrics.k8s.io, which the API server does not serve itself: metrics-server,
an extra Deployment, scrapes every kubelet's Summary API (/stats/summary)
every 15 s, keeps the last two scrapes in memory, and is registered as an
aggregated API (an APIService) that the API server proxies to. tinykube has
no aggregation layer and no add-ons, so the API server plays both parts and
asks the kubelets when asked:

    kubectl top pods -n web
      -> GET /apis/metrics.k8s.io/v1beta1/namespaces/web/pods    (httpapi/metrics.py)
      or tinykube top pods -> Metrics.ListPodMetrics             (gRPC, this module)
    1. authorize `list pods` in the group metrics.k8s.io (RBAC: the view role has it)
    2. the pods in the namespace matching the selector, grouped by spec.nodeName
    3. for each of those nodes that is Ready: KubeletStats.Summary at the kubelet's
       address (the same dial and client certificate as logs and exec: proxy.py)
    4. each pod the Summary reports (matched by uid) becomes a PodMetrics:
       per container, usage {cpu: usageNanoCores, memory: workingSetBytes}

The kubelet keeps the previous reading, so the window of a rate is the time
since the last scrape (at least 1 s; the first scrape of a kubelet waits that
second). Why fold it in rather than run a metrics-server: one process fewer,
and nothing to keep in memory between `top` calls -- the price is a scrape per
request, which a cluster of a few nodes does not notice.

Conversion (metrics-server's): CPU as nanocores ("329087452n"), memory as
the working set in bytes, with a binary suffix when whole ("2748180Ki");
`timestamp` is when the kubelet read the counters and `window` the interval
of the CPU rate. A node whose kubelet cannot be reached, or that has no rate
yet, is left out of a list, as metrics-server leaves it out; asked by name
it is NotFound in metrics-server's words:

    nodemetrics.metrics.k8s.io "node1" not found
    podmetrics.metrics.k8s.io "default/web" not found
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from fractions import Fraction
from typing import Any

import grpc
import grpc.aio

from apimachinery import errors, labels, scheme
from apimachinery.quantity import BINARY_SI, format_quantity
from apimachinery.scheme import KindInfo
from apiserver.auth.filters import RequestGuard
from apiserver.proxy import KubeletClientConfig, kubelet_address
from apiserver.registry.store import Store
from protos import meta_pb2, metrics_pb2, metrics_pb2_grpc

log = logging.getLogger(__name__)

GROUP = "metrics.k8s.io"
GROUP_VERSION = f"{GROUP}/v1beta1"
# The two kinds, for the authorizers (not in the scheme: nothing of them is stored).
NODE_METRICS = KindInfo(
    "NodeMetrics", GROUP_VERSION, "nodes", (), False, metrics_pb2.NodeMetrics, False
)
POD_METRICS = KindInfo("PodMetrics", GROUP_VERSION, "pods", (), True, metrics_pb2.PodMetrics, False)
NODES, PODS = scheme.for_resource("nodes"), scheme.for_resource("pods")
SCRAPE_TIMEOUT = 10.0


def cpu_quantity(nano_cores: int) -> str:
    """Nanocores as a quantity: 329087452 -> "329087452n", 2000000000 -> "2"."""
    return format_quantity(Fraction(nano_cores, 10**9))


def memory_quantity(size: int) -> str:
    """Bytes as a quantity: 2814136320 -> "2748180Ki", 1000 -> "1k"."""
    return format_quantity(Fraction(size), BINARY_SI)


def is_ready(node: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


def _meta(obj: Any, now: float) -> meta_pb2.ObjectMeta:
    """The metrics object's metadata: the object's name, namespace and labels, created now."""
    meta = meta_pb2.ObjectMeta(
        name=obj.metadata.name, namespace=obj.metadata.namespace, labels=obj.metadata.labels
    )
    meta.creation_timestamp.seconds = int(now)
    return meta


def node_metrics(
    node: Any, summary: metrics_pb2.Summary, now: float
) -> metrics_pb2.NodeMetrics | None:
    """A Node's NodeMetrics from its kubelet's Summary; None without a CPU rate yet."""
    stats = summary.node
    if not stats.cpu.HasField("usage_nano_cores"):
        return None
    return metrics_pb2.NodeMetrics(
        api_version=GROUP_VERSION,
        kind="NodeMetrics",
        metadata=_meta(node, now),
        timestamp=stats.cpu.time,
        window=stats.cpu.window,
        usage={
            "cpu": cpu_quantity(stats.cpu.usage_nano_cores),
            "memory": memory_quantity(stats.memory.working_set_bytes),
        },
    )


def pod_metrics(pod: Any, stats: metrics_pb2.PodStats, now: float) -> metrics_pb2.PodMetrics | None:
    """A Pod's PodMetrics from its PodStats; None unless every container has a CPU rate."""
    containers = []
    for c in stats.containers:
        if not c.cpu.HasField("usage_nano_cores"):
            return None
        usage = {
            "cpu": cpu_quantity(c.cpu.usage_nano_cores),
            "memory": memory_quantity(c.memory.working_set_bytes),
        }
        containers.append(metrics_pb2.ContainerMetrics(name=c.name, usage=usage))
    if not containers:
        return None
    return metrics_pb2.PodMetrics(
        api_version=GROUP_VERSION,
        kind="PodMetrics",
        metadata=_meta(pod, now),
        timestamp=stats.cpu.time,
        window=stats.cpu.window,
        containers=containers,
    )


class MetricsSource:
    """Asks kubelets for their Summaries and turns them into metrics objects."""

    def __init__(self, store: Store, kubelet_client: KubeletClientConfig) -> None:
        self.store = store
        self.kubelet_client = kubelet_client

    async def summary(self, node: Any) -> metrics_pb2.Summary | None:
        """The node's Summary, or None (not Ready, unreachable, refused: logged)."""
        if not is_ready(node):
            return None
        try:
            address = kubelet_address(node)
            async with self.kubelet_client.channel(address) as channel:
                stub = metrics_pb2_grpc.KubeletStatsStub(channel)
                answer: metrics_pb2.Summary = await stub.Summary(
                    metrics_pb2.SummaryRequest(), timeout=SCRAPE_TIMEOUT
                )
                return answer
        except (errors.StatusError, grpc.aio.AioRpcError) as exc:
            detail = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
            log.warning(
                "cannot scrape the kubelet", extra={"node": node.metadata.name, "error": detail}
            )
            return None

    async def _summaries(self, nodes: Iterable[Any]) -> dict[str, metrics_pb2.Summary]:
        chosen = list(nodes)
        found = await asyncio.gather(*(self.summary(n) for n in chosen))
        return {n.metadata.name: s for n, s in zip(chosen, found, strict=True) if s is not None}

    async def nodes(self, selector: str = "", name: str = "") -> list[metrics_pb2.NodeMetrics]:
        """NodeMetrics of the nodes matching `selector` (or the node `name`), by name."""
        if name:
            chosen = [await self.store.get(NODES, "", name)]
        else:
            wanted = labels.parse(selector)
            items, _ = await self.store.list_objects(NODES)
            chosen = [n for n in items if wanted.matches(n.metadata.labels)]
        summaries = await self._summaries(chosen)
        now = time.time()
        out = []
        for node in sorted(chosen, key=lambda n: n.metadata.name):
            summary = summaries.get(node.metadata.name)
            metrics = node_metrics(node, summary, now) if summary is not None else None
            if metrics is not None:
                out.append(metrics)
        return out

    async def pods(
        self, namespace: str = "", selector: str = "", name: str = ""
    ) -> list[metrics_pb2.PodMetrics]:
        """PodMetrics of the pods matching (all namespaces for ""), by namespace and name."""
        if name:
            chosen = [await self.store.get(PODS, namespace or "default", name)]
        else:
            wanted = labels.parse(selector)
            items, _ = await self.store.list_objects(PODS, namespace)
            chosen = [p for p in items if wanted.matches(p.metadata.labels)]
        node_names = {p.spec.node_name for p in chosen if p.spec.node_name}
        nodes = []
        for node_name in sorted(node_names):
            try:
                nodes.append(await self.store.get(NODES, "", node_name))
            except errors.NotFound:
                continue
        by_uid = {
            stats.pod_ref.uid: stats
            for summary in (await self._summaries(nodes)).values()
            for stats in summary.pods
        }
        now = time.time()
        out = []
        for pod in sorted(chosen, key=lambda p: (p.metadata.namespace, p.metadata.name)):
            stats = by_uid.get(pod.metadata.uid)
            metrics = pod_metrics(pod, stats, now) if stats is not None else None
            if metrics is not None:
                out.append(metrics)
        return out


class MetricsServicer(metrics_pb2_grpc.MetricsServicer):
    """The gRPC face of metrics.k8s.io; the HTTP API calls the same methods."""

    def __init__(
        self, store: Store, guard: RequestGuard, kubelet_client: KubeletClientConfig
    ) -> None:
        self.guard = guard
        self.source = MetricsSource(store, kubelet_client)

    async def ListNodeMetrics(
        self, request: metrics_pb2.ListNodeMetricsRequest, context: Any
    ) -> metrics_pb2.NodeMetricsList:
        try:
            await self.guard.check(context, "list", NODE_METRICS)
            items = await self.source.nodes(request.label_selector)
            return metrics_pb2.NodeMetricsList(items=items)
        except errors.StatusError as err:
            await context.abort_with_status(errors.to_grpc_status(err))
        raise AssertionError("unreachable: abort_with_status raises")

    async def GetNodeMetrics(
        self, request: metrics_pb2.GetNodeMetricsRequest, context: Any
    ) -> metrics_pb2.NodeMetrics:
        try:
            await self.guard.check(context, "get", NODE_METRICS, "", request.name)
            items = await self.source.nodes(name=request.name)
            if not items:
                raise errors.NotFound.for_object(f"nodemetrics.{GROUP}", request.name)
            return items[0]
        except errors.StatusError as err:
            await context.abort_with_status(errors.to_grpc_status(err))
        raise AssertionError("unreachable: abort_with_status raises")

    async def ListPodMetrics(
        self, request: metrics_pb2.ListPodMetricsRequest, context: Any
    ) -> metrics_pb2.PodMetricsList:
        try:
            await self.guard.check(context, "list", POD_METRICS, request.namespace)
            items = await self.source.pods(request.namespace, request.label_selector)
            return metrics_pb2.PodMetricsList(items=items)
        except errors.StatusError as err:
            await context.abort_with_status(errors.to_grpc_status(err))
        raise AssertionError("unreachable: abort_with_status raises")

    async def GetPodMetrics(
        self, request: metrics_pb2.GetPodMetricsRequest, context: Any
    ) -> metrics_pb2.PodMetrics:
        namespace = request.namespace or "default"
        try:
            await self.guard.check(context, "get", POD_METRICS, namespace, request.name)
            items = await self.source.pods(namespace, name=request.name)
            if not items:
                name = f"{namespace}/{request.name}"
                raise errors.NotFound.for_object(f"podmetrics.{GROUP}", name)
            return items[0]
        except errors.StatusError as err:
            await context.abort_with_status(errors.to_grpc_status(err))
        raise AssertionError("unreachable: abort_with_status raises")


def add_metrics_servicer(
    server: grpc.aio.Server, store: Store, guard: RequestGuard, kubelet_client: KubeletClientConfig
) -> None:
    """Serve metrics.k8s.io's gRPC face on the API server's gRPC server."""
    metrics_pb2_grpc.add_MetricsServicer_to_server(
        MetricsServicer(store, guard, kubelet_client), server
    )
