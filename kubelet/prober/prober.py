"""One probe attempt: httpGet, tcpSocket or exec (Kubernetes' prober.go and probe/{http,tcp,exec}).

`run_probe(probe, target, runtime)` performs the action the Probe names and
returns a ProbeOutcome (SUCCESS / FAILURE, plus the output a user sees in
the `Unhealthy` event). It never raises for a failing container: a refused
connection, a timeout, a 500 or an exit code of 1 are all FAILURE with
Kubernetes' wording:

    httpGet    2xx and 3xx succeed (redirects are not followed: a 3xx is a
               success, as Kubernetes counts it), anything else:
               `HTTP probe failed with statuscode: 500`
    tcpSocket  the connection opens: success; else
               `dial tcp 10.244.1.2:8080: connect: connection refused`
    exec       exit 0: success; else the command's output, or
               `command "cat /tmp/healthy" exited with 1`

HTTP without a dependency: the GET is written by hand over asyncio streams
(HTTP/1.1, `Connection: close`, `Host`, `User-Agent: kube-probe/...`, the
probe's own headers), and only the status line is read -- the body does not
matter. HTTPS uses TLS without verifying the certificate, as Kubernetes
does for probes. The target address is the probe's `host`, else the pod IP
(the node IP for hostNetwork pods); a named port is looked up in the
container's ports.

Worked example: `httpGet: {path: /healthz, port: http}` on a container with
`ports: [{name: http, containerPort: 8080}]` in a pod at 10.244.1.2 sends

    GET /healthz HTTP/1.1\\r\\nHost: 10.244.1.2:8080\\r\\nUser-Agent: kube-probe/0.1\\r\\n...

and `HTTP/1.1 200 OK` is SUCCESS.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import shlex
import ssl
from dataclasses import dataclass

from kubelet import errors
from kubelet.runtime.interface import ContainerRuntime
from protos import core_pb2, meta_pb2

USER_AGENT = "kube-probe/0.1"
_MAX_OUTPUT = 10 * 1024  # Kubernetes keeps at most 10 KiB of a probe's output


class Result(enum.Enum):
    """A probe's verdict; UNKNOWN (the probe could not run) keeps the last result."""

    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ProbeOutcome:
    """One probe attempt's verdict and what a user reads in the Unhealthy event."""

    result: Result
    output: str = ""


@dataclass(frozen=True)
class ProbeTarget:
    """Where a probe goes: the pod's address, the container's ports and id."""

    pod_ip: str
    container_id: str
    container_spec: core_pb2.Container


def resolve_port(port: meta_pb2.IntOrString, container_spec: core_pb2.Container) -> int:
    """An IntOrString port: a number, or the name of one of the container's ports."""
    if port.WhichOneof("value") == "int_val":
        return int(port.int_val)
    name = port.str_val
    if name.isdigit():
        return int(name)
    for p in container_spec.ports:
        if p.name == name:
            return int(p.container_port)
    raise ValueError(f"port {name!r} not found in the container's ports")


async def http_get(
    host: str,
    port: int,
    path: str = "/",
    *,
    scheme: str = "HTTP",
    headers: list[tuple[str, str]] | None = None,
    timeout: float = 1.0,
) -> ProbeOutcome:
    """One HTTP/1.1 GET; success for status 200-399."""
    scheme = (scheme or "HTTP").upper()
    path = path or "/"
    if not path.startswith("/"):
        path = "/" + path
    shown_host = f"[{host}]" if ":" in host else host
    url = f"{scheme.lower()}://{shown_host}:{port}{path}"
    context: ssl.SSLContext | None = None
    if scheme == "HTTPS":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    sent = {name.lower() for name, _ in headers or []}
    lines = [f"GET {path} HTTP/1.1"]
    if "host" not in sent:
        lines.append(f"Host: {shown_host}:{port}")
    if "user-agent" not in sent:
        lines.append(f"User-Agent: {USER_AGENT}")
    if "accept" not in sent:
        lines.append("Accept: */*")
    lines.extend(f"{name}: {value}" for name, value in headers or [])
    lines.append("Connection: close")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def attempt() -> ProbeOutcome:
        reader, writer = await asyncio.open_connection(host, port, ssl=context)
        try:
            writer.write(request)
            await writer.drain()
            status_line = await reader.readline()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        parts = status_line.decode("latin-1").split()
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            return ProbeOutcome(Result.FAILURE, f'Get "{url}": malformed HTTP response')
        code = int(parts[1])
        if 200 <= code < 400:
            return ProbeOutcome(Result.SUCCESS, f"HTTP probe succeeded with statuscode: {code}")
        return ProbeOutcome(Result.FAILURE, f"HTTP probe failed with statuscode: {code}")

    try:
        return await asyncio.wait_for(attempt(), timeout)
    except asyncio.TimeoutError:
        return ProbeOutcome(
            Result.FAILURE,
            f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting '
            "headers)",
        )
    except OSError as exc:
        return ProbeOutcome(Result.FAILURE, f'Get "{url}": {_dial_error(host, port, exc)}')


def _dial_error(host: str, port: int, exc: OSError) -> str:
    # asyncio words a refused connect "Connect call failed (...)": say what errno says.
    reason = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))
    reason = reason.lower()
    return f"dial tcp {host}:{port}: connect: {reason}"


async def tcp_socket(host: str, port: int, *, timeout: float = 1.0) -> ProbeOutcome:
    """Success if a TCP connection opens within `timeout`."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except asyncio.TimeoutError:
        return ProbeOutcome(Result.FAILURE, f"dial tcp {host}:{port}: i/o timeout")
    except OSError as exc:
        return ProbeOutcome(Result.FAILURE, _dial_error(host, port, exc))
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return ProbeOutcome(Result.SUCCESS)


async def exec_probe(
    runtime: ContainerRuntime, container_id: str, command: list[str], *, timeout: float = 1.0
) -> ProbeOutcome:
    """Success if the command exits 0 in the container (CRI ExecSync)."""
    try:
        result = await runtime.exec_sync(container_id, command, timeout)
    except errors.ExecTimeout:
        return ProbeOutcome(Result.FAILURE, f"command {shlex.join(command)!r} timed out")
    except errors.ContainerRuntimeError as exc:
        return ProbeOutcome(Result.UNKNOWN, str(exc))
    output = (result.stdout + result.stderr)[:_MAX_OUTPUT].decode("utf-8", "replace").strip()
    if result.exit_code == 0:
        return ProbeOutcome(Result.SUCCESS, output)
    return ProbeOutcome(
        Result.FAILURE,
        output or f"command {shlex.join(command)!r} exited with {result.exit_code}",
    )


async def run_probe(
    probe: core_pb2.Probe, target: ProbeTarget, runtime: ContainerRuntime
) -> ProbeOutcome:
    """Run the action `probe` names against `target` (prober.runProbe)."""
    timeout = float(probe.timeout_seconds or 1)
    spec = target.container_spec
    try:
        if probe.HasField("exec"):
            return await exec_probe(
                runtime, target.container_id, list(probe.exec.command), timeout=timeout
            )
        if probe.HasField("http_get"):
            action = probe.http_get
            return await http_get(
                action.host or target.pod_ip,
                resolve_port(action.port, spec),
                action.path,
                scheme=action.scheme,
                headers=[(h.name, h.value) for h in action.http_headers],
                timeout=timeout,
            )
        if probe.HasField("tcp_socket"):
            tcp = probe.tcp_socket
            return await tcp_socket(
                tcp.host or target.pod_ip, resolve_port(tcp.port, spec), timeout=timeout
            )
    except ValueError as exc:
        return ProbeOutcome(Result.UNKNOWN, str(exc))
    return ProbeOutcome(Result.UNKNOWN, "probe has no handler")
