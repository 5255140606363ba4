"""The kubelet's server: container logs and exec for `tinykube logs` / `tinykube exec` (server.go).

Kubernetes' kubelet serves an HTTPS API on :10250 that the apiserver
proxies `kubectl logs` and `kubectl exec` to; tinykube's kubelet serves the
gRPC service `tinykube.kubelet.Kubelet` (protos/kubelet.proto) on
`config.kubelet_address:config.kubelet_port`, and the apiserver
(apiserver/proxy.py) reaches it at the Node's InternalIP and
status.daemonEndpoints.kubeletEndpoint.Port:

    tinykube logs web -f  ->  apiserver PodLogs  ->  kubelet Logs  ->  runtime.container_logs
    tinykube exec web -- ls / ->  apiserver PodExec ->  kubelet Exec  ->  runtime.exec_sync
    tinykube exec -i web -- sh -> PodExecStream -> ExecStream -> runtime.exec_stream (streams.py)
    tinykube port-forward web 8080:80 -> PodPortForward -> PortForward -> runtime.port_forward

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
written; when following, each new line as it comes. The request's options
(tail, since, timestamps) and following a container across its restarts
are kubelet/logs.py's. Binding failures (the
port is taken, e.g. by another hollow kubelet on the same host) are logged
and the kubelet runs on without a server -- logs and exec are then
unavailable on that node, everything else works.

Who may call (Kubernetes' kubelet authentication + authorization, server/auth.go):
with a `ServingTLS` (`--tls-cert-file`, `--tls-private-key-file`,
`--client-ca-file`) the port is TLS terminated by apimachinery/tlsfront.py,
which asks for a certificate of the client CA and verifies it if given: a
plain-text connection or a certificate of another CA fails the handshake, a
caller without a certificate gets `Unauthorized` (Kubernetes' 401 with
anonymous access off) and never reaches a handler. The certificate is then
an identity (CN the user, O the groups; apimachinery/certs.py), and logs and
exec are allowed to

    CN kube-apiserver-kubelet-client    the API server's client certificate
    O  system:masters                   cluster administrators

and refused to everyone else with PERMISSION_DENIED in the kubelet's words,
naming the caller, the verb (get for logs, create for exec and the streams) and what
Kubernetes calls the resource (the node's proxy subresource):

    Forbidden (user=system:node:node2, verb=create, resource=nodes, subresource=proxy)

Kubernetes asks the API server (a SubjectAccessReview) whether the caller may
use nodes/proxy; tinykube's kubelet holds that rule itself, since only the API
server and administrators have any business here. Another kubelet's
certificate, signed by the same CA, is therefore refused.

Without a ServingTLS the server is plain gRPC with no check, as before: what
tests that build a Kubelet directly get, and what `--address unix:PATH`
serves (a socket made 0600, so only root on the machine reaches it).
`tinykube kubelet` refuses a TCP port without TLS once it has a kubeconfig;
the plain TCP port remains only for a kubelet started with `--server` (the
way `tinykube up` starts its nodes until it has a PKI).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import grpc
import grpc.aio

from apimachinery import certs, errors
from apimachinery.tlsfront import FrontConfig, TLSFront, private_dir
from apimachinery.validation_pod_parts import choose_container
from kubelet import logs
from kubelet.errors import ContainerRuntimeError, ExecTimeout
from kubelet.errors import NotFoundError as RuntimeNotFound
from kubelet.runtime.interface import Container, ContainerRuntime, ContainerState
from kubelet.server_auth import APISERVER_CLIENT_USER as APISERVER_CLIENT_USER
from kubelet.server_auth import MASTERS_GROUP as MASTERS_GROUP
from kubelet.server_auth import authorize, caller_identity
from kubelet.stats.servicer import add_stats_servicer
from kubelet.status import latest_containers
from kubelet.streams import KubeletStreams
from protos import core_pb2, kubelet_pb2, kubelet_pb2_grpc

log = logging.getLogger(__name__)

_CHUNK_LINES = 500
DEFAULT_EXEC_TIMEOUT = 300.0

ANONYMOUS_USER = "system:anonymous"


@dataclass(frozen=True)
class ServingTLS:
    """The kubelet server's TLS: its serving certificate and key, and the CA of its callers."""

    cert_pem: bytes
    key_pem: bytes = field(repr=False)
    client_ca_pem: bytes

    @classmethod
    def from_files(cls, cert_file: str, key_file: str, client_ca_file: str) -> ServingTLS:
        """Read the three files: CertError if one is not what it should be, OSError if unread."""
        tls = cls(
            Path(cert_file).read_bytes(),
            Path(key_file).read_bytes(),
            Path(client_ca_file).read_bytes(),
        )
        cert, key = certs.read_cert(cert_file), certs.read_key(key_file)
        if certs.spki_der(cert.public_key()) != certs.spki_der(key.public_key()):
            raise certs.CertError(f"{key_file} is not the key of {cert_file}")
        certs.read_cert(client_ca_file)
        return tls

    def front(self, host: str, port: int, directory: str = "") -> TLSFront:
        """The TLS front for host:port: a client certificate of the client CA verified if
        given (a caller without one is refused as Unauthorized, not at the handshake). Its
        sockets live in `directory/tls` (the kubelet's root dir), else a temporary one."""
        where = private_dir(directory, "tls")
        backend = os.path.join(where, "backend.sock")
        config = FrontConfig(host, port, backend, self.cert_pem, self.key_pem, self.client_ca_pem)
        return TLSFront(config, where)


class PodLookup(Protocol):
    """What the server needs from the kubelet."""

    runtime: ContainerRuntime

    def find_pod(self, namespace: str, name: str) -> core_pb2.Pod | None: ...

    async def pod_containers(self, pod: core_pb2.Pod) -> list[Container]: ...


class KubeletServicer(KubeletStreams, kubelet_pb2_grpc.KubeletServicer):
    """The kubelet's gRPC API: a container's logs and exec in it, for the apiserver's proxy;
    ExecStream and PortForward are streams.py's."""

    def __init__(self, kubelet: PodLookup, node_name: str = "", *, check: bool = False) -> None:
        self.kubelet = kubelet
        self.node_name = node_name
        # True behind TLS: every call is authorized from its client certificate.
        self.check = check
        self.front: TLSFront | None = None

    def _authorize(self, context: grpc.aio.ServicerContext, verb: str) -> None:
        if self.check:
            identity = caller_identity(context, self.front)
            if identity is None:
                raise errors.Unauthorized()  # no client certificate: as Kubernetes' 401
            try:
                authorize(identity, verb)
            except errors.Forbidden:
                log.warning("kubelet api call refused", extra={"user": identity.user, "verb": verb})
                raise

    @property
    def runtime(self) -> ContainerRuntime:
        return self.kubelet.runtime

    def _pod(self, namespace: str, name: str, uid: str) -> core_pb2.Pod:
        """The pod of that name bound to this node (and of that uid, when given)."""
        pod = self.kubelet.find_pod(namespace or "default", name)
        if pod is None or (uid and pod.metadata.uid != uid):
            raise errors.NotFound(f'pod "{name}" not found on node {self.node_name}')
        return pod

    async def _instance(
        self, namespace: str, name: str, uid: str, container: str, previous: bool
    ) -> Container:
        pod = self._pod(namespace, name, uid)
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
            self._authorize(context, "get")
            options = logs.LogOptions.from_request(request)
            instance = await self._instance(
                request.namespace, request.pod, request.pod_uid, request.container, request.previous
            )

            def find_pod() -> core_pb2.Pod | None:
                pod = self.kubelet.find_pod(request.namespace or "default", request.pod)
                if pod is None or (request.pod_uid and pod.metadata.uid != request.pod_uid):
                    return None
                return pod

            async def next_instance(after: Container) -> Container | None:
                return await logs.wait_for_next(find_pod, self.kubelet.pod_containers, after)

            lines = logs.stream(self.kubelet.runtime, instance, options, next_instance)
            batch: list[str] = []
            async for line in lines:
                batch.append(line)
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
            self._authorize(context, "create")
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
    """The grpc.aio server around KubeletServicer: mutual TLS with a ServingTLS, else plain."""

    def __init__(
        self,
        kubelet: PodLookup,
        address: str,
        port: int,
        node_name: str = "",
        *,
        tls: ServingTLS | None = None,
        run_dir: str = "",
    ) -> None:
        self.servicer = KubeletServicer(kubelet, node_name)
        self.run_dir = run_dir
        self.address = address
        self.port = port
        self.tls: ServingTLS | None = None
        self._server: grpc.aio.Server | None = None
        if tls is not None:
            self.use_tls(tls)

    def use_tls(self, tls: ServingTLS) -> None:
        """Serve mutual TLS and authorize every call (set before start)."""
        self.tls = tls
        self.servicer.check = True

    def _bind(self, server: grpc.aio.Server) -> int:
        """Add the listening port; returns the port (0 when it cannot be bound)."""
        if self.address.startswith("unix:"):
            # A local socket: trust is the file's mode, as for a runtime's socket.
            path = self.address.removeprefix("unix:").removeprefix("//")
            Path(path).unlink(missing_ok=True)
            bound = server.add_insecure_port(f"unix:{path}")
            return self.port if bound else 0
        if self.tls is not None:
            front = self.tls.front(self.address, self.port, self.run_dir)
            self.servicer.front = front
            backend = f"unix:{front.config.backend}"
            relayed: int = server.add_insecure_port(backend)  # the real port: the front's
            return relayed
        host = f"[{self.address}]" if ":" in self.address else self.address
        port: int = server.add_insecure_port(f"{host}:{self.port}")
        return port

    async def start(self) -> int:
        """Listen; returns the port (the chosen one when asked for 0), or 0 if binding failed.

        On a unix socket the configured port is returned unchanged (nothing listens on it)."""
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        kubelet_pb2_grpc.add_KubeletServicer_to_server(self.servicer, server)
        add_stats_servicer(self.servicer, server)  # KubeletStats (stats/summary) beside it
        try:
            port = self._bind(server)
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
        if self.address.startswith("unix:"):
            os.chmod(self.address.removeprefix("unix:").removeprefix("//"), 0o600)
        front = self.servicer.front
        if front is not None:
            os.chmod(front.config.backend, 0o600)
            try:
                port = front.start()
            except OSError as exc:
                log.error(
                    "kubelet server cannot listen",
                    extra={"address": self.address, "port": self.port, "error": str(exc)},
                )
                await server.stop(0)
                return 0
        self._server = server
        self.port = port
        log.info(
            "kubelet server listening",
            extra={"address": self.address, "port": port, "tls": self.tls is not None},
        )
        return port

    async def stop(self, grace: float = 0.5) -> None:
        front, self.servicer.front = self.servicer.front, None
        if front is not None:
            front.stop()
            shutil.rmtree(os.path.dirname(front.config.backend), ignore_errors=True)
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
