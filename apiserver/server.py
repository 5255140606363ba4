"""The API server process: storage, the registry, the guard, the listeners.

The gRPC `Resources` service itself is servicer.py; who may call it and how
is listeners.py (TLS ports, unix sockets) and auth/ (authentication and the
Node and RBAC authorizers). Kubernetes' HTTP API (httpapi/) is served on
the same TLS ports, over the same servicer, store and guard.

Limits. Requests over 3 MiB are refused by gRPC itself before they are
decoded (`max_receive_message_length`), which the client reports as
`Request entity too large: limit is 3145728`. Responses may be larger (a
list of thousands of pods). Requests in flight are bounded as kube-apiserver's
(`--max-requests-inflight 400`, `--max-mutating-requests-inflight 200`): one
limiter for both the gRPC and the HTTP API, which answers 429 TooManyRequests
at once when a pool is full, or a write when the event loop lags more than
`--max-loop-lag-ms` (100) behind (inflight.py, looplag.py).

Start-up order matters: storage opens first (a second server on the same
data directory fails here, not later), then the registry rebuilds what it
keeps in memory (ClusterIP / NodePort allocations) from the store, and only
then does the port open, so no request ever sees a half-started server.

With an advertise address (`--advertise-address IP`), the server keeps a
Lease of its own in kube-system and, with the other API servers, the
`kubernetes` Service's Endpoints listing the live ones
(apiserver/endpointreconciler.py); it starts once the port is open and, on
a stop, takes this server's address out before the port closes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Awaitable, Callable, Sequence

import grpc

from apimachinery import errors, scheme
from apiserver import encoding
from apiserver.auth.authenticator import Authenticator
from apiserver.auth.authorizer import UserInfo
from apiserver.auth.bootstrappolicy import ensure_default_policy
from apiserver.auth.bootstraptoken import bootstrap_token_user_async
from apiserver.auth.filters import RequestGuard
from apiserver.auth.node import NodeAuthorizer
from apiserver.auth.rbac import RBACAuthorizer
from apiserver.endpointreconciler import EndpointReconciler, advertised_endpoint
from apiserver.httpapi.api import HTTPAPI
from apiserver.httpapi.http import HTTPServer
from apiserver.httpapi.status import too_large
from apiserver.inflight import InflightLimiter, InflightLimits
from apiserver.listeners import Listeners, ServingOptions, secure_unix_sockets
from apiserver.maintenance import MaintenanceServicer
from apiserver.metrics import add_metrics_servicer
from apiserver.proxy import KubeletClientConfig
from apiserver.registry.eventttl import DEFAULT_EVENT_TTL, EventReaper
from apiserver.registry.store import Store
from apiserver.servicer import ResourcesServicer
from apiserver.storage import open_storage
from apiserver.storage.encrypted import EncryptedStorage
from apiserver.storage.encryption import load as load_encryption
from apiserver.storage.interface import Storage
from apiserver.traces import TracesServicer
from protos import api_pb2_grpc, core_pb2, maintenance_pb2_grpc, trace_pb2_grpc

log = logging.getLogger(__name__)

LOOPBACK_SOCKET = "loopback.sock"
SECRETS = scheme.for_resource("secrets")


class APIServer:
    """The running server: storage, registry, guard and listeners. Used by `serve` and tests."""

    def __init__(
        self,
        storage: Storage,
        listen: str,
        *,
        default_toleration_seconds: int = 300,
        extra_listen: Sequence[str] = (),
        serving: ServingOptions | None = None,
        static_tokens: dict[str, UserInfo] | None = None,
        kubelet_client: KubeletClientConfig | None = None,
        run_dir: str = "",
        event_ttl: float = DEFAULT_EVENT_TTL,
        advertise: tuple[str, int] | None = None,
        inflight: InflightLimits | None = None,
    ) -> None:
        self.storage = storage
        self.advertise = advertise  # (IP, port) for the kubernetes Endpoints, or None
        self.endpoint_reconciler: EndpointReconciler | None = None
        self.event_reaper = EventReaper(storage, event_ttl)
        self.kubelet_client = kubelet_client or KubeletClientConfig()
        self.store = Store(storage, default_toleration_seconds=default_toleration_seconds)
        # `listen` first: `port` is its port. More addresses are served by the same server,
        # e.g. `tinykube up` serves node namespaces over TLS and the host's CLI over a socket.
        base = serving or ServingOptions(listen=())
        self.serving = dataclasses.replace(base, listen=(listen, *extra_listen, *base.listen))
        # The TLS fronts' sockets: in `run_dir` (serve gives the data directory), else /tmp.
        self.listeners = Listeners(self.serving, run_dir)
        self.run_dir = run_dir
        self.listen = listen
        self.port = 0
        self.ports: list[int] = []
        self.rbac = RBACAuthorizer(storage)
        authenticator = Authenticator(
            static_tokens=static_tokens,
            token_lookups=(self._bootstrap_token_user,),
            fronts=self.listeners.identity_of,
        )
        self.inflight = InflightLimiter(inflight)  # Kubernetes' defaults unless told
        self.guard = RequestGuard(
            authenticator, [NodeAuthorizer(storage), self.rbac], inflight=self.inflight
        )
        self._server: grpc.aio.Server | None = None
        self._http: HTTPServer | None = None

    async def _bootstrap_token_user(self, token: str) -> UserInfo | None:
        return await bootstrap_token_user_async(self._kube_system_secret, token)

    async def _kube_system_secret(self, name: str) -> core_pb2.Secret | None:
        kv = await self.storage.get(scheme.object_key(SECRETS, "kube-system", name))
        if kv is None:
            return None
        secret: core_pb2.Secret = encoding.decode(SECRETS, kv.value, kv.mod_revision)
        return secret

    async def start(self) -> None:
        await self.store.start()
        self.event_reaper.start()
        created = await ensure_default_policy(self.store.create)
        if created:
            log.info("default RBAC policy created", extra={"objects": len(created)})
        await self.rbac.start()
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", errors.MAX_REQUEST_BYTES),
                ("grpc.max_send_message_length", 512 * 1024 * 1024),
                ("grpc.so_reuseport", 0),
                # One client connection carries every watch of an informer-heavy process
                # (HTTP/2's default of 100 concurrent streams would starve the 101st).
                ("grpc.max_concurrent_streams", 10_000),
                # Clients ping idle watches every 30 s to find dead peers: allow it.
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                ("grpc.http2.max_ping_strikes", 0),
            ]
        )
        servicer = ResourcesServicer(self.store, self.guard, self.rbac.index)
        servicer.kubelet_client = self.kubelet_client
        api_pb2_grpc.add_ResourcesServicer_to_server(servicer, server)
        add_metrics_servicer(server, self.store, self.guard, self.kubelet_client)  # metrics.k8s.io
        maintenance = MaintenanceServicer(self.storage, self.guard, self.run_dir)
        maintenance_pb2_grpc.add_MaintenanceServicer_to_server(maintenance, server)
        self.traces = TracesServicer(self.store, self.guard)  # the span store (traces.py)
        trace_pb2_grpc.add_TracesServicer_to_server(self.traces, server)
        self.listeners.bind(server)
        await server.start()
        http = HTTPServer(HTTPAPI(servicer, self.store, self.guard).handle, too_large)
        for path in self.listeners.http_backends:
            await http.listen(path)
        self._http = http
        self.listeners.start_fronts()
        self.ports = self.listeners.ports
        self.port = self.ports[0]
        secure_unix_sockets(self.serving.unix, self.serving.unix_socket_group)
        self._server = server
        self.inflight.start()  # the loop-lag monitor, on this loop
        if self.advertise is not None:
            from apimachinery.client import Client

            loopback = Client(self.local_address, timeout=10.0)
            self.endpoint_reconciler = EndpointReconciler(loopback, *self.advertise)
            self.endpoint_reconciler.start()
        log.info(
            "apiserver listening",
            extra={
                "address": self.listen,
                "port": self.port,
                "also": ",".join(self.serving.listen[1:]),
                "token_port": ",".join(self.serving.token_listen),
            },
        )

    @property
    def local_address(self) -> str:
        """Where processes beside the server (scheduler, controllers) reach it: a unix socket."""
        if self.serving.unix:
            return self.serving.unix[0]
        raise RuntimeError("the API server has no unix socket for its own control plane")

    async def stop(self, grace: float = 1.0) -> None:
        await self.inflight.stop()
        reconciler, self.endpoint_reconciler = self.endpoint_reconciler, None
        if reconciler is not None:  # while the port is still open: remove this server
            await reconciler.stop()
            await reconciler.client.close()
        self.listeners.stop()
        if self._http is not None:
            await self._http.close()
        if self._server is not None:
            await self._server.stop(grace)
        await self.rbac.close()
        await self.event_reaper.stop()
        await self.store.close()
        await self.storage.close()


async def serve(
    data_dir: str,
    listen: str = "127.0.0.1:6443",
    *,
    extra_listen: Sequence[str] = (),
    serving: ServingOptions | None = None,
    static_tokens: dict[str, UserInfo] | None = None,
    kubelet_client: KubeletClientConfig | None = None,
    storage: str = "sqlite",
    default_toleration_seconds: int = 300,
    encryption_provider_config: str = "",
    beside: Callable[[str], Awaitable[None]] | None = None,
    event_ttl: float = DEFAULT_EVENT_TTL,
    advertise_address: str = "",
    inflight: InflightLimits | None = None,
) -> None:
    """Run an API server until cancelled.

    `beside(address)` starts once the port is open and is cancelled when the
    server stops: it is how `controlplane.py` runs the scheduler and the
    controllers in this process without the server knowing what they are.
    They dial a private socket in the data directory (0600 in a 0700
    directory), which makes them the loopback admin, as Kubernetes' own
    in-process clients are (`system:apiserver` in `system:masters`).
    """
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    loopback = f"unix:{os.path.join(os.path.abspath(data_dir), LOOPBACK_SOCKET)}"
    # A bad configuration stops the server before it opens anything.
    serving = serving or ServingOptions(listen=())
    serving = dataclasses.replace(serving, listen=(listen, *extra_listen, *serving.listen))
    serving.check()
    advertise = (
        advertised_endpoint(advertise_address, serving.listen) if advertise_address else None
    )
    encryption = load_encryption(encryption_provider_config) if encryption_provider_config else None
    backend: Storage = await open_storage(storage, data_dir)
    if encryption is not None:
        backend = EncryptedStorage(backend, encryption)
    start_compactor = getattr(backend, "start_compactor", None)
    if start_compactor is not None:
        start_compactor()
    server = APIServer(
        backend,
        loopback,
        default_toleration_seconds=default_toleration_seconds,
        serving=serving,
        static_tokens=static_tokens,
        kubelet_client=kubelet_client,
        run_dir=os.path.abspath(data_dir),
        event_ttl=event_ttl,
        advertise=advertise,
        inflight=inflight,
    )
    companion: asyncio.Future[None] | None = None
    try:
        await server.start()
        os.chmod(loopback.removeprefix("unix:"), 0o600)
        if beside is not None:
            companion = asyncio.ensure_future(beside(loopback))
            # The control plane beside the server ending is fatal, as a crashed
            # kube-controller-manager is: the process stops and says why.
            await companion
            raise RuntimeError("the control plane beside the API server stopped")
        await asyncio.Event().wait()
    finally:
        if companion is not None:
            companion.cancel()
            await asyncio.gather(companion, return_exceptions=True)
        await asyncio.shield(server.stop())
