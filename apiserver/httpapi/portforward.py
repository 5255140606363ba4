"""pods/portforward over SPDY: a pair of streams per forwarded connection, each pair a relay.

`kubectl port-forward pod/web 8080:80` listens on 8080 and, for every
connection it accepts there, opens two streams on its one SPDY connection to
the API server (client-go's tools/portforward; the kubelet's counterpart is
pkg/kubelet/cri/streaming/portforward/httpstream.go):

    SYN_STREAM 1 {streamtype: error, port: 80, requestid: 0}   then FIN at once (kubectl
                                                               never writes to it)
    SYN_STREAM 3 {streamtype: data,  port: 80, requestid: 0}   the connection's bytes, both ways

The two are paired by requestID (clients too old to send one are paired by
stream id: the error stream's, or the data stream's minus 2, as the kubelet
pairs them). Once both are open this server opens the relay to the pod's
port (`servicer.open_port_forward(user, start)`, which authorizes
`create pods/portforward` again and connects the port on the node) and then
copies: the data stream's bytes become PortForwardRequest(data), its FIN the
end of the requests (the kubelet's close_write: a TCP half-close toward the
pod); the pod's bytes come back
on the data stream. When the pod's side ends, both streams get FIN. kubectl
waits for the error stream to end after every connection: anything written
there is an error, which it reports as `an error occurred forwarding 8080 ->
80: error forwarding port 80 to pod web, uid ...: <why>` (and then, since
kubectl 1.31, it stops forwarding altogether, as against Kubernetes).

A header that is missing or wrong refuses the stream (RST_STREAM), as the
kubelet's stream handler does; a pair whose second stream does not come
within 30 s gets the kubelet's `timed out waiting for streams` on its error
stream. Streams from many connections interleave on one session; each pair
runs as a task of its own, and the session's end (kubectl stopped) cancels
them all.

The transport is a `Conduit`: the upgraded connection itself
(`Upgrade: SPDY/3.1`, `X-Stream-Protocol-Version: portforward.k8s.io`) or a
WebSocket tunnelling the same SPDY bytes (`SPDY/3.1+portforward.k8s.io`,
kubectl 1.31+; websocket.MessageConduit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from apimachinery import errors
from apiserver.httpapi import spdysession
from protos import kubelet_pb2

log = logging.getLogger(__name__)

PROTOCOL = "portforward.k8s.io"
TUNNEL_PROTOCOL = "SPDY/3.1+" + PROTOCOL
PAIR_TIMEOUT = 30.0
LINGER = 5.0

# Opens the relay to one port of the pod (proxy_streams' open_port_forward, bound to a user).
OpenPort = Callable[[int], Awaitable[Any]]


@dataclass
class Pair:
    request_id: str
    port: int
    error: spdysession.Stream | None = None
    data: spdysession.Stream | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    complete: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    half_closed: bool = False  # kubectl sent FIN on the data stream: its side is done


class ClientReset(errors.StatusError):
    """kubectl reset the data stream: the forwarded connection is over on its side."""

    reason = "BadRequest"


def _port(stream: spdysession.Stream) -> int:
    text = stream.header("port")
    if not text:
        raise ValueError('"port" header is required')
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"unable to parse {text!r} as a port: must be 1-65535")
    return int(text)


class PortForwarder:
    """The streams of one port-forward session, paired and relayed."""

    def __init__(self, session: spdysession.Session, open_port: OpenPort, pod: str, uid: str):
        self.session = session
        self.open_port = open_port
        self.pod = pod
        self.uid = uid
        self.pairs: dict[str, Pair] = {}

    def accept(self, stream: spdysession.Stream) -> bool:
        """A stream kubectl opened: file it under its pair; refuse a malformed one."""
        kind = stream.header("streamtype")
        try:
            port = _port(stream)
        except ValueError as err:
            log.info("port-forward stream refused", extra={"reason": str(err)})
            return False
        if kind not in ("error", "data"):
            return False
        request_id = stream.header("requestid")
        if not request_id:  # an old client: the error stream's id names the pair
            request_id = str(stream.id if kind == "error" else stream.id - 2)
        pair = self.pairs.get(request_id)
        if pair is None:
            pair = self.pairs[request_id] = Pair(request_id, port)
            pair.task = asyncio.ensure_future(self._run(pair))
        if getattr(pair, kind) is not None or pair.port != port:
            return False
        setattr(pair, kind, stream)
        if pair.error is not None and pair.data is not None:
            pair.complete.set()
        return True

    async def _wait_pair(self, pair: Pair) -> bool:
        """Whether the pair's second stream came in time (and the session is still up)."""
        waiters = [asyncio.ensure_future(e.wait()) for e in (pair.complete, self.session.closed)]
        try:
            await asyncio.wait(waiters, timeout=PAIR_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return pair.complete.is_set() and not self.session.closed.is_set()

    async def _run(self, pair: Pair) -> None:
        try:
            if not await self._wait_pair(pair):
                if pair.error is not None and not self.session.closed.is_set():
                    text = f"timed out waiting for streams for port {pair.port} request"
                    await pair.error.write(f'{text} "{pair.request_id}"'.encode())
                await self._close(pair)
                return
            await self._forward(pair)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug: this pair's end, not the session's
            log.exception("port-forward pair failed", extra={"port": pair.port})
            await self._close(pair)
        finally:
            self.pairs.pop(pair.request_id, None)

    async def _close(self, pair: Pair) -> None:
        for stream in (pair.data, pair.error):
            if stream is not None:
                await stream.close()

    async def _forward(self, pair: Pair) -> None:
        assert pair.data is not None and pair.error is not None
        data = pair.data
        try:
            relay = await self.open_port(pair.port)
        except errors.StatusError as err:
            await self._fail(pair, err)
            return
        try:
            async for response in relay.relay(_requests(pair)):
                await data.write(response.data)
        except ClientReset:
            pass  # nothing to tell a client that has hung up
        except errors.StatusError as err:
            if not pair.half_closed:
                await self._fail(pair, err)
                return
            # kubectl had finished sending: the connection is over from its side, and what
            # the pod sent has been relayed. Kubernetes' runtimes end a forward when either
            # direction ends, without an error; so does this.
            log.info("port-forward ended after the client's half-close", extra={"error": str(err)})
        finally:
            await relay.aclose()
        await self._close(pair)

    async def _fail(self, pair: Pair, err: errors.StatusError) -> None:
        assert pair.error is not None
        text = f"error forwarding port {pair.port} to pod {self.pod}, uid {self.uid}: {err.message}"
        await pair.error.write(text.encode())
        await self._close(pair)

    async def cancel_all(self) -> None:
        tasks = [p.task for p in self.pairs.values() if p.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _requests(pair: Pair) -> AsyncIterator[kubelet_pb2.PortForwardRequest]:
    data = pair.data
    assert data is not None
    while chunk := await data.read():
        yield kubelet_pb2.PortForwardRequest(data=chunk)
    if data.reset or data.session.closed.is_set():
        raise ClientReset("the client reset the stream")  # ends the relay: the kubelet's too
    # The end of the requests is the half-close (the relay ends its side of the call, which
    # the kubelet reads as close_write): unlike one more message, that cannot race with the
    # pod's side ending and turn the call's status into gRPC's INTERNAL.
    pair.half_closed = True


async def serve(conduit: spdysession.Conduit, open_port: OpenPort, pod: str, uid: str) -> None:
    """Serve a port-forward session whose 101 has been sent, until kubectl goes away."""
    session = spdysession.Session(conduit)
    forwarder = PortForwarder(session, open_port, pod, uid)
    try:
        await session.run(forwarder.accept)
    finally:
        await forwarder.cancel_all()
        with contextlib.suppress(ConnectionError):
            await session.go_away()
