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

How the API server dials a kubelet (Kubernetes' KubeletClientConfig,
`--kubelet-client-certificate`, `--kubelet-client-key`,
`--kubelet-certificate-authority`): a kubelet's port is mutual TLS, so the
API server presents its own client certificate (CN
kube-apiserver-kubelet-client, O system:masters, from `tinykube pki init`) and
checks the kubelet's serving certificate against the CA. gRPC checks the
address dialed against the certificate's subjectAltNames, and a kubelet's
serving certificate from pki init names the node and its IPs, so dialing the
InternalIP verifies. A kubelet that does not trust the API server's
certificate closes the connection; one whose certificate is not the CA's, or
does not name the address, fails the handshake here -- either way the answer is
ServiceUnavailable "cannot reach the kubelet at 10.0.0.11:10250: TLS handshake
failed: ...". Without that configuration (`KubeletClientConfig()`, the
default) the dial is plain, as it is to a kubelet started without TLS.

`PodProxy` is a mixin for the ResourcesServicer: it needs `self.store`, and
takes `self.kubelet_client` (plain by default) for its dials.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from apimachinery import certs, errors, scheme
from apimachinery.channel import Credentials, transport_reason
from apimachinery.validation_pod_parts import choose_container
from apiserver.registry.store import Store
from protos import api_pb2, kubelet_pb2, kubelet_pb2_grpc

log = logging.getLogger(__name__)

DEFAULT_KUBELET_PORT = 10250
_CONNECT_TIMEOUT = 5.0


@dataclass(frozen=True)
class KubeletClientConfig:
    """How the API server dials kubelets: plain, or TLS verified by a CA with a client cert."""

    ca_pem: bytes | None = None
    cert_pem: bytes | None = field(default=None, repr=False)
    key_pem: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if (self.cert_pem is None) != (self.key_pem is None):
            raise ValueError(
                "a kubelet client certificate needs its key, and a key its certificate"
            )
        if self.cert_pem is not None and self.ca_pem is None:
            raise ValueError(
                "a kubelet client certificate needs --kubelet-certificate-authority:"
                " the kubelets' serving certificates are verified"
            )

    @classmethod
    def from_files(
        cls, certificate: str = "", key: str = "", certificate_authority: str = ""
    ) -> KubeletClientConfig:
        """The flags' files (each may be empty); CertError/OSError/ValueError say what is wrong."""
        cert_pem = Path(certificate).read_bytes() if certificate else None
        key_pem = Path(key).read_bytes() if key else None
        ca_pem = Path(certificate_authority).read_bytes() if certificate_authority else None
        if cert_pem is not None and key_pem is not None:
            parsed, private = certs.read_cert(certificate), certs.read_key(key)
            if certs.spki_der(parsed.public_key()) != certs.spki_der(private.public_key()):
                raise certs.CertError(f"{key} is not the key of {certificate}")
        if ca_pem is not None:
            certs.read_cert(certificate_authority)
        return cls(ca_pem=ca_pem, cert_pem=cert_pem, key_pem=key_pem)

    @property
    def tls(self) -> bool:
        return self.ca_pem is not None

    def channel(self, address: str) -> grpc.aio.Channel:
        """A channel to a kubelet at host:port: TLS when configured, else plain."""
        if not self.tls:
            return grpc.aio.insecure_channel(address)
        credentials = Credentials(ca_pem=self.ca_pem, cert_pem=self.cert_pem, key_pem=self.key_pem)
        return grpc.aio.secure_channel(address, credentials.channel_credentials())


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


def kubelet_error(exc: grpc.aio.AioRpcError, address: str) -> errors.StatusError:
    if exc.code() == grpc.StatusCode.UNAVAILABLE:
        has_status = any(k == "grpc-status-details-bin" for k, _ in exc.trailing_metadata() or ())
        if not has_status:
            reason = transport_reason(exc.details() or "")
            return errors.ServiceUnavailable(f"cannot reach the kubelet at {address}: {reason}")
    return errors.from_rpc_error(exc)


class PodProxy:
    """The PodLogs / PodExec methods of the resource service."""

    store: Store
    kubelet_client: KubeletClientConfig = KubeletClientConfig()

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
            if request.HasField("since_seconds"):
                forwarded.since_seconds = request.since_seconds
            forwarded.since_time = request.since_time
            forwarded.timestamps = request.timestamps
            async with self.kubelet_client.channel(address) as channel:
                stub = kubelet_pb2_grpc.KubeletStub(channel)
                async for chunk in stub.Logs(forwarded):
                    yield api_pb2.PodLogsChunk(lines=chunk.lines)
        except errors.StatusError as err:
            await context.abort_with_status(errors.to_grpc_status(err))
        except grpc.aio.AioRpcError as exc:
            await context.abort_with_status(errors.to_grpc_status(kubelet_error(exc, address)))

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
            async with self.kubelet_client.channel(address) as channel:
                stub = kubelet_pb2_grpc.KubeletStub(channel)
                timeout = (request.timeout_seconds or 300) + _CONNECT_TIMEOUT
                answer = await stub.Exec(forwarded, timeout=timeout)
            return api_pb2.PodExecResponse(
                stdout=answer.stdout, stderr=answer.stderr, exit_code=answer.exit_code
            )
        except errors.StatusError as err:
            await context.abort_with_status(errors.to_grpc_status(err))
        except grpc.aio.AioRpcError as exc:
            await context.abort_with_status(errors.to_grpc_status(kubelet_error(exc, address)))
        except asyncio.CancelledError:
            raise
        raise AssertionError("unreachable: abort_with_status raises")
