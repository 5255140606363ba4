"""The gRPC channel under the client: options, TLS credentials, readable transport errors.

client-go builds its transport from a rest.Config: TLS from the CA, client
certificate and key, a bearer token added to every request. Here the same
three things become one grpc.aio channel:

    no Credentials        insecure_channel(target)              plain HTTP/2, as before
    Credentials(ca_pem)   secure_channel(target, ssl(root=CA))  the server is verified
      + cert_pem/key_pem  ... ssl(..., private_key, chain)      the client is too (mTLS)
      + token             ... composite(ssl, access_token)      `authorization: Bearer T`
                                                                on every call

Verification is gRPC's own: the server's chain must end at the CA, and the
host part of the target must be in the certificate's subjectAltNames -- an IP
SAN when dialing an IP address, a DNS SAN for a name. When the address dialed
is not a name the certificate holds (a node reached by IP whose certificate
names only `kubernetes`), `server_name` says which name to check instead
(grpc.ssl_target_name_override, kubeconfig's `tls-server-name`); it is never
set implicitly. `ca_pem=None` trusts the system's roots, as kubectl does for
an https:// server without certificate-authority. A token is only ever sent
over TLS: gRPC refuses call credentials on an insecure channel, and so does
this module, by construction (Credentials always means TLS).

Channel options and why:

* Unary calls carry a deadline (set by the client); watches do not, since they
  are meant to stay open. A dead peer on a long watch is found by HTTP/2
  keepalive pings (every 30 s, 10 s to answer), so a watch across a network
  partition fails within about 40 s instead of hanging forever. The server
  must accept pings that often (grpc.http2.min_ping_interval_without_data_ms).
* Calls fail fast when the server is down (no wait-for-ready): controllers
  and informers decide how to back off, not the transport. The channel's own
  reconnect backoff is capped at 5 s (grpc's default grows to 120 s), so a
  restarted server is noticed within seconds.
* The receive limit is 256 MiB because a list of every pod in a big cluster is
  one message; the server's own request limit is 3 MiB (errors.MAX_REQUEST_BYTES).
* A busy server refuses a request at once with 429 TooManyRequests and a
  retry-after (its in-flight limit, apiserver/inflight.py): `unary` makes the
  call again after that wait, up to `max_retries` times (client-go's 10), for
  every verb -- the server did nothing with a refused request, so a write is
  safe to repeat. `max_retries=0` turns that off (a benchmark counting refusals).

Several API servers. `server` may be a comma-separated list (`--server
a:6443,b:6443`, or a kubeconfig's server field holding one: a tinykube
extension, where Kubernetes puts a load balancer in front of its API
servers). `Connection` then keeps a channel per server and a current one;
a server that cannot be reached makes the next one current, unary calls are
tried on the next server when that is safe, and watches resume there from
their last resourceVersion (apimachinery/channel_failover.py says exactly
when). With one server nothing changes: calls fail fast.

`Connection` owns the channels for one client. grpc.aio channels belong to
the event loop that created them, so the channel is opened lazily on first
use inside the running loop, and reopened if the client is later used from a
different loop (tests run one loop per test). It also maps failed calls to
`errors.StatusError`s; a transport failure becomes one readable line, with
`transport_reason` turning grpc's long debug string into the few words a
user reads: `cannot reach the API server at 10.0.0.1:6443: connection
refused`, or `...: TLS handshake failed: certificate verify failed` when the
server's certificate is not signed by the CA the client trusts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar, cast

import grpc
import grpc.aio

from apimachinery import errors
from protos import api_pb2, api_pb2_grpc

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_RECEIVE_BYTES = 256 * 1024 * 1024
MAX_RETRIES = 10  # a 429's retry-after is honoured this many times, as client-go's

CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
    ("grpc.max_send_message_length", errors.MAX_REQUEST_BYTES + 64 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.http2.max_pings_without_data", 0),
    # grpc's own reconnect backoff grows to 120 s by default, which would keep a client
    # failing fast long after the server is back; informers do their own backoff.
    # Not grpc.min_reconnect_backoff_ms: setting it fixes the backoff *and* makes it the
    # deadline of each connection attempt (20 s by default), TLS handshake included --
    # at 250 ms, a handshake on a slow machine (a software-emulated VM) is cut off with
    # "Handshaker shutdown".
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 5_000),
]

# Pieces of grpc's transport messages, mapped to the short reason a user reads. The first
# match wins, so the TLS ones (whose messages also say "handshake" or "socket closed") lead.
_TRANSPORT_REASONS: tuple[tuple[str, str], ...] = (
    ("certificate_verify_failed", "TLS handshake failed: certificate verify failed"),
    ("certificate verify failed", "TLS handshake failed: certificate verify failed"),
    (
        "hostname verification",
        "TLS handshake failed: the server's certificate has no subjectAltName for this address",
    ),
    ("certificate_required", "TLS handshake failed: the server requires a client certificate"),
    ("unknown_ca", "TLS handshake failed: the server does not trust the client certificate"),
    ("unknown ca", "TLS handshake failed: the server does not trust the client certificate"),
    ("bad_certificate", "TLS handshake failed: the peer rejected the certificate"),
    ("wrong_version_number", "TLS handshake failed: the server does not speak TLS"),
    ("handshaker shutdown", "TLS handshake did not finish before the connection deadline"),
    ("handshake", "TLS handshake failed"),
    ("connection refused", "connection refused"),
    ("dns resolution failed", "name resolution failed"),
    ("domain name not found", "name resolution failed"),
    ("connection reset", "connection reset by peer"),
    ("socket closed", "connection closed"),
    ("broken pipe", "connection closed"),
    ("no route to host", "no route to host"),
    ("network is unreachable", "network is unreachable"),
    ("timed out", "connection timed out"),
    ("keepalive", "keepalive ping not answered"),
)


@dataclass(frozen=True)
class Credentials:
    """What a client trusts and presents on a TLS channel: CA, client cert + key, token."""

    ca_pem: bytes | None = None
    cert_pem: bytes | None = field(default=None, repr=False)
    key_pem: bytes | None = field(default=None, repr=False)
    token: str = field(default="", repr=False)
    server_name: str = ""

    def __post_init__(self) -> None:
        if (self.cert_pem is None) != (self.key_pem is None):
            raise ValueError("a client certificate needs its key, and a key its certificate")

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """grpc's channel credentials: SSL, composed with the bearer token if there is one."""
        ssl = grpc.ssl_channel_credentials(
            root_certificates=self.ca_pem,
            private_key=self.key_pem,
            certificate_chain=self.cert_pem,
        )
        if not self.token:
            return ssl
        return grpc.composite_channel_credentials(
            ssl, grpc.access_token_call_credentials(self.token)
        )


def open_channel(target: str, credentials: Credentials | None = None) -> grpc.aio.Channel:
    """A channel to `target` (HOST:PORT or unix:PATH): plain without credentials, else TLS.

    Given a list of servers, the first (failing over is Connection's business)."""
    target = split_servers(target)[0]
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
    options: list[tuple[str, int | str]] = list(CHANNEL_OPTIONS)
    if credentials.server_name:
        options.append(("grpc.ssl_target_name_override", credentials.server_name))
    return grpc.aio.secure_channel(target, credentials.channel_credentials(), options=options)


def transport_reason(details: str) -> str:
    """A short reason for a transport failure, from grpc's long message."""
    lowered = details.lower()
    first = details.split(";", 1)[0].strip()
    for needle, reason in _TRANSPORT_REASONS:
        if needle in lowered:
            # the bare handshake case names no cause: keep grpc's own words beside it
            return f"{reason} ({first[:200]})" if needle == "handshake" and first else reason
    return first or "unavailable"


WARNING_KEY = "warning"  # trailing metadata, one entry per warning (apiserver/admission)


def _log_warning(text: str) -> None:
    log.warning("the API server warns", extra={"warning": text})


def split_servers(server: str) -> list[str]:
    """`a:6443,b:6443` -> [a:6443, b:6443]: the API servers a client may use, in order."""
    servers = [part.strip() for part in server.split(",") if part.strip()]
    if not servers:
        raise ValueError(f"no API server address in {server!r}")
    return servers


class Connection:
    """The channels to the API server(s), opened lazily per event loop, and error mapping.

    `server` is one address or a comma-separated list of them; with a list,
    calls go to the current server and move to the next when it fails
    (apimachinery/channel_failover.py)."""

    def __init__(
        self,
        server: str,
        *,
        timeout: float = 30.0,
        credentials: Credentials | None = None,
        max_retries: int = MAX_RETRIES,
    ) -> None:
        self.server = server
        self.servers = split_servers(server)
        self.timeout = timeout
        self.credentials = credentials
        self.max_retries = max_retries
        # Admission's warnings (`Warning: would violate PodSecurity ...`): the CLI prints
        # them as kubectl does; a daemon logs them.
        self.on_warning: Callable[[str], None] = _log_warning
        self._current = 0
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, api_pb2_grpc.ResourcesStub] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def current_server(self) -> str:
        return self.servers[self._current]

    def failed(self, server: str) -> None:
        """`server` failed: the next one becomes current (unless a call already moved on)."""
        if len(self.servers) > 1 and self.current_server == server:
            self._current = (self._current + 1) % len(self.servers)
            log.warning(
                "API server unavailable, using the next",
                extra={"failed": server, "next": self.current_server},
            )

    def server_channel(self, server: str) -> grpc.aio.Channel:
        """The channel to one server, on the running loop."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # Channels from an earlier (possibly closed) loop cannot be used here; drop them.
            self._channels, self._stubs, self._loop = {}, {}, loop
        channel = self._channels.get(server)
        if channel is None:
            channel = self._channels[server] = open_channel(server, self.credentials)
        return channel

    def server_stub(self, server: str) -> api_pb2_grpc.ResourcesStub:
        channel = self.server_channel(server)
        stub = self._stubs.get(server)
        if stub is None:
            stub = self._stubs[server] = api_pb2_grpc.ResourcesStub(channel)
        return stub

    def stub(self) -> api_pb2_grpc.ResourcesStub:
        """The Resources stub: the one server's, or one that fails over between several."""
        if len(self.servers) == 1:
            return self.server_stub(self.servers[0])
        from apimachinery.channel_failover import FailoverStub

        return cast(api_pb2_grpc.ResourcesStub, FailoverStub(self))

    def channel(self) -> grpc.aio.Channel:
        """The current server's channel, for the stub of another service on it."""
        return self.server_channel(self.current_server)

    async def why_unreachable(self, server: str) -> str:
        """Why a server's channel does not connect: the status of a call that tries."""
        request = api_pb2.VersionRequest()
        try:
            await self.server_stub(server).Version(request, timeout=1.0)
        except grpc.aio.AioRpcError as exc:
            return transport_reason(exc.details() or exc.code().name)
        return "connected only after the dial timeout"

    def error(self, exc: grpc.aio.AioRpcError, server: str = "") -> errors.StatusError:
        """The StatusError for a failed call to `server` (default: the current one);
        transport failures as one readable line."""
        server = server or self.current_server
        err = errors.from_rpc_error(exc)
        code = exc.code()
        if isinstance(err, errors.ServiceUnavailable) and code == grpc.StatusCode.UNAVAILABLE:
            has_rich_status = any(
                key == "grpc-status-details-bin" for key, _ in (exc.trailing_metadata() or ())
            )
            if not has_rich_status:
                reason = transport_reason(exc.details() or "")
                if self.credentials is not None and reason == "connection closed":
                    # TLS 1.3: the client's side of the handshake is done before the server
                    # checks the client's certificate, so a refusal arrives as a closed socket.
                    reason += " (did the server refuse the client certificate?)"
                err = errors.ServiceUnavailable(
                    f"cannot reach the API server at {server}: {reason}"
                )
        elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
            err = errors.ServiceUnavailable(
                f"the API server at {server} did not answer within {self.timeout:g}s"
            )
        log.debug(
            "api call failed",
            extra={"server": server, "code": code.name, "reason": err.reason},
        )
        return err

    async def unary(self, make: Callable[[], Awaitable[T]]) -> T:
        """Make a unary call and await it, raising its StatusError on failure; pass on its
        warnings. A 429 is made again after its retry-after (module docstring)."""
        attempt = 0
        while True:
            call = make()
            try:
                return await self._answer(call)
            except errors.TooManyRequests as err:
                if attempt >= self.max_retries:
                    raise
                attempt += 1
                log.debug(
                    "the API server is busy, retrying",
                    extra={"attempt": attempt, "after_s": err.retry_after_seconds},
                )
                await asyncio.sleep(err.retry_after_seconds or 1)

    async def _answer(self, call: Awaitable[T]) -> T:
        try:
            result = await call
        except grpc.aio.AioRpcError as exc:
            raise self.error(exc) from None
        trailing = getattr(call, "trailing_metadata", None)
        if trailing is not None:
            for key, value in await trailing() or ():
                if key == WARNING_KEY:
                    self.on_warning(str(value))
        return result

    async def close(self) -> None:
        channels, self._channels, self._stubs, self._loop = self._channels, {}, {}, None
        for channel in channels.values():
            await channel.close()
