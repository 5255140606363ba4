"""The network agent's CNI server: thin `tinykube-cni` calls (thin.py) run in the agent's process.

The other end of thin.py. The agent (netplugin/agent.py) listens on a unix
socket under the node's run dir and names it in the conflist it writes
(`"agentSocket": "/run/tinykube/cni.sock"`); each connection is one CNI call:

    request   {"v": 1, "env": {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": ..., ...}}\\n<stdin>
    reply     {"code": 0, "stdout": "<what main.run printed>", "stderr": "<its log lines>"}

The call runs main.run() -- the very function the full plugin's process runs --
with the request's environment and stdin, so the result object, the error
object (code, msg, details), the exit status and the journal entry
(journal.py, read by the kubelet's trace) are the full plugin's, byte for
byte. The log lines the call makes (the `ip ...` commands, "failed", ...) go
to the agent's log as usual and are also sent back, so the client prints them
on its stderr where containerd copies a plugin's stderr into its own log.

Concurrency. containerd starts a burst's sandboxes in parallel; each request
runs on a thread of its own (at most MAX_PARALLEL at once, the rest wait),
exactly as parallel plugin processes did: the IPAM's flock (ipam.py) is taken
per open file, so two threads exclude each other as two processes did; the
bridge is ensured idempotently (bridge.py); the pod's netlink socket is made
by the request's own thread (threadns.py). Nothing is shared between
requests but the kernel and the disk, which were shared before.

Who may call. The socket is created 0600 in a directory the agent makes, and
each connection's peer credentials (SO_PEERCRED) must carry the agent's own
uid (root on a node): wiring pods is root's business, as running the plugin
binary is. A request that is not this protocol gets an error reply, never a
dropped connection without a word.

Sockets under /run/tinykube: a node with the standard CNI data dir uses
/run/tinykube/cni.sock; a node with another (each node of a local cluster has
its own) uses /run/tinykube/cni-<12 hex digits of the data dir's SHA-1>.sock,
short enough for the 107 bytes a unix socket path may have, and gone at reboot.
An agent killed without closing leaves its socket behind: the thin client then
finds nobody listening and runs the full plugin; each agent, as it starts,
removes such sockets of dead agents from the run dir (sweep_stale).

Standalone, for tests and for a look by hand (in the node's namespace):

    python -m netplugin.cni.server --socket /run/tinykube/cni-test.sock
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import logging
import os
import socket
import stat
import struct
import threading
import time
from pathlib import Path
from typing import Any

from netplugin.constants import CNI_DATA_DIR

log = logging.getLogger("netplugin.cni.server")

RUN_DIR = "/run/tinykube"
PROTOCOL = 1
MAX_PARALLEL = 32  # requests served at once; a 20-pod burst on a node fits
MAX_REQUEST = 1 << 20  # bytes: a configuration with a prevResult is a few KB
READ_TIMEOUT = 10.0  # seconds for the client to send its request
STALE_AFTER = 60.0  # seconds: a dead agent's socket this old is swept by the next agent
_CAPTURED = ("netplugin.cni", "netplugin.commands")


def socket_path(data_dir: str = CNI_DATA_DIR, run_dir: str = RUN_DIR) -> str:
    """The agent's CNI socket for a node whose CNI data dir is `data_dir`."""
    if os.path.normpath(data_dir) == CNI_DATA_DIR:
        return f"{run_dir}/cni.sock"
    digest = hashlib.sha1(os.path.normpath(data_dir).encode()).hexdigest()[:12]
    return f"{run_dir}/cni-{digest}.sock"


class _Capture(logging.Handler):
    """Collects the log lines of the requests running now, each by its thread."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        from netplugin.cni.main import _Formatter

        self.setFormatter(_Formatter())
        self.buffers: dict[int, list[str]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        lines = self.buffers.get(record.thread or 0)
        if lines is not None:
            lines.append(self.format(record))


class CNIServer:
    """Serves thin-client CNI calls on a unix socket; start(), then close()."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.served = 0
        self._server: asyncio.AbstractServer | None = None
        self._slots = asyncio.Semaphore(MAX_PARALLEL)
        self._capture = _Capture()
        self._inode = 0
        self._levels: dict[str, int] = {}

    async def start(self) -> None:
        """Listen on self.path (a stale socket from an agent that died is replaced)."""
        await asyncio.to_thread(_preload)
        sweep_stale(str(Path(self.path).parent))
        sock = _bind(self.path)
        self._inode = os.stat(self.path).st_ino
        self._server = await asyncio.start_unix_server(self._serve, sock=sock)
        for name in _CAPTURED:
            logger = logging.getLogger(name)
            logger.addHandler(self._capture)
            self._levels[name] = logger.level
            if logger.getEffectiveLevel() > logging.INFO:
                logger.setLevel(logging.INFO)  # the lines the client prints must be there
        log.info("serving CNI calls", extra={"socket": self.path})

    async def close(self) -> None:
        """Stop listening and remove the socket: later calls run the full plugin."""
        if self._server is None:
            return
        self._server.close()
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self._inode:  # not a successor agent's
                os.unlink(self.path)
        await self._server.wait_closed()
        self._server = None
        for name in _CAPTURED:
            logging.getLogger(name).removeHandler(self._capture)
            logging.getLogger(name).setLevel(self._levels.pop(name, logging.NOTSET))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            reply = await self._answer(reader, writer)
            writer.write(json.dumps(reply, separators=(",", ":")).encode())
            await writer.drain()
        except (ConnectionError, asyncio.TimeoutError) as e:
            log.warning("CNI call dropped", extra={"error": str(e) or type(e).__name__})
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> dict[str, Any]:
        uid = _peer_uid(writer.get_extra_info("socket"))
        if uid != os.geteuid():
            log.warning("CNI call refused", extra={"uid": uid})
            return _refusal(f"uid {uid} may not call the network agent (root only)")
        data = await asyncio.wait_for(reader.read(MAX_REQUEST + 1), READ_TIMEOUT)
        while data and len(data) <= MAX_REQUEST and not reader.at_eof():
            more = await asyncio.wait_for(reader.read(MAX_REQUEST + 1), READ_TIMEOUT)
            data += more
        if len(data) > MAX_REQUEST:
            return _refusal(f"request larger than {MAX_REQUEST} bytes")
        header, _, stdin = data.partition(b"\n")
        try:
            request = json.loads(header)
            env = request["env"]
            if request.get("v") != PROTOCOL or not isinstance(env, dict):
                raise ValueError(f"protocol {request.get('v')!r}, expected {PROTOCOL}")
        except (ValueError, KeyError, TypeError) as e:
            return _refusal(f"not a CNI call of protocol {PROTOCOL}: {e}")
        async with self._slots:
            loop = asyncio.get_running_loop()
            done: asyncio.Future[dict[str, Any]] = loop.create_future()
            thread = threading.Thread(
                target=self._call,
                args=(loop, done, {str(k): str(v) for k, v in env.items()}, stdin),
                name=f"cni-{env.get('CNI_COMMAND', '?')}",
                daemon=True,
            )
            thread.start()
            reply = await done
        self.served += 1
        return reply

    def _call(
        self,
        loop: asyncio.AbstractEventLoop,
        done: asyncio.Future[dict[str, Any]],
        env: dict[str, str],
        stdin: bytes,
    ) -> None:
        """One CNI call on this (new) thread: main.run, its stdout and its log lines."""
        from netplugin.cni import main

        lines: list[str] = []
        self._capture.buffers[threading.get_ident()] = lines
        stdout = io.StringIO()
        try:
            code = main.run(env, io.BytesIO(stdin), stdout)
        except BaseException as e:  # main.run answers every Exception itself; this is worse
            code = 1
            lines.append(f"tinykube-cni[{os.getpid()}] ERROR agent thread died: {e!r}")
        finally:
            self._capture.buffers.pop(threading.get_ident(), None)
        stderr = "".join(f"{line}\n" for line in lines)
        reply = {"code": code, "stdout": stdout.getvalue(), "stderr": stderr}
        with contextlib.suppress(RuntimeError):  # the agent's loop closed meanwhile
            loop.call_soon_threadsafe(_resolve, done, reply)


def _preload() -> None:
    """Import what a call runs now, not during the first pod's ADD."""
    from netplugin.cni import main

    main._light_pyroute2()
    from netplugin.cni import plugin  # noqa: F401


def _resolve(done: asyncio.Future[dict[str, Any]], reply: dict[str, Any]) -> None:
    if not done.done():
        done.set_result(reply)


def _refusal(msg: str) -> dict[str, Any]:
    """An error object the client prints as it would print the plugin's (code 4)."""
    error = {"cniVersion": "1.0.0", "code": 4, "msg": msg}
    return {"code": 1, "stdout": json.dumps(error) + "\n", "stderr": ""}


def _peer_uid(sock: socket.socket | None) -> int:
    if sock is None:
        return -1
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def sweep_stale(run_dir: str, min_age: float = STALE_AFTER) -> list[str]:
    """Remove the CNI sockets of agents that died without closing (SIGKILL, a crash) in
    `run_dir`: nobody listens on them and they are older than `min_age` seconds (so a socket
    another agent has just bound, and not yet listens on, is left alone). The removed paths."""
    removed = []
    for path in Path(run_dir).glob("cni*.sock"):
        try:
            info = path.lstat()
            if not stat.S_ISSOCK(info.st_mode) or time.time() - info.st_mtime < min_age:
                continue
        except FileNotFoundError:
            continue
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(str(path))
        except OSError:
            pass
        finally:
            probe.close()
    if removed:
        log.info("removed stale CNI sockets", extra={"sockets": " ".join(removed)})
    return removed


def _bind(path: str) -> socket.socket:
    """A listening unix socket at `path`, mode 0600, replacing a dead agent's socket."""
    if len(os.fsencode(path)) > 107:
        raise ValueError(f"CNI socket path {path} is longer than a unix socket's 107 bytes")
    directory = Path(path).parent
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise FileExistsError(f"{path} exists and is not a socket; refusing to replace it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            os.unlink(path)  # nobody listens: a dead agent's
        else:
            raise FileExistsError(f"another network agent serves {path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)  # born 0755 at most (umask): connecting needs write access, so owner only
    os.chmod(path, 0o600)
    sock.listen(128)
    sock.setblocking(False)
    return sock


def main() -> None:
    """`python -m netplugin.cni.server --socket PATH`: serve until SIGTERM or Ctrl-C."""
    ap = argparse.ArgumentParser(description="Serve thin tinykube-cni calls on a unix socket.")
    ap.add_argument("--socket", default=socket_path(), help="the socket (default %(default)s)")
    args = ap.parse_args()
    from netplugin import pyroute2_light

    pyroute2_light.load()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    async def serve() -> None:
        import signal

        server = CNIServer(args.socket)
        await server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        print("ready", os.getpid(), flush=True)  # the pid: tests tell its log lines apart
        try:
            await stop.wait()
        finally:
            await server.close()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
