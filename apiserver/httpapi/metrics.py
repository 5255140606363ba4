"""The HTTP face of metrics.k8s.io/v1beta1: what `kubectl top` reads.

`kubectl top pod` first looks for the group in discovery (GET /apis: no
metrics.k8s.io there is its "error: Metrics API not available"), then lists:

    GET /apis/metrics.k8s.io/v1beta1/nodes[?labelSelector=...]          NodeMetricsList
    GET /apis/metrics.k8s.io/v1beta1/nodes/NAME                         NodeMetrics
    GET /apis/metrics.k8s.io/v1beta1/namespaces/NS/pods[?labelSelector] PodMetricsList
    GET /apis/metrics.k8s.io/v1beta1/namespaces/NS/pods/NAME            PodMetrics
    GET /apis/metrics.k8s.io/v1beta1/pods                               every namespace

Each request goes through apiserver/metrics.py's MetricsServicer with the
HTTP request as its call context (context.py), so the authorization (`list
pods` in metrics.k8s.io) and the scrape are the gRPC API's. Only get and list
are served, as by metrics-server: a watch or a write is 405 MethodNotAllowed.
Field selectors are refused (400) rather than ignored.

The JSON is metrics-server's:

    {"kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
     "metadata": {"name": "node1", "creationTimestamp": "2024-05-01T10:00:00Z", "labels": {...}},
     "timestamp": "2024-05-01T09:59:58Z", "window": "15.012s",
     "usage": {"cpu": "329087452n", "memory": "2748180Ki"}}

`window` is a Go duration (time.Duration's String: "1m5.5s"), which is how
metav1.Duration marshals and what kubectl's decoder parses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2

from apimachinery import codec, errors
from apimachinery.codec_values import from_timestamp
from apiserver.auth.authorizer import UserInfo
from apiserver.httpapi.call import Backend, json_response
from apiserver.httpapi.context import CallContext
from apiserver.httpapi.http import Request, Response
from apiserver.httpapi.requestinfo import RequestInfo
from apiserver.httpapi.status import MethodNotAllowed
from apiserver.metrics import GROUP, GROUP_VERSION, MetricsServicer
from protos import metrics_pb2

Handler = Callable[[Backend, CallContext, UserInfo, Request], Awaitable[Response]]
NOT_FOUND = "the server could not find the requested resource"
# For discovery (discovery.py): group version -> (resource, kind, namespaced, verbs).
DISCOVERY: dict[str, list[tuple[str, str, bool, list[str]]]] = {
    GROUP_VERSION: [
        ("nodes", "NodeMetrics", False, ["get", "list"]),
        ("pods", "PodMetrics", True, ["get", "list"]),
    ],
}


def go_duration(value: duration_pb2.Duration) -> str:
    """Go's time.Duration.String(): 1.5 s -> "1.5s", 65 s -> "1m5s", 0 -> "0s"."""
    nanos = value.seconds * 1_000_000_000 + value.nanos
    if nanos == 0:
        return "0s"
    sign, nanos = ("-", -nanos) if nanos < 0 else ("", nanos)
    hours, rest = divmod(nanos, 3600 * 1_000_000_000)
    minutes, rest = divmod(rest, 60 * 1_000_000_000)
    seconds, fraction = divmod(rest, 1_000_000_000)
    text = f"{seconds}" + (f".{fraction:09d}".rstrip("0") if fraction else "") + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _time(value: timestamp_pb2.Timestamp) -> str:
    """metav1.Time's JSON: RFC 3339 to the second."""
    return from_timestamp(timestamp_pb2.Timestamp(seconds=value.seconds))


def metrics_dict(obj: metrics_pb2.NodeMetrics | metrics_pb2.PodMetrics) -> dict[str, Any]:
    """A NodeMetrics or PodMetrics as metrics-server writes it."""
    out: dict[str, Any] = {
        "kind": obj.kind,
        "apiVersion": obj.api_version,
        "metadata": codec.to_dict(obj.metadata),
        "timestamp": _time(obj.timestamp),
        "window": go_duration(obj.window),
    }
    if isinstance(obj, metrics_pb2.NodeMetrics):
        out["usage"] = dict(sorted(obj.usage.items()))
    else:
        out["containers"] = [
            {"name": c.name, "usage": dict(sorted(c.usage.items()))} for c in obj.containers
        ]
    return out


def list_dict(kind: str, items: list[Any]) -> dict[str, Any]:
    return {
        "kind": f"{kind}List",
        "apiVersion": GROUP_VERSION,
        "metadata": {},
        "items": [metrics_dict(item) for item in items],
    }


def handler_for(info: RequestInfo) -> Handler | None:
    """The handler of a request to metrics.k8s.io, or None for any other group."""
    if info.group != GROUP:
        return None

    async def handle(backend: Backend, ctx: CallContext, user: UserInfo, req: Request) -> Response:
        return await serve(info, backend, ctx, req)

    return handle


def _check(info: RequestInfo, request: Request) -> None:
    """404 for what is not served here, 405 for verbs other than get and list."""
    known = info.version == "v1beta1" and info.resource in ("nodes", "pods")
    if not known or info.subresource or (info.resource == "nodes" and info.namespace):
        raise errors.NotFound(NOT_FOUND)
    if info.resource == "pods" and info.name and not info.namespace:
        raise errors.NotFound(NOT_FOUND)
    if info.verb not in ("get", "list"):
        raise MethodNotAllowed(
            f"the server does not allow this method on the requested resource ({info.verb})"
        )
    if request.param("fieldSelector"):
        raise errors.BadRequest("field selectors are not supported on metrics.k8s.io")


async def serve(
    info: RequestInfo, backend: Backend, ctx: CallContext, request: Request
) -> Response:
    """Answer one metrics.k8s.io request (see the module docstring for the paths)."""
    _check(info, request)
    servicer = MetricsServicer(backend.store, backend.guard, backend.servicer.kubelet_client)
    selector = request.param("labelSelector")
    if info.resource == "nodes":
        if info.name:
            node = await servicer.GetNodeMetrics(
                metrics_pb2.GetNodeMetricsRequest(name=info.name), ctx
            )
            return json_response(metrics_dict(node))
        nodes = await servicer.ListNodeMetrics(
            metrics_pb2.ListNodeMetricsRequest(label_selector=selector), ctx
        )
        return json_response(list_dict("NodeMetrics", list(nodes.items)))
    if info.name:
        request_one = metrics_pb2.GetPodMetricsRequest(namespace=info.namespace, name=info.name)
        pod = await servicer.GetPodMetrics(request_one, ctx)
        return json_response(metrics_dict(pod))
    asked = metrics_pb2.ListPodMetricsRequest(namespace=info.namespace, label_selector=selector)
    pods = await servicer.ListPodMetrics(asked, ctx)
    return json_response(list_dict("PodMetrics", list(pods.items)))
