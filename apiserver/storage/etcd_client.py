"""The connection to etcd under the etcd backend: endpoints, TLS, failover, error mapping.

kube-apiserver talks to etcd through clientv3 (`--etcd-servers`, the TLS flags
`--etcd-cafile`, `--etcd-certfile`, `--etcd-keyfile`). This module is the part of
clientv3 tinykube needs, over our own proto subset (protos/etcd.proto): one gRPC
channel per endpoint, opened lazily, and a `current` endpoint that every call
goes to until it fails.

Why our own subset rather than a client library: the Python etcd3 packages pin
grpcio and protobuf releases years older than the ones CRI and the API already
run on here, and they wrap away the very things the storage layer is made of
(the response header's revision, compare-and-swap transactions, a watch's
compact_revision). A dozen messages with etcd's field numbers are less code
than the adapter a library would need.

Failover. The endpoints are members of one etcd cluster; any of them serves
any request (a follower forwards writes to the leader and answers linearizable
reads after a quorum check). When the current member does not answer, the
next one is tried:

    call(request):
        first round, each endpoint from the current one: skip it at once if its
            last connection attempt failed (a killed member refuses at once); else
            wait up to `dial_timeout` for its channel to be connected
        second round (if the first got no answer): wait up to `dial_timeout`
            on each, a failed attempt or not (a cluster still starting up)
        on the endpoint found:
            send the request
                UNAVAILABLE on a read  -> next endpoint (a read is safe to repeat)
                UNAVAILABLE on a write -> next endpoint becomes current, and the write
                                          fails with EtcdUnavailable: etcd may or may not
                                          have applied it, so it is not sent twice
        every endpoint failed -> EtcdUnavailable

Skipping a refusing member matters after a kill. A write in flight on a follower
when the leader dies waits out etcd's own request timeout (5 s + 2 election
timeouts: 7 s at the default 1 s) and comes back UNAVAILABLE "request timed out";
the next endpoint in the ring may be the dead leader, and waiting `dial_timeout`
on it would add 5 s more to the pause before the survivors are tried.

That is clientv3's rule too: a mutation is retried only when it never left the
client. The caller (a controller's compare-and-swap loop) re-reads and decides.

Errors. etcd reports a read at a compacted revision, and a compaction at or
below an earlier one, as gRPC OUT_OF_RANGE "etcdserver: mvcc: required revision
has been compacted" (`RevisionCompacted` here); a compaction beyond the newest
revision as OUT_OF_RANGE "... required revision is a future revision"
(`FutureRevision`). Everything else becomes a StorageError naming the endpoint
and etcd's message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlencode

import grpc
import grpc.aio

from apiserver.storage.etcd_snapshot import save_stream
from apiserver.storage.interface import StorageError
from protos import etcd_pb2 as pb
from protos import etcd_pb2_grpc as rpc

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEME = "etcd://"
# The key kube-apiserver's compactors coordinate on (etcd.py); also what a revision read counts.
COMPACT_REV_KEY = b"compact_rev_key"
DEFAULT_DIAL_TIMEOUT = 5.0
DEFAULT_REQUEST_TIMEOUT = 15.0
_COMPACTED = "required revision has been compacted"
_FUTURE = "required revision is a future revision"
_TLS_KEYS = ("cafile", "certfile", "keyfile")
_FAILED = grpc.ChannelConnectivity.TRANSIENT_FAILURE  # the last connection attempt failed
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", -1),  # large lists are paged, but one key may be big
    ("grpc.max_send_message_length", -1),
    ("grpc.keepalive_time_ms", 30_000),  # notice a member that vanished under a quiet watch
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.initial_reconnect_backoff_ms", 100),  # a restarted member is found again quickly
    ("grpc.max_reconnect_backoff_ms", 2_000),
]


class EtcdUnavailable(StorageError):
    """No endpoint answered (for a write: the write's outcome is unknown)."""


class RevisionCompacted(StorageError):
    """A read asked for a revision older than etcd's compaction."""


class FutureRevision(StorageError):
    """A compaction asked for a revision newer than etcd's newest."""


@dataclass(frozen=True)
class EtcdConfig:
    """Where etcd is and how to authenticate to it.

    The spec form is `etcd://HOST:PORT[,HOST:PORT...][?cafile=F&certfile=F&keyfile=F]`;
    with `cafile` the connection is TLS (verified against that CA), with `certfile` and
    `keyfile` it presents a client certificate too (etcd's --client-cert-auth).
    """

    endpoints: tuple[str, ...]
    cafile: str = ""
    certfile: str = ""
    keyfile: str = ""
    dial_timeout: float = DEFAULT_DIAL_TIMEOUT
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT

    def __post_init__(self) -> None:
        if not self.endpoints:
            raise StorageError("etcd: no endpoints given (etcd://HOST:PORT[,HOST:PORT...])")
        for endpoint in self.endpoints:
            host, sep, port = endpoint.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise StorageError(f"etcd: endpoint {endpoint!r} is not HOST:PORT")
        if bool(self.certfile) != bool(self.keyfile):
            raise StorageError("etcd: --etcd-certfile and --etcd-keyfile go together")
        if self.certfile and not self.cafile:
            raise StorageError("etcd: a client certificate needs --etcd-cafile (TLS)")

    @property
    def tls(self) -> bool:
        return bool(self.cafile)

    @classmethod
    def parse(cls, spec: str) -> EtcdConfig:
        """An `etcd://...` spec (see the class docstring)."""
        if not spec.startswith(SCHEME):
            raise StorageError(f"etcd: {spec!r} does not start with {SCHEME}")
        hosts, _, query = spec[len(SCHEME) :].partition("?")
        params = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
        unknown = sorted(set(params) - set(_TLS_KEYS))
        if unknown:
            raise StorageError(f"etcd: unknown option(s) {', '.join(unknown)} in {spec!r}")
        files = [params[key][-1] if key in params else "" for key in _TLS_KEYS]
        endpoints = tuple(h.strip() for h in hosts.split(",") if h.strip())
        return cls(endpoints, cafile=files[0], certfile=files[1], keyfile=files[2])

    def spec(self) -> str:
        """The spec string that parses back to this config."""
        files = {key: getattr(self, key) for key in _TLS_KEYS if getattr(self, key)}
        query = f"?{urlencode(files)}" if files else ""
        return f"{SCHEME}{','.join(self.endpoints)}{query}"

    def credentials(self) -> grpc.ChannelCredentials | None:
        """TLS credentials from the configured files (None: plaintext)."""
        if not self.tls:
            return None
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.cafile, "--etcd-cafile"),
            private_key=_read(self.keyfile, "--etcd-keyfile") if self.keyfile else None,
            certificate_chain=_read(self.certfile, "--etcd-certfile") if self.certfile else None,
        )


def _read(path: str, flag: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        raise StorageError(f"etcd: cannot read {flag} {path}: {err.strerror}") from None


class EtcdClient:
    """Calls to an etcd cluster with failover across its endpoints. Event-loop bound."""

    def __init__(self, config: EtcdConfig) -> None:
        self.config = config
        self._credentials = config.credentials()  # unreadable files fail here, at startup
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._current = 0
        self._closed = False
        self.watch_streams = 0  # Watch streams opened so far (tests, metrics)

    @property
    def current_endpoint(self) -> str:
        return self.config.endpoints[self._current]

    def _channel(self, endpoint: str) -> grpc.aio.Channel:
        if self._closed:
            raise StorageError("storage is closed")
        channel = self._channels.get(endpoint)
        if channel is None:
            if self._credentials is None:
                channel = grpc.aio.insecure_channel(endpoint, options=_CHANNEL_OPTIONS)
            else:
                channel = grpc.aio.secure_channel(
                    endpoint, self._credentials, options=_CHANNEL_OPTIONS
                )
            self._channels[endpoint] = channel
        return channel

    def _failed(self, endpoint: str) -> None:
        """Make the endpoint after `endpoint` current (unless another call already moved on)."""
        endpoints = self.config.endpoints
        if endpoints[self._current] == endpoint:
            self._current = (self._current + 1) % len(endpoints)
            if len(endpoints) > 1:
                log.warning("etcd endpoint failed, trying the next", extra={"endpoint": endpoint})

    async def _connected(
        self, endpoint: str, failures: list[str], *, patient: bool
    ) -> grpc.aio.Channel | None:
        """The endpoint's channel once connected; None after `dial_timeout`, or at once
        if its connection attempt failed and not `patient`, with the reason appended
        to `failures`."""
        channel = self._channel(endpoint)
        state = channel.get_state(try_to_connect=True)
        deadline = asyncio.get_running_loop().time() + self.config.dial_timeout
        while state is not grpc.ChannelConnectivity.READY:
            if state is grpc.ChannelConnectivity.SHUTDOWN:
                raise StorageError("storage is closed")
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0 or (state is _FAILED and not patient):
                failures.append(f"{endpoint}: {await self._why(channel)}")
                return None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(channel.wait_for_state_change(state), remaining)
            state = channel.get_state(try_to_connect=True)
        return channel

    async def _why(self, channel: grpc.aio.Channel) -> str:
        """Why a channel does not connect: gRPC tells the status of a call that tries."""
        probe = pb.RangeRequest(key=b"\0", count_only=True)
        try:
            await rpc.KVStub(channel).Range(probe, timeout=self.config.dial_timeout)
        except grpc.aio.AioRpcError as err:
            return str(err.details() or err.code().name)
        return "connected only after the dial timeout"

    async def _call(
        self, call: Callable[[grpc.aio.Channel], Awaitable[T]], *, repeatable: bool
    ) -> T:
        """`call(channel)` on the current endpoint, failing over as the module docstring says."""
        failures: list[str] = []
        count = len(self.config.endpoints)
        for attempt in range(2 * count):
            endpoint = self.current_endpoint
            channel = await self._connected(endpoint, failures, patient=attempt >= count)
            if channel is None:
                self._failed(endpoint)
                continue
            try:
                return await call(channel)
            except grpc.aio.AioRpcError as err:
                if err.code() != grpc.StatusCode.UNAVAILABLE:
                    raise translate(err, endpoint) from None
                failures.append(f"{endpoint}: {err.details()}")
                self._failed(endpoint)
                if not repeatable:
                    raise EtcdUnavailable(
                        f"etcd {endpoint} became unavailable during a write, which may or may"
                        f" not have been applied: {err.details()}"
                    ) from None
        raise _unavailable(failures)

    # -------------------------------------------------------------------- KV

    async def range(self, request: pb.RangeRequest) -> pb.RangeResponse:
        timeout = self.config.request_timeout
        response: pb.RangeResponse = await self._call(
            lambda ch: rpc.KVStub(ch).Range(request, timeout=timeout), repeatable=True
        )
        return response

    async def revision(self) -> int:
        """etcd's newest revision, read linearizably (a Range that counts one key)."""
        request = pb.RangeRequest(key=COMPACT_REV_KEY, keys_only=True, count_only=True)
        return int((await self.range(request)).header.revision)

    async def txn(self, request: pb.TxnRequest) -> pb.TxnResponse:
        timeout = self.config.request_timeout
        response: pb.TxnResponse = await self._call(
            lambda ch: rpc.KVStub(ch).Txn(request, timeout=timeout), repeatable=False
        )
        return response

    async def compact(self, revision: int) -> None:
        request = pb.CompactionRequest(revision=revision, physical=True)
        timeout = self.config.request_timeout
        await self._call(
            lambda ch: rpc.KVStub(ch).Compact(request, timeout=timeout), repeatable=True
        )

    # ----------------------------------------------------------------- watch

    async def open_watch(self) -> tuple[str, Any]:
        """A new Watch stream (grpc.aio's bidirectional call) on a connected endpoint."""
        failures: list[str] = []
        count = len(self.config.endpoints)
        for attempt in range(2 * count):
            endpoint = self.current_endpoint
            channel = await self._connected(endpoint, failures, patient=attempt >= count)
            if channel is not None:
                self.watch_streams += 1
                return endpoint, rpc.WatchStub(channel).Watch()
            self._failed(endpoint)
        raise _unavailable(failures)

    def watch_failed(self, endpoint: str) -> None:
        """A watch stream on `endpoint` broke: later calls go to the next endpoint."""
        self._failed(endpoint)

    # ------------------------------------------------------------- snapshot

    async def snapshot(self, dest: str) -> int:
        """`etcdctl snapshot save`: the current member's database into `dest`, the etcd
        revision it holds (etcd_snapshot.py). A read: tried on the next member if needed."""
        before = await self.revision()

        async def save(channel: grpc.aio.Channel) -> int:
            stream = rpc.MaintenanceStub(channel).Snapshot(pb.SnapshotRequest())
            try:
                return await save_stream(stream, dest, before)
            finally:
                stream.cancel()

        return await self._call(save, repeatable=True)

    # ----------------------------------------------------------------- lease

    async def lease_grant(self, ttl: int) -> int:
        """A new lease of `ttl` seconds; returns its ID."""
        request = pb.LeaseGrantRequest(TTL=ttl)
        timeout = self.config.request_timeout
        response: pb.LeaseGrantResponse = await self._call(
            lambda ch: rpc.LeaseStub(ch).LeaseGrant(request, timeout=timeout), repeatable=False
        )
        if response.error:
            raise StorageError(f"etcd: lease grant: {response.error}")
        return int(response.ID)

    async def lease_revoke(self, lease: int) -> None:
        """End the lease now: every key attached to it is deleted."""
        request = pb.LeaseRevokeRequest(ID=lease)
        timeout = self.config.request_timeout
        await self._call(
            lambda ch: rpc.LeaseStub(ch).LeaseRevoke(request, timeout=timeout), repeatable=True
        )

    async def lease_keep_alive(self, lease: int) -> int:
        """Renew the lease once; returns its new TTL in seconds (0 or less: it had expired)."""

        async def once(channel: grpc.aio.Channel) -> int:
            call = rpc.LeaseStub(channel).LeaseKeepAlive(timeout=self.config.request_timeout)
            try:
                await call.write(pb.LeaseKeepAliveRequest(ID=lease))
                response = await call.read()
                await call.done_writing()
            finally:
                call.cancel()
            if response is grpc.aio.EOF:
                raise StorageError("etcd: lease keep-alive stream ended without an answer")
            return int(response.TTL)

        return await self._call(once, repeatable=True)

    async def close(self) -> None:
        self._closed = True
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()


def _unavailable(failures: list[str]) -> EtcdUnavailable:
    return EtcdUnavailable(f"etcd: no endpoint answered ({'; '.join(failures)})")


def translate(err: grpc.aio.AioRpcError, endpoint: str) -> StorageError:
    """etcd's gRPC status as a StorageError (see the module docstring)."""
    details = err.details() or ""
    if err.code() == grpc.StatusCode.OUT_OF_RANGE and _COMPACTED in details:
        return RevisionCompacted(details)
    if err.code() == grpc.StatusCode.OUT_OF_RANGE and _FUTURE in details:
        return FutureRevision(details)
    return StorageError(f"etcd {endpoint}: {err.code().name}: {details}")
