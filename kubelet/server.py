"""The kubelet's server: container logs and exec for `tinykube logs` / `tinykube exec` (server.go).

Kubernetes' kubelet serves an HTTPS API on :10250 that the apiserver
proxies `kubectl logs` and `kubectl exec` to; tinykube's kubelet serves the
gRPC service `tinykube.kubelet.Kubelet` (protos/kubelet.proto) on
`config.kubelet_address:config.kubelet_port`, and the apiserver
(apiserver/proxy.py) reaches it at the Node's InternalIP and
status.daemonEndpoints.kubeletEndpoint.Port:

    tinykube logs web -f  ->  apiserver PodLogs  ->  kubelet Logs  ->  runtime.container_logs
    tinykube exec web -- ls / ->  apiserver PodExec ->  kubelet Exec  ->  runtime.exec_sync

Which container: the pod is looked up by namespace/name among the pods
bound to this node (and its uid checked when the caller gives one); an
empty container name means the pod's only container (InvalidArgument
listing the names if it has several, with Kubernetes' wording). The
instance is the newest container of that name, or with `previous` the one
before it -- kept by the runtime manager's garbage collection for exactly
this. Errors are the API's status errors (apimachinery.errors), so the
apiserver can pass them through unchanged:

    NotFound     pod "web" not found on node node1
    BadRequest   container "web" in pod "web" is waiting to start: ContainerCreating
    BadRequest   previous terminated container "web" in pod "web" not found

Logs are sent in chunks of lines: up to 500 at a time for what is already
written; when following, each new line as it comes. Binding failures (the
port is taken, e.g. by another hollow kubelet on the same host) are logged
and the kubelet runs on without a server -- logs and exec are then
unavailable on that node, everything else works.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Protocol

import grpc
import grpc.aio

from apimachinery import errors
from apimachinery.validation_pod_parts import choose_container
from kubelet.errors import ContainerRuntimeError, ExecTimeout
from kubelet.errors import NotFoundError as RuntimeNotFound
from kubelet.runtime.interface import Container, ContainerRuntime, ContainerState
from kubelet.status import latest_containers
from protos import core_pb2, kubelet_pb2, kubelet_pb2_grpc

log = logging.getLogger(__name__)

_CHUNK_LINES = 500
DEFAULT_EXEC_TIMEOUT = 300.0


class PodLookup(Protocol):
    """What the server needs from the kubelet."""

    runtime: ContainerRuntime

    def find_pod(self, namespace: str, name: str) -> core_pb2.Pod | None: ...

    async def pod_containers(self, pod: core_pb2.Pod) -> list[Container]: ...


class KubeletServicer(kubelet_pb2_grpc.KubeletServicer):
    """The kubelet's gRPC API: a container's logs and exec in it, for the apiserver's proxy."""

    def __init__(self, kubelet: PodLookup, node_name: str = "") -> None:
        self.kubelet = kubelet
        self.node_name = node_name

    async def _instance(
        self, namespace: str, name: str, uid: str, container: str, previous: bool
    ) -> Container:
        pod = self.kubelet.find_pod(namespace or "default", name)
        if pod is None or (uid and pod.metadata.uid != uid):
            raise errors.NotFound(f'pod "{name}" not found on node {self.node_name}')
        cname = choose_container(pod, container)
        history = latest_containers(await self.kubelet.pod_containers(pod)).get(cname, [])
        if previous:
            if len(history) < 2:
                raise errors.BadRequest(
                    f'previous terminated container "{cname}" in pod "{name}" not found'
                )
            return history[1]
        if not history:
            raise errors.BadRequest(
                f'container "{cname}" in pod "{name}" is waiting to start: ContainerCreating'
            )
        return history[0]

    async def Logs(
        self, request: kubelet_pb2.ContainerLogsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[kubelet_pb2.ContainerLogsChunk]:
        try:
            instance = await self._instance(
                request.namespace, request.pod, request.pod_uid, request.container, request.previous
            )
            tail = int(request.tail_lines) if request.HasField("tail_lines") else None
            lines = self.kubelet.runtime.container_logs(
                instance.id, follow=request.follow and not request.previous, tail=tail
            )
            batch: list[str] = []
            async for line in lines:
                batch.append(line.text)
                if request.follow or len(batch) >= _CHUNK_LINES:
                    yield kubelet_pb2.ContainerLogsChunk(lines=batch)
                    batch = []
            if batch:
                yield kubelet_pb2.ContainerLogsChunk(lines=batch)
        except errors.StatusError as err:
            await context.abort_with_status(errors.to_grpc_status(err))
        except RuntimeNotFound as exc:
            await context.abort_with_status(errors.to_grpc_status(errors.NotFound(str(exc))))
        except ContainerRuntimeError as exc:
            await context.abort_with_status(errors.to_grpc_status(errors.InternalError(str(exc))))

    async def Exec(
        self, request: kubelet_pb2.ContainerExecRequest, context: grpc.aio.ServicerContext
    ) -> kubelet_pb2.ContainerExecResponse:
        try:
            if not request.command:
                raise errors.BadRequest("you must specify at least one command for the container")
            instance = await self._instance(
                request.namespace, request.pod, request.pod_uid, request.container, False
            )
            if instance.state != ContainerState.RUNNING:
                raise errors.BadRequest(
                    f"cannot exec in a container that is not running: {instance.name}"
                )
            timeout = float(request.timeout_seconds or DEFAULT_EXEC_TIMEOUT)
            result = await self.kubelet.runtime.exec_sync(
                instance.id, list(request.command), timeout
            )
            log.info(
                "exec",
                extra={
                    "pod": f"{request.namespace}/{request.pod}",
                    "container": instance.name,
                    "command": request.command[0],
                    "exit_code": result.exit_code,
                },
            )
            return kubelet_pb2.ContainerExecResponse(
                stdout=result.stdout, stderr=result.stderr, exit_code=result.exit_code
            )
        except errors.StatusError as err:
            await context.abort_with_status(errors.to_grpc_status(err))
        except ExecTimeout as exc:
            await context.abort_with_status(
                errors.to_grpc_status(errors.ServiceUnavailable(str(exc)))
            )
        except RuntimeNotFound as exc:
            await context.abort_with_status(errors.to_grpc_status(errors.NotFound(str(exc))))
        except ContainerRuntimeError as exc:
            await context.abort_with_status(errors.to_grpc_status(errors.InternalError(str(exc))))
        raise AssertionError("unreachable: abort_with_status raises")


class KubeletServer:
    """The grpc.aio server around KubeletServicer."""

    def __init__(self, kubelet: PodLookup, address: str, port: int, node_name: str = "") -> None:
        self.servicer = KubeletServicer(kubelet, node_name)
        self.address = address
        self.port = port
        self._server: grpc.aio.Server | None = None

    async def start(self) -> int:
        """Listen; returns the port (the chosen one when asked for 0), or 0 if binding failed."""
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        kubelet_pb2_grpc.add_KubeletServicer_to_server(self.servicer, server)
        host = f"[{self.address}]" if ":" in self.address else self.address
        try:
            port: int = server.add_insecure_port(f"{host}:{self.port}")
        except RuntimeError as exc:
            log.error(
                "kubelet server cannot listen",
                extra={"address": self.address, "port": self.port, "error": str(exc)},
            )
            return 0
        if port == 0:
            log.error(
                "kubelet server cannot listen", extra={"address": self.address, "port": self.port}
            )
            return 0
        await server.start()
        self._server = server
        self.port = port
        log.info("kubelet server listening", extra={"address": self.address, "port": port})
        return port

    async def stop(self, grace: float = 0.5) -> None:
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
