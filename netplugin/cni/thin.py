"""The thin `tinykube-cni`: the CNI protocol handed to the node's network agent over a unix socket.

Why. containerd runs the CNI plugin once per sandbox, and the full plugin
(main.py) is a Python process that imports pyroute2, ipaddress, logging and
its own modules before it does anything: about 0.3 s of CPU per pod, paid
again for every pod of a burst on a 2-core node. The node's network agent
(netplugin/agent.py) already runs on every node with all of that loaded, so
this client only carries the request across: it imports nothing but the
standard library (not even the rest of the netplugin package), starts under
`python -I -S` in a few milliseconds, and the agent runs the very same
main.run() in-process (server.py). Multus splits the same way in its
"thick plugin" mode: `multus-shim` only forwards each call to the Multus
daemon over a unix socket (Cilium's plugin asks cilium-agent for the
addresses and the endpoint, over its socket too).

One call, as containerd makes it:

    CNI_COMMAND=ADD CNI_CONTAINERID=4f1c... CNI_NETNS=/run/netns/cni-1234 CNI_IFNAME=eth0 \\
        /opt/cni/bin/tinykube-cni < {"cniVersion": "1.0.0", "name": "tinykube", ...,
                                     "agentSocket": "/run/tinykube/cni.sock"}

    1. VERSION is answered here: it needs no configuration and no agent.
    2. stdin is read whole; `agentSocket` names the agent's socket (the agent
       writes it into the conflist it renders, agent_node.ensure_conflist).
    3. connect; send one request, then shut down the write side:
           {"v": 1, "env": {"CNI_COMMAND": "ADD", ...}}\\n<stdin bytes, unchanged>
    4. read the reply to EOF: {"code": 0, "stdout": "<result JSON>\\n", "stderr": "<log lines>"}
    5. copy stdout and stderr out unchanged and exit with `code`: the result, the
       error object (code/msg/details) and the exit status are main.run()'s own.

Fallback: no `agentSocket` in the configuration (a node without the agent, or
stdin that is not even JSON), no socket file, or nobody listening on it (the
agent stopped) -> exec the full plugin, `tinykube-cni-full`, found beside this
executable or on CNI_PATH, with the same environment and the same stdin bytes
(replayed through a memfd). Nothing was sent, so nothing can happen twice.

Failure once the request is sent (the agent died mid-request, or gave no answer
in REPLY_TIMEOUT) is a CNI error, code 11 "try again later", in the
configuration's cniVersion, exit status 1: the runtime cannot know whether the
agent finished the ADD, and its retry (DEL, then ADD again) is what clears it.
"""

from __future__ import annotations

import json
import os
import socket
import sys

TYPE_CHECKING = False  # typing itself costs 3 ms of start-up: imported for mypy only
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, NoReturn

# These three must agree with netplugin/constants.py and netplugin/cni/config.py
# (tests/unit/netplugin/test_cni_thin.py checks); importing them would cost the imports.
CNI_VERSION = "1.0.0"
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0")
PLUGIN_TYPE = "tinykube-cni"

FULL_PLUGIN = "tinykube-cni-full"  # the standalone plugin (main.py), installed beside this one
SOCKET_FIELD = "agentSocket"
PROTOCOL = 1
REPLY_TIMEOUT = 120.0  # seconds; an ADD waits at most 30 s for the IPAM lock (ipam.py)
MAX_REPLY = 4 << 20
TRY_AGAIN_LATER = 11  # the CNI spec's well-known code
LOST = "the node's network agent closed the connection before answering"
UNEXPECTED = 999


class AgentUnavailable(Exception):
    """Nobody serves the socket: the request was not sent, the full plugin may run instead."""


class RequestFailed(Exception):
    """The agent is there but the call failed: `msg` and `details` for the CNI error object."""

    def __init__(self, msg: str, details: str) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details


def main() -> None:
    """The executable's entry point (the wrapper install.py writes calls it)."""
    sys.exit(run(os.environ, sys.argv[0]))


def run(environ: Mapping[str, str], argv0: str) -> int:
    """One CNI invocation; the exit status (or no return: the full plugin was exec'd)."""
    if environ.get("CNI_COMMAND") == "VERSION":
        _write(sys.stdout, {"cniVersion": CNI_VERSION, "supportedVersions": SUPPORTED_VERSIONS})
        return 0
    try:
        raw = sys.stdin.buffer.read()
    except OSError as e:
        _write(sys.stdout, _error(CNI_VERSION, 5, "cannot read the network configuration", str(e)))
        return 1
    conf = _config(raw)
    path = conf.get(SOCKET_FIELD)
    if not isinstance(path, str) or not path:
        exec_full_plugin(environ, argv0, raw)
    version = conf.get("cniVersion")
    version = version if isinstance(version, str) and version else CNI_VERSION
    try:
        reply = call_agent(path, environ, raw)
    except AgentUnavailable:
        exec_full_plugin(environ, argv0, raw)
    except RequestFailed as e:
        _write(sys.stdout, _error(version, TRY_AGAIN_LATER, e.msg, e.details))
        return 1
    sys.stderr.write(str(reply.get("stderr", "")))
    sys.stderr.flush()
    sys.stdout.write(str(reply.get("stdout", "")))
    sys.stdout.flush()
    code = reply.get("code")
    return code if isinstance(code, int) else 1


def call_agent(path: str, environ: Mapping[str, str], raw: bytes) -> dict[str, Any]:
    """Send one request to the agent at `path`; its reply.

    AgentUnavailable when nobody listens (nothing was sent); RequestFailed when
    the agent cannot be reached otherwise, or the reply did not come whole."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError) as e:
            raise AgentUnavailable(str(e)) from e
        except OSError as e:  # EACCES: not root; ENAMETOOLONG: a path of over 107 bytes
            raise RequestFailed(
                "cannot connect to the node's network agent", f"{path}: {e.strerror or e}"
            ) from e
        env = {k: v for k, v in environ.items() if k.startswith("CNI_")}
        header = json.dumps({"v": PROTOCOL, "env": env}, separators=(",", ":"))
        try:
            sock.settimeout(REPLY_TIMEOUT)
            sock.sendall(header.encode() + b"\n" + raw)
            sock.shutdown(socket.SHUT_WR)
            data = _read_all(sock)
        except TimeoutError as e:
            raise RequestFailed(
                f"the node's network agent did not answer within {REPLY_TIMEOUT:g} s", path
            ) from e
        except OSError as e:  # a reset: the agent died while working on it
            raise RequestFailed(LOST, f"{path}: {e.strerror or e}") from e
    finally:
        sock.close()
    try:
        reply = json.loads(data)
    except ValueError:
        reply = None
    if not isinstance(reply, dict) or not isinstance(reply.get("stdout"), str):
        raise RequestFailed(LOST, f"{path}: {len(data)} bytes that are no complete reply")
    return reply


def exec_full_plugin(environ: Mapping[str, str], argv0: str, raw: bytes) -> NoReturn:
    """Replace this process by the full plugin, stdin replayed; never returns."""
    full = find_full_plugin(environ, argv0)
    if full is None:
        conf = _config(raw)
        version = conf.get("cniVersion") if isinstance(conf.get("cniVersion"), str) else None
        dirs = [os.path.dirname(os.path.abspath(argv0)), *_cni_path(environ)]
        msg = f"no network agent on this node and no {FULL_PLUGIN} in {', '.join(dirs)}"
        error = _error(version or CNI_VERSION, UNEXPECTED, msg, "reinstall the CNI bin dir")
        _write(sys.stdout, error)
        sys.exit(1)
    fd = os.memfd_create("cni-stdin")
    os.write(fd, raw)  # a configuration is a few hundred bytes: one write
    os.lseek(fd, 0, os.SEEK_SET)
    os.dup2(fd, 0)
    os.close(fd)
    sys.stdout.flush()
    os.execve(full, [full], dict(environ))


def find_full_plugin(environ: Mapping[str, str], argv0: str) -> str | None:
    """tinykube-cni-full beside this executable, else in a CNI_PATH directory."""
    for directory in [os.path.dirname(os.path.abspath(argv0)), *_cni_path(environ)]:
        candidate = os.path.join(directory, FULL_PLUGIN)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _cni_path(environ: Mapping[str, str]) -> list[str]:
    return [d for d in environ.get("CNI_PATH", "").split(os.pathsep) if d]


def _config(raw: bytes) -> dict[str, Any]:
    """The plugin's configuration as far as it is JSON; {} otherwise (the full plugin then
    names what is wrong). A whole conflist is accepted, as main.py accepts it."""
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    plugins = data.get("plugins")
    if isinstance(plugins, list):
        for plugin in plugins:
            if isinstance(plugin, dict) and plugin.get("type") == PLUGIN_TYPE:
                return {**plugin, "cniVersion": data.get("cniVersion")}
        return {}
    return data


def _read_all(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_REPLY:
            raise OSError(f"a reply larger than {MAX_REPLY} bytes")
        chunks.append(chunk)


def _error(version: str, code: int, msg: str, details: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"cniVersion": version, "code": code, "msg": msg}
    if details:
        out["details"] = details
    return out


def _write(stream: Any, obj: Mapping[str, Any]) -> None:
    stream.write(json.dumps(obj) + "\n")
    stream.flush()


if __name__ == "__main__":
    main()
