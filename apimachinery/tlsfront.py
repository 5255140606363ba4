"""A TLS front for a gRPC server: client certificates verified *if given*, as Kubernetes does.

Kubernetes' API server and kubelet ask every TLS client for a certificate and
verify it only if one is sent (Go's VerifyClientCertIfGiven): a caller with
a certificate is its CN and O, a caller without one may still bring a bearer
token, and a caller with neither gets a clean `401 Unauthorized` — not a
broken handshake. gRPC's Python server cannot do that: it either requires a
verified certificate or never asks for one. So the TLS is ours:

    client ──TLS (cert optional, ALPN h2)──► TLSFront ──h2 over a unix socket──► gRPC server
                                              │ one relay socket per connection,
                                              │ bound to its own path: the server
                                              ▼ sees that path as the peer
                                   identities[path] = the client certificate's identity (or None)

The front accepts the connection with `ssl.CERT_OPTIONAL` against the client
CA, so a certificate that is sent but not signed by the CA fails the
handshake, and a missing one does not. For each connection it opens a unix
socket to the server *bound to a path of its own*; gRPC reports that path as
the call's peer (`context.peer()` = `unix:/…/c17`), which is how the
server's authenticator learns, per call, what the front verified
(`identity_of(peer)`). The bytes are relayed untouched.

One port, two protocols. Kubernetes has one API port, and every kubeconfig names it
(`https://HOST:6443`); kubectl and the official clients speak HTTP/1.1 (or
HTTP/2) REST there. tinykube's own clients speak gRPC. Both arrive on the
same port, and the TLS handshake itself tells them apart, before a byte of
HTTP: every client lists the application protocols it can speak in its
ClientHello (ALPN, RFC 7301), and the *server* picks one.

    grpcio (C core)          offers  grpc-exp, h2            -> we pick h2       -> gRPC
    kubectl (Go net/http)    offers  h2, http/1.1            -> we pick http/1.1 -> HTTP API
    curl, Python client      offer   http/1.1 (curl: h2 too) -> we pick http/1.1 -> HTTP API
    no ALPN at all           offers  nothing                 -> nothing picked   -> HTTP API

With an HTTP backend configured, the front advertises ["http/1.1", "h2"]:
OpenSSL's server-side selection walks the *server's* list in order and takes
the first protocol the client also offered (SSL_select_next_proto), so any
client that offers http/1.1 gets it, and only a client that offers h2
without http/1.1 -- which is exactly grpcio -- gets h2. After the handshake
`selected_alpn_protocol()` says which, and the connection is relayed to the
gRPC socket or to the HTTP API's socket, from the same per-connection path,
so both servers read the same verified identity. (Peeking the ClientHello
with MSG_PEEK and parsing its ALPN extension by hand would reach the same
decision before the handshake; letting the handshake make it needs no parser
of untrusted bytes, and the protocol the client is told is the one it gets.)
A front without an HTTP backend (the kubelet's port) advertises h2 only, as
before.

The front runs its own event loop in a thread, so relaying never competes
with the server's loop for its turn; the identity table is a dict written by
the front and read by the server (single operations, safe under the GIL).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import os
import shutil
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass

from cryptography import x509

from apimachinery import certs

RELAY_CHUNK = 256 * 1024


@dataclass(frozen=True)
class FrontConfig:
    """Where to listen, where to relay, and the TLS files (serving chain, client CA)."""

    host: str
    port: int
    backend: str  # the gRPC server's private unix socket (a path)
    cert_pem: bytes  # the serving certificate, followed by its CA if clients should see it
    key_pem: bytes
    client_ca_pem: bytes
    # The HTTP API's unix socket (a path): connections that negotiate http/1.1, or no
    # ALPN, go there. Empty: the front speaks h2 (gRPC) only.
    http_backend: str = ""


HTTP_ALPN = "http/1.1"
GRPC_ALPN = "h2"


class TLSFront:
    """Terminates TLS (client certificate optional) and relays each connection to the server."""

    def __init__(self, config: FrontConfig, directory: str = "") -> None:
        self.config = config
        self.port = 0
        self.identities: dict[str, certs.Identity | None] = {}
        # The relay sockets' directory (0700: only we bind here): inside the owner's own
        # directory when it gives one, so even a killed process leaves nothing elsewhere.
        self._dir = private_dir(directory, "front")
        self._numbers = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None

    def identity_of(self, peer: str) -> tuple[bool, certs.Identity | None]:
        """(whether `peer` came through this front, the certificate's identity if any)."""
        path = peer.removeprefix("unix:")
        if not path.startswith(self._dir + os.sep):
            return False, None
        return True, self.identities.get(path)

    def _context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        chain = os.path.join(self._dir, "serving.pem")
        with open(os.open(chain, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600), "wb") as f:
            f.write(self.config.cert_pem.rstrip(b"\n") + b"\n" + self.config.key_pem)
        context.load_cert_chain(chain)
        os.unlink(chain)
        context.load_verify_locations(cadata=self.config.client_ca_pem.decode())
        context.verify_mode = ssl.CERT_OPTIONAL
        # Server preference decides (module docstring): http/1.1 first when we serve HTTP.
        if self.config.http_backend:
            context.set_alpn_protocols([HTTP_ALPN, GRPC_ALPN])
        else:
            context.set_alpn_protocols([GRPC_ALPN])
        return context

    def start(self) -> int:
        """Listen (in a thread of its own); returns the port."""
        context = self._context()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(
                        self._relay, self.config.host, self.config.port, ssl=context
                    )
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as err:  # reported to start()'s caller
                failure.append(err)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="tls-front", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self.port

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is not None and server is not None:

            async def close() -> None:
                server.close()
                tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for task in tasks:
                    task.cancel()
                # Let the relays finish their cancellation (close their sockets) before the
                # loop stops, rather than leaving them to be destroyed pending.
                if tasks:
                    await asyncio.wait(tasks, timeout=2)

            asyncio.run_coroutine_threadsafe(close(), loop).result(timeout=5)
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
        shutil.rmtree(self._dir, ignore_errors=True)

    def backend_for(self, ssl_object: ssl.SSLObject | None) -> str:
        """The socket a connection goes to, by the protocol its handshake settled on."""
        chosen = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        if self.config.http_backend and chosen != GRPC_ALPN:
            return self.config.http_backend
        return self.config.backend

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        identity = certs.identity(x509.load_der_x509_certificate(der)) if der else None
        path = os.path.join(self._dir, f"c{next(self._numbers)}")
        self.identities[path] = identity
        try:
            backend = await _connect_from(path, self.backend_for(ssl_object))
            back_reader, back_writer = await asyncio.open_unix_connection(sock=backend)
            await asyncio.gather(
                _pipe(reader, back_writer), _pipe(back_reader, writer), return_exceptions=True
            )
        except OSError:
            pass  # the server is gone: the client sees the connection close
        finally:
            self.identities.pop(path, None)
            with contextlib.suppress(OSError):
                os.unlink(path)
            writer.close()


# A unix socket's path must fit in 108 bytes: a directory longer than this takes a
# temporary directory instead (the relay names are short: `c17`).
MAX_DIR_LENGTH = 90


def stand_in(directory: str, name: str) -> str:
    """The short directory that takes the place of `directory/name` when that path is too
    long for sockets: named after it, so the owner's next start (a kubelet after a kill -9,
    say) or its harness finds and clears what a killed run left there."""
    digest = hashlib.sha256(os.path.abspath(os.path.join(directory, name)).encode()).hexdigest()
    return os.path.join(tempfile.gettempdir(), f"tk-{name}-{digest[:16]}")


def private_dir(directory: str, name: str) -> str:
    """A fresh 0700 directory `directory/name` (stale contents from a killed run removed);
    a temporary one when no directory is given; a fixed stand-in in the temporary directory
    when `directory` does not exist or its path is too long for sockets."""
    if not directory:
        return tempfile.mkdtemp(prefix=f"tk-{name}-")
    path = os.path.join(directory, name)
    if len(path) > MAX_DIR_LENGTH or not os.path.isdir(directory):
        path = stand_in(directory, name)
    shutil.rmtree(path, ignore_errors=True)
    try:
        os.mkdir(path, mode=0o700)
    except OSError:
        return tempfile.mkdtemp(prefix=f"tk-{name}-")
    return path


async def _connect_from(path: str, backend: str) -> socket.socket:
    """A unix socket bound to `path` (the peer name the server will see), connected."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.bind(path)
    await asyncio.get_running_loop().sock_connect(sock, backend)
    return sock


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(RELAY_CHUNK):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()
