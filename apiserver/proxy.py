"""pods/log and pods/exec: the apiserver proxies them to the pod's kubelet (the pod REST proxy).

`kubectl logs` never talks to a node: it asks the apiserver for the pod's
log subresource, and the apiserver -- which knows where every pod runs and
how to reach every kubelet -- forwards the request. tinykube does the same:

    CLI --PodLogs(ns, name, container, follow, previous, tail)--> apiserver
        1. get the pod (NotFound if missing)
        2. its spec.nodeName (BadRequest "pod web does not have a host
           assigned" if unscheduled); the container (the only one when
           unnamed, BadRequest listing the names otherwise)
        3. the Node's InternalIP and status.daemonEndpoints.kubeletEndpoint.Port
    apiserver --Logs(ns, pod, uid, container, ...)--> kubelet at IP:port
    chunks of lines stream back through the apiserver to the CLI

PodExec is the same path with one request and one answer (CRI ExecSync on
the node). The pod uid travels along, so a kubelet that runs a newer pod of
the same name refuses rather than answers for the wrong one.

Errors from the kubelet arrive as status errors (the kubelet server sends
apimachinery statuses) and are passed through unchanged; a kubelet that
cannot be reached is ServiceUnavailable naming its address. Cancelling the
CLI's stream (Ctrl-C on `logs -f`) cancels the apiserver's handler, which
leaves the `async for` and so cancels the call to the kubelet.

`PodProxy` is a mixin for the ResourcesServicer: it needs only `self.store`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc

from apimachinery import errors, scheme
from apimachinery.validation_pod_parts import choose_container
from apiserver.registry.store import Store
from protos import api_pb2, kubelet_pb2, kubelet_pb2_grpc

log = logging.getLogger(__name__)

DEFAULT_KUBELET_PORT = 10250
_CONNECT_TIMEOUT = 5.0


def kubelet_address(node: Any) -> str:
    """host:port of a node's kubelet server: InternalIP (else any address) and its port."""
    addresses = list(node.status.addresses)
    chosen = next((a.address for a in addresses if a.type == "InternalIP"), "")
    if not chosen:
        chosen = next((a.address for a in addresses if a.address), "")
    if not chosen:
        raise errors.ServiceUnavailable(
            f"no preferred addresses found for node {node.metadata.name}"
        )
    port = node.status.daemon_endpoints.kubelet_endpoint.port or DEFAULT_KUBELET_PORT
    host = f"[{chosen}]" if ":" in chosen else chosen
    return f"{host}:{port}"


def _kubelet_error(exc: grpc.aio.AioRpcError, address: str) -> errors.StatusError:
    if exc.code() == grpc.StatusCode.UNAVAILABLE:
        has_status = any(k == "grpc-status-details-bin" for k, _ in exc.trailing_metadata() or ())
        if not has_status:
            return errors.ServiceUnavailable(
                f"cannot reach the kubelet at {address}: {exc.details() or 'unavailable'}"
            )
    return errors.from_rpc_error(exc)


class PodProxy:
    """The PodLogs / PodExec methods of the resource service."""

    store: Store

    async def _target(self, namespace: str, name: str, container: str) -> tuple[Any, str, str]:
        """(pod, container name, kubelet address) for a request."""
        pod = await self.store.get(scheme.for_resource("pods"), namespace or "default", name)
        if not pod.spec.node_name:
            raise errors.BadRequest(f"pod {name} does not have a host assigned")
        chosen = choose_container(pod, container)
        node = await self.store.get(scheme.for_resource("nodes"), "", pod.spec.node_name)
        return pod, chosen, kubelet_address(node)

    async def PodLogs(
        self, request: api_pb2.PodLogsRequest, context: Any
    ) -> AsyncIterator[api_pb2.PodLogsChunk]:
        address = ""
        try:
            pod, container, address = await self._target(
                request.namespace, request.name, request.container
            )
            forwarded = kubelet_pb2.ContainerLogsRequest(
                namespace=pod.metadata.namespace,
                pod=pod.metadata.name,
                pod_uid=pod.metadata.uid,
                container=container,
                follow=request.follow,
                previous=request.previous,
            )
            if request.HasField("tail_lines"):
                forwarded.tail_lines = request.tail_lines
            async with grpc.aio.insecure_channel(address) as channel:
                stub = kubelet_pb2_grpc.KubeletStub(channel)
                async for chunk in stub.Logs(forwarded):
                    yield api_pb2.PodLogsChunk(lines=chunk.lines)
        except errors.StatusError as err:
            await context.abort_with_status(errors.to_grpc_status(err))
        except grpc.aio.AioRpcError as exc:
            await context.abort_with_status(errors.to_grpc_status(_kubelet_error(exc, address)))

    async def PodExec(
        self, request: api_pb2.PodExecRequest, context: Any
    ) -> api_pb2.PodExecResponse:
        address = ""
        try:
            pod, container, address = await self._target(
                request.namespace, request.name, request.container
            )
            forwarded = kubelet_pb2.ContainerExecRequest(
                namespace=pod.metadata.namespace,
                pod=pod.metadata.name,
                pod_uid=pod.metadata.uid,
                container=container,
                command=list(request.command),
                timeout_seconds=request.timeout_seconds,
            )
            async with grpc.aio.insecure_channel(address) as channel:
                stub = kubelet_pb2_grpc.KubeletStub(channel)
                timeout = (request.timeout_seconds or 300) + _CONNECT_TIMEOUT
                answer = await stub.Exec(forwarded, timeout=timeout)
            return api_pb2.PodExecResponse(
                stdout=answer.stdout, stderr=answer.stderr, exit_code=answer.exit_code
            )
        except errors.StatusError as err:
            await context.abort_with_status(errors.to_grpc_status(err))
        except grpc.aio.AioRpcError as exc:
            await context.abort_with_status(errors.to_grpc_status(_kubelet_error(exc, address)))
        except asyncio.CancelledError:
            raise
        raise AssertionError("unreachable: abort_with_status raises")
