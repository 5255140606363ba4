"""The processes of the network cluster (netcluster.py): API server, namespaced children,
and the small Python programs the tests and benchmarks run inside pods.

`UnixApiServer` is `tinykube apiserver` listening on a unix socket alone:
node namespaces share the host's filesystem, so every agent reaches it at the
same path without any route between namespaces, and whoever may open the
socket is the cluster's admin -- the network tests exercise the network, not
the API's security, so their agents need no certificates (the unix listener
needs no TLS files either). `NsProcess` is a ChildProcess
run through `nsenter --net=...`, in its own session, so kill9() ends it like a
crash. The scripts are passed to `python -c` inside a pod's namespace; they
depend on nothing but the standard library:

    SERVER_SCRIPT       http: GET -> the pod's name; echo: TCP lines echoed;
                        udp: each datagram answered with "<name> <datagram>"
    HTTP_GET_SCRIPT     one GET, the body on stdout
    ECHO_CLIENT_SCRIPT  one TCP connection held for a while, every echo checked
                        (a connection that must survive an agent restart)
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from localcluster.netns import NetNS
from localcluster.processes import REPO, ChildProcess

# A server for pods: `http` answers GET with its name, `echo` echoes TCP lines, `udp`
# answers each datagram with "<name> <datagram>".
SERVER_SCRIPT = r"""
import http.server, socket, socketserver, sys
mode, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if mode == "http":
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def do_GET(self):
            body = (name + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass
    http.server.ThreadingHTTPServer.allow_reuse_address = True
    http.server.ThreadingHTTPServer(("0.0.0.0", port), H).serve_forever()
elif mode == "echo":
    class E(socketserver.StreamRequestHandler):
        def handle(self):
            for line in self.rfile:
                self.wfile.write(line)
                self.wfile.flush()
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    socketserver.ThreadingTCPServer.daemon_threads = True
    socketserver.ThreadingTCPServer(("0.0.0.0", port), E).serve_forever()
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    while True:
        data, peer = s.recvfrom(65535)
        s.sendto(name.encode() + b" " + data, peer)
"""

# GET http://IP:PORT/ once; prints the body; exit 1 with the error on stderr.
HTTP_GET_SCRIPT = r"""
import sys, urllib.request
try:
    url = f"http://{sys.argv[1]}:{sys.argv[2]}/"
    with urllib.request.urlopen(url, timeout=float(sys.argv[3])) as r:
        sys.stdout.write(r.read().decode())
except Exception as e:
    sys.stderr.write(f"{type(e).__name__}: {e}\n")
    sys.exit(1)
"""

# One TCP connection held for DURATION seconds, a line every 0.05 s, each echo checked.
# Prints "sent N received N maxgap S"; exit 1 if any echo is missing or wrong.
ECHO_CLIENT_SCRIPT = r"""
import socket, sys, time
ip, port, duration = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.create_connection((ip, port), timeout=10)
f = s.makefile("rwb")
sent = received = 0
maxgap, last = 0.0, time.monotonic()
end = time.monotonic() + duration
ok = True
while time.monotonic() < end:
    msg = f"ping {sent}\n".encode()
    f.write(msg); f.flush(); sent += 1
    if f.readline() != msg:
        ok = False
        break
    received += 1
    now = time.monotonic()
    maxgap, last = max(maxgap, now - last), now
    time.sleep(0.05)
print(f"sent {sent} received {received} maxgap {maxgap:.3f}", flush=True)
sys.exit(0 if ok else 1)
"""


class UnixApiServer(ChildProcess):
    """`tinykube apiserver --listen unix:PATH` (scheduler and controllers in-process)."""

    def __init__(self, data_dir: Path, socket_path: Path) -> None:
        self.data_dir = data_dir
        self.socket_path = socket_path
        args = ["apiserver", "--data-dir", str(data_dir), "--listen", self.address]
        super().__init__(args, data_dir / "apiserver.log")

    @property
    def address(self) -> str:
        return f"unix:{self.socket_path}"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        self.spawn()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket(socket.AF_UNIX) as s:
                if s.connect_ex(str(self.socket_path)) == 0:
                    return
            if not self.running:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("apiserver did not start:\n" + self.log.read_text())


class NsProcess(ChildProcess):
    """A command run inside a network namespace (nsenter), in its own session."""

    def __init__(self, ns: NetNS, argv: Sequence[str], log: Path) -> None:
        super().__init__(list(argv), log)
        self.ns = ns

    def spawn(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [*self.ns.prefix(), *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,
            )
