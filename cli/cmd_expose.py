"""`expose` (kubectl/pkg/cmd/expose): a Service in front of a workload.

    tinykube expose deployment web-app --port 80 --target-port 8080 --type NodePort
    service/web-app exposed

The Service is built from the exposed object, as kubectl's generator builds it:

* selector: a Deployment's or ReplicaSet's `spec.selector.matchLabels` (a
  selector with matchExpressions cannot be a Service's selector: error), a
  Service's own `spec.selector`, a Pod's labels; `--selector` overrides;
* ports: `--port` gives one; without it, the ports the object declares --
  every containerPort of the pod (template), or the Service's ports -- each
  becomes a Service port, named `port-1`, `port-2`... when there are
  several, with the declared protocol; none at all is kubectl's `couldn't
  find port via --port flag or introspection`;
* targetPort: `--target-port` (a number, or a container port's name), else
  the port itself;
* name: `--name`, else the exposed object's; labels: `--labels`, else the
  exposed object's labels; type: `--type` (ClusterIP unless told).

The server then validates and defaults it as any Service (an unsupported
type, a taken name are its errors, printed in its words) and allocates the
clusterIP and any nodePort. `--dry-run=client` prints the Service without
sending it; `-o yaml` shows what was (or would be) created.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from apimachinery import errors
from cli import context, inputs
from cli.cmd_patch import print_outcome, report
from cli.context import CommandError, Options, echo_err, effective, namespace_option
from protos import core_pb2

if TYPE_CHECKING:
    from apimachinery.client import Client

EXPOSABLE = ("Pod", "Service", "Deployment", "ReplicaSet")


@dataclass(frozen=True)
class ExposeOptions:
    port: str = ""
    target_port: str = ""
    protocol: str = ""
    type: str = ""
    name: str = ""
    selector: str = ""
    labels: str = ""
    cluster_ip: str = ""


def parse_pairs(text: str, flag: str) -> dict[str, str]:
    """`a=b,c=d` -> {"a": "b", "c": "d"}; CommandError naming the flag otherwise."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise CommandError(f"{flag}: expected KEY=VALUE[,KEY=VALUE...], got {part!r}")
        out[key] = value
    return out


def selector_of(obj: Any) -> dict[str, str]:
    """The pod selector a Service for `obj` needs (kubectl's introspection)."""
    kind = obj.kind
    if kind in ("Deployment", "ReplicaSet"):
        sel = obj.spec.selector
        if len(sel.match_expressions):
            raise CommandError(
                "couldn't convert expressions to map-based selector format: "
                f"the {kind.lower()} selects with matchExpressions; give --selector"
            )
        return dict(sel.match_labels)
    if kind == "Service":
        if not obj.spec.selector:
            raise CommandError(
                "couldn't retrieve selectors via --selector flag or introspection: "
                "the service has no pod selector set"
            )
        return dict(obj.spec.selector)
    if not obj.metadata.labels:
        raise CommandError(
            "couldn't retrieve selectors via --selector flag or introspection: "
            "the pod has no labels"
        )
    return dict(obj.metadata.labels)


def declared_ports(obj: Any) -> list[tuple[int, str]]:
    """(port, protocol) the object declares: its containers' ports, or a Service's ports."""
    if obj.kind == "Service":
        return [(p.port, p.protocol) for p in obj.spec.ports]
    spec = obj.spec if obj.kind == "Pod" else obj.spec.template.spec
    found: list[tuple[int, str]] = []
    for container in spec.containers:
        for port in container.ports:
            if port.container_port not in [p for p, _ in found]:
                found.append((port.container_port, port.protocol))
    return found


def parse_port(text: str, flag: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise CommandError(f"{flag}: invalid port {text!r}: must be a number from 1 to 65535")
    return int(text)


def build_service(obj: Any, opts: ExposeOptions, namespace: str) -> core_pb2.Service:
    """The Service `expose` creates for `obj` (see the module docstring)."""
    if obj.kind not in EXPOSABLE:
        raise CommandError(f"cannot expose a {obj.kind}")
    selector = parse_pairs(opts.selector, "--selector") if opts.selector else selector_of(obj)
    if opts.port:
        ports: Sequence[tuple[int, str]] = [(parse_port(opts.port, "--port"), "")]
    else:
        ports = declared_ports(obj)
    if not ports:
        raise CommandError("couldn't find port via --port flag or introspection")
    svc = core_pb2.Service(api_version="v1", kind="Service")
    svc.metadata.name = opts.name or obj.metadata.name
    svc.metadata.namespace = namespace
    labels = parse_pairs(opts.labels, "--labels") if opts.labels else dict(obj.metadata.labels)
    svc.metadata.labels.update(labels)
    svc.spec.selector.update(selector)
    if opts.type:
        svc.spec.type = opts.type
    if opts.cluster_ip:
        svc.spec.cluster_ip = opts.cluster_ip
    for index, (number, protocol) in enumerate(ports, start=1):
        port = svc.spec.ports.add(port=number, protocol=opts.protocol or protocol or "TCP")
        if len(ports) > 1:
            port.name = f"port-{index}"
        target = opts.target_port
        if target.isdigit():
            port.target_port.int_val = parse_port(target, "--target-port")
        elif target:
            port.target_port.str_val = target
        else:
            port.target_port.int_val = number
    return svc


@click.command("expose")
@click.argument("args", nargs=-1)
@click.option("--port", default="", help="The port the service serves on.")
@click.option("--target-port", default="", help="Number or name of the pods' port.")
@click.option("--protocol", default="", help="TCP (default), UDP or SCTP.")
@click.option("--type", "service_type", default="", help="ClusterIP (default), NodePort...")
@click.option("--name", default="", help="The service's name (default: the object's).")
@click.option("--selector", default="", help="The pod selector, key=value[,key=value].")
@click.option("-l", "--labels", default="", help="Labels for the service, key=value[,...].")
@click.option("--cluster-ip", default="", help="A clusterIP to ask for, or None (headless).")
@click.option(
    "--dry-run",
    type=click.Choice(["none", "client", "server"]),
    default="none",
    help="client: print the service only; server: validate it on the server.",
)
@click.option("-o", "--output", type=click.Choice(["name", "yaml", "json"]), default=None)
@namespace_option
@click.pass_obj
def expose(
    opts: Options,
    args: tuple[str, ...],
    port: str,
    target_port: str,
    protocol: str,
    service_type: str,
    name: str,
    selector: str,
    labels: str,
    cluster_ip: str,
    dry_run: str,
    output: str | None,
    namespace: str | None,
) -> None:
    """Expose a deployment, service, replica set or pod as a new service."""
    opts = effective(opts, namespace)
    options = ExposeOptions(
        port, target_port, protocol, service_type, name, selector, labels, cluster_ip
    )
    try:
        targets = inputs.parse_resource_args(args, verb="expose", need_names=True)
        for info, _ in targets:
            if info.kind not in EXPOSABLE:
                raise CommandError(f"cannot expose a {info.kind}")
    except CommandError as err:
        echo_err(f"error: {err}")
        raise click.exceptions.Exit(1) from None
    suffix = {"client": " (dry run)", "server": " (server dry run)"}.get(dry_run, "")

    async def verb(client: Client) -> int:
        code = 0
        for info, names in targets:
            for obj_name in names:
                try:
                    obj = await client.get(info, obj_name, opts.namespace)
                    obj.kind = obj.kind or info.kind
                    svc = build_service(obj, options, opts.namespace)
                    if dry_run != "client":
                        svc = await client.create(svc, dry_run=dry_run == "server")
                except CommandError as err:
                    echo_err(f"error: {err}")
                    code = 1
                    continue
                except errors.StatusError as err:
                    report(err, opts.server)
                    code = 1
                    continue
                print_outcome(svc, f"exposed{suffix}", output)
        return code

    context.exit_with(context.run(opts, verb))
