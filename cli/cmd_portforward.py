"""`port-forward`: local ports joined to a pod's ports (kubectl port-forward).

    $ tinykube port-forward deploy/web 8080:80
    Forwarding from 127.0.0.1:8080 -> 80
    Forwarding from [::1]:8080 -> 80
    Handling connection for 8080

What is forwarded to. `POD`, `pod/NAME`, or an object that selects pods
(`deploy/web`, `rs/...`, `svc/web`): its selector's best pod, as for logs
(cli/logs_select.py), waiting `--pod-running-timeout` for one to appear. The
pod must be Running ("unable to forward port because pod is not running.
Current status=Pending"). Ports are `[LOCAL:]REMOTE`: `8080:80`, `80` (the
same both sides), `:80` (a free local port, printed). REMOTE may name a
container port (`8080:http`). Through a Service, REMOTE is the Service's
port (number or name) and goes to its targetPort -- a number, or a named
container port of the chosen pod -- as kubectl translates it; without LOCAL
the Service's port is the local one.

How. Each local address of `--address` (comma-separated IPs, or `localhost`
for 127.0.0.1 and ::1, the default) listens on each local port. Every
accepted connection gets its own PodPortForward stream
(cli/exec_stream.py): the API server authorizes `create` on
pods/portforward and relays to the kubelet, which connects to
localhost:REMOTE inside the pod's network namespace. A connection that
fails prints kubectl's "an error occurred forwarding 8080 -> 80: ..." and
the others go on. The command runs until Ctrl-C or SIGTERM (exit 0), or
until the pod is gone or no longer running ("lost connection to pod",
exit 1), which it checks every POLL seconds.

Bad input, in kubectl's words: "TYPE/NAME and list of ports are required
for port-forward", "error parsing local port 'x': strconv.ParseUint:
parsing "x": invalid syntax", "remote port must be > 0", "Service web does
not have a service port 8080", "Pod 'web' does not have a named port
'http'", "x is not a valid IP"; a port nothing can listen on is "unable to
listen on any of the requested ports: [{8080 80}]".
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from apimachinery import errors
from cli import context, exec_stream
from cli.context import CommandError, Options, effective, namespace_option
from cli.durations import DURATION
from cli.inputs import kind_for
from cli.logs_select import first_pod, go_type, selector_of
from protos import core_pb2, kubelet_pb2

if TYPE_CHECKING:
    from apimachinery.client import Client

POLL = 2.0
USAGE = "TYPE/NAME and list of ports are required for port-forward"


def _uint16(text: str, which: str) -> int:
    """Go's strconv.ParseUint(text, 10, 16), with kubectl's message around its error."""
    if not text.isdigit():
        why = f'strconv.ParseUint: parsing "{text}": invalid syntax'
    elif int(text) > 65535:
        why = f'strconv.ParseUint: parsing "{text}": value out of range'
    else:
        return int(text)
    raise CommandError(f"error parsing {which} port '{text}': {why}")


def split_ports(specs: Sequence[str]) -> list[tuple[str, str]]:
    """`[LOCAL:]REMOTE` -> (local text, remote text); LOCAL "" means "the same as REMOTE"."""
    out = []
    for spec in specs:
        parts = spec.split(":")
        if len(parts) == 1:
            out.append(("", parts[0]))
        elif len(parts) == 2:
            out.append((parts[0] or "0", parts[1]))
        else:
            raise CommandError(f"invalid port format '{spec}'")
    return out


def container_port(pod: core_pb2.Pod, name: str) -> int:
    """The number of a named container port of `pod` (kubectl's error when there is none)."""
    for container in pod.spec.containers:
        for port in container.ports:
            if port.name == name:
                return int(port.container_port)
    raise CommandError(f"Pod '{pod.metadata.name}' does not have a named port '{name}'")


def pod_ports(pod: core_pb2.Pod, pairs: list[tuple[str, str]]) -> list[tuple[int, int]]:
    """(local, remote) numbers for a pod: a named REMOTE becomes its container port."""
    out = []
    for local, remote in pairs:
        number = str(container_port(pod, remote)) if not remote.isdigit() else remote
        out.append(_checked(local or number, number))
    return out


def service_ports(
    service: core_pb2.Service, pod: core_pb2.Pod, pairs: list[tuple[str, str]]
) -> list[tuple[int, int]]:
    """(local, remote) numbers through a Service: its port -> its targetPort in `pod`."""
    out = []
    for local, remote in pairs:
        name = service.metadata.name
        if remote.isdigit():
            found = [p for p in service.spec.ports if p.port == int(remote)]
            if not found:
                raise CommandError(f"Service {name} does not have a service port {remote}")
        else:
            found = [p for p in service.spec.ports if p.name == remote]
            if not found:
                raise CommandError(f"Service '{name}' does not have a named port '{remote}'")
        port = found[0]
        target = port.target_port
        if target.WhichOneof("value") == "str_val":  # a named port of the pod's containers
            number = container_port(pod, target.str_val)
        else:
            number = int(target.int_val or port.port)
        out.append(_checked(local or str(port.port), str(number)))
    return out


def _checked(local: str, remote: str) -> tuple[int, int]:
    local_port, remote_port = _uint16(local, "local"), _uint16(remote, "remote")
    if remote_port == 0:
        raise CommandError("remote port must be > 0")
    return local_port, remote_port


def listen_addresses(text: str) -> list[str]:
    """`--address`: localhost (127.0.0.1 and ::1) or IPs, comma-separated."""
    out: list[str] = []
    for word in (w.strip() for w in text.split(",")):
        if word == "localhost":
            out += ["127.0.0.1", "::1"]
            continue
        try:
            out.append(str(ipaddress.ip_address(word)))
        except ValueError:
            raise CommandError(f"{word} is not a valid IP") from None
    return list(dict.fromkeys(out))


async def resolve(
    client: Client, namespace: str, target: str, timeout: float
) -> tuple[core_pb2.Pod, core_pb2.Service | None]:
    """The pod to forward to (and the Service, when one was named)."""
    kind_word, slash, name = target.partition("/")
    if not slash:
        return await client.get(core_pb2.Pod, target, namespace), None
    if not kind_word or not name or "/" in name:
        raise CommandError(
            f'arguments in resource/name form must have a single resource and name: "{target}"'
        )
    info = kind_for(kind_word)
    if info.kind == "Pod":
        return await client.get(core_pb2.Pod, name, namespace), None
    obj = await client.get(info, name, namespace)
    try:
        selector = selector_of(info, obj)
    except CommandError as err:
        if "not implemented" not in str(err):
            raise
        kind = go_type(info)
        raise CommandError(
            f"cannot attach to {kind}: selector for {kind} not implemented"
        ) from None
    pod, _ = await first_pod(client, namespace, selector, timeout)
    return pod, obj if isinstance(obj, core_pb2.Service) else None


class Forwarder:
    """The listeners of one `port-forward` and the streams of their connections."""

    def __init__(self, client: Client, pod: core_pb2.Pod) -> None:
        self.client = client
        self.pod = pod
        self.servers: list[asyncio.AbstractServer] = []
        self.tasks: set[asyncio.Future[None]] = set()

    async def listen(self, addresses: list[str], local: int, remote: int) -> bool:
        """Listen on `local` at every address; False (with kubectl's line) if none could."""
        failures: list[str] = []
        chosen = [local]  # with 0, the port the first listener got: the others take it too

        def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._accepted(reader, writer, chosen[0], remote)

        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            shown = f"[{address}]" if family == socket.AF_INET6 else address
            try:
                server = await asyncio.start_server(accept, address, chosen[0], family=family)
            except OSError as exc:
                tcp = "tcp6" if family == socket.AF_INET6 else "tcp4"
                why = (exc.strerror or str(exc)).lower()
                where = f"{tcp} {shown}:{chosen[0]}"
                failures.append(f"unable to create listener: Error listen {where}: bind: {why}")
                continue
            chosen[0] = server.sockets[0].getsockname()[1]
            self.servers.append(server)
            click.echo(f"Forwarding from {shown}:{chosen[0]} -> {remote}")
        if len(failures) == len(addresses):
            context.echo_err(
                f"Unable to listen on port {local}: Listeners failed to create with the"
                f" following errors: [{' '.join(failures)}]"
            )
            return False
        return True

    def _accepted(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, local: int, remote: int
    ) -> None:
        click.echo(f"Handling connection for {local}")
        task = asyncio.ensure_future(self._forward(reader, writer, local, remote))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _forward(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, local: int, remote: int
    ) -> None:
        start = kubelet_pb2.PortForwardStart(
            namespace=self.pod.metadata.namespace,
            pod=self.pod.metadata.name,
            pod_uid=self.pod.metadata.uid,
            port=remote,
        )
        try:
            await exec_stream.forward_connection(self.client, start, reader, writer)
        except (errors.StatusError, CommandError) as err:
            message = err.message if isinstance(err, errors.StatusError) else str(err)
            context.echo_err(f"an error occurred forwarding {local} -> {remote}: {message}")

    async def watch_pod(self) -> str:
        """Returns (as the reason to stop) once the pod is gone or not running."""
        meta = self.pod.metadata
        while True:
            await asyncio.sleep(POLL)
            try:
                now = await self.client.get(core_pb2.Pod, meta.name, meta.namespace)
            except errors.NotFound:
                return "lost connection to pod"
            if now.metadata.uid != meta.uid or now.status.phase != "Running":
                return "lost connection to pod"

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def run_port_forward(
    client: Client, opts: Options, target: str, specs: Sequence[str], address: str, timeout: float
) -> int:
    pairs = split_ports(specs)
    addresses = listen_addresses(address)
    pod, service = await resolve(client, opts.namespace, target, timeout)
    if pod.status.phase != "Running":
        raise CommandError(
            "unable to forward port because pod is not running. "
            f"Current status={pod.status.phase or 'Pending'}"
        )
    ports = service_ports(service, pod, pairs) if service else pod_ports(pod, pairs)
    forwarder = Forwarder(client, pod)
    try:
        listening = [await forwarder.listen(addresses, local, remote) for local, remote in ports]
        if not any(listening):
            shown = " ".join(f"{{{local} {remote}}}" for local, remote in ports)
            raise CommandError(f"unable to listen on any of the requested ports: [{shown}]")
        reason = await forwarder.watch_pod()
    finally:
        await forwarder.close()
    raise CommandError(reason)


@click.command("port-forward")
@click.argument("args", nargs=-1)
@click.option(
    "--address",
    default="localhost",
    show_default=True,
    help="Addresses to listen on (comma separated): IPs, or localhost (127.0.0.1 and ::1).",
)
@click.option(
    "--pod-running-timeout",
    type=DURATION,
    default=60.0,
    help="How long TYPE/NAME waits for a pod to appear (e.g. 5s, 2m).",
)
@namespace_option
@click.pass_obj
def port_forward(
    opts: Options,
    args: tuple[str, ...],
    address: str,
    pod_running_timeout: float,
    namespace: str | None,
) -> None:
    """Forward one or more local ports to a pod."""
    opts = effective(opts, namespace)
    if len(args) < 2:
        context.echo_err(f"error: {USAGE}")
        raise click.exceptions.Exit(1)
    target, specs = args[0], args[1:]

    async def forward(client: Client) -> int:
        # Ends by a signal (exit 0), or with a CommandError: the pod was lost, a bad port.
        await context.until_signalled(
            run_port_forward(client, opts, target, specs, address, pod_running_timeout)
        )
        return 0

    context.exit_with(context.run(opts, forward))
