"""The kubelet's stats service: `tinykube.metrics.KubeletStats/Summary` (GET /stats/summary).

Kubernetes' kubelet serves the Summary API on its port 10250 beside logs
and exec; metrics-server scrapes it from every node and the API server's
metrics.k8s.io answers `kubectl top` from what it scraped. Here the kubelet's
gRPC server carries the KubeletStats service beside the Kubelet service
(kubelet/server.py registers it with `add_stats_servicer`), and the API
server asks it directly (apiserver/metrics.py):

    kubectl top pods -> API server metrics.k8s.io -> KubeletStats.Summary on each node
                                                  -> StatsProvider (provider.py) -> cgroups

Who may call: the same rule as logs and exec (kubelet/server_auth.py), asked with
what Kubernetes' kubelet asks for a stats path -- verb `get` on the node's
`stats` subresource. Behind TLS the API server's client certificate
(kube-apiserver-kubelet-client) and system:masters may read; any other
certificate of the cluster CA (another node's) is refused in the kubelet's
words, and a caller with none is Unauthorized:

    Forbidden (user=system:node:node2, verb=get, resource=nodes, subresource=stats)

Without TLS (a unix socket, or a kubelet started with --server only) there
is no check, as for logs and exec.
"""

from __future__ import annotations

import logging
from typing import Protocol

import grpc
import grpc.aio

from apimachinery import errors
from apimachinery.tlsfront import TLSFront
from kubelet.errors import ContainerRuntimeError
from kubelet.runtime.interface import ContainerRuntime
from kubelet.server_auth import authorize, caller_identity
from kubelet.stats.cgroups import CgroupError
from kubelet.stats.provider import StatsProvider
from protos import metrics_pb2, metrics_pb2_grpc

log = logging.getLogger(__name__)


class RuntimeHolder(Protocol):
    @property
    def runtime(self) -> ContainerRuntime: ...


class KubeletServing(Protocol):
    """What the stats service needs of the Kubelet servicer it is served beside
    (server.KubeletServicer; a Protocol, so this module need not import the server)."""

    @property
    def node_name(self) -> str: ...
    @property
    def check(self) -> bool: ...
    @property
    def front(self) -> TLSFront | None: ...
    @property
    def kubelet(self) -> RuntimeHolder: ...


class KubeletStatsServicer(metrics_pb2_grpc.KubeletStatsServicer):
    """Summary over the kubelet's runtime, authorized as the Kubelet service's calls are."""

    def __init__(self, kubelet: KubeletServing, provider: StatsProvider | None = None) -> None:
        # The Kubelet servicer: its node name, whether to check callers, its TLS front.
        self.kubelet = kubelet
        self._provider = provider

    @property
    def provider(self) -> StatsProvider:
        if self._provider is None:
            self._provider = StatsProvider(self.kubelet.kubelet.runtime)
        return self._provider

    def _authorize(self, context: grpc.aio.ServicerContext) -> None:
        if not self.kubelet.check:
            return
        identity = caller_identity(context, self.kubelet.front)
        if identity is None:
            raise errors.Unauthorized()
        try:
            authorize(identity, "get", "stats")
        except errors.Forbidden:
            log.warning("kubelet stats call refused", extra={"user": identity.user})
            raise

    async def Summary(
        self, request: metrics_pb2.SummaryRequest, context: grpc.aio.ServicerContext
    ) -> metrics_pb2.Summary:
        try:
            self._authorize(context)
            return await self.provider.summary(self.kubelet.node_name)
        except errors.StatusError as err:
            await context.abort_with_status(errors.to_grpc_status(err))
        except (ContainerRuntimeError, CgroupError, OSError) as exc:
            log.warning("stats summary failed", extra={"error": str(exc)})
            internal = errors.InternalError(f"cannot read the node's stats: {exc}")
            await context.abort_with_status(errors.to_grpc_status(internal))
        raise AssertionError("unreachable: abort_with_status raises")


def add_stats_servicer(kubelet: KubeletServing, server: grpc.aio.Server) -> None:
    """Serve KubeletStats on the kubelet's gRPC server, beside `kubelet` (its Kubelet service)."""
    metrics_pb2_grpc.add_KubeletStatsServicer_to_server(KubeletStatsServicer(kubelet), server)
