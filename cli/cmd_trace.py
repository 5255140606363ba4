"""`tinykube trace`: one change, told as one story -- every step, who took it, where, and why.

    tinykube trace deployment/web-app     the trace of the Deployment's last traced change
    tinykube trace pod/web-app-...-x9vnh  that pod's steps: their causes and consequences
    tinykube trace service/web-app-service
    tinykube trace --last                 the latest trace the API server holds
    tinykube trace --id 4bf92f35...       one trace by id
    tinykube trace --list                 the traces held, latest first
    ... -o json                           every span, attributes and all

Where it comes from: each changing command starts a trace (cli/traceroot.py),
its writes carry the trace context, the API server stores it on each object
it writes (`tinykube.io/trace-context`), and each component that acts on
the object records a span and passes the context on with its own writes
(apimachinery/tracing.py). The spans meet in the API server's span store for
an hour (apiserver/traces.py); this command reads them with `Traces.Get` --
by object, the trace id in the object's annotation -- and prints the tree
with its critical path (cli/tracetree.py).

Reading traces takes `get` on the non-resource path /traces: system:masters,
or a binding to the ClusterRole system:tinykube:trace-reader.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from apimachinery import scheme
from cli import context, tracetree
from cli.context import CommandError, Options, effective, namespace_option

if TYPE_CHECKING:
    from apimachinery.client import Client
    from protos import trace_pb2

USAGE = "give TYPE/NAME (deployment/web-app, pod/NAME, service/NAME), --last, --id or --list"


def parse_target(target: str) -> tuple[str, str]:
    """`deployment/web-app` -> ("deployments", "web-app"), the kind checked by the scheme."""
    kind, sep, name = target.partition("/")
    if not sep or not kind or not name:
        raise CommandError(f"expected TYPE/NAME (for example deployment/web-app), got {target!r}")
    try:
        info = scheme.for_resource(kind)
    except Exception as exc:
        raise CommandError(str(exc)) from None
    return info.resource, name


@click.command("trace")
@click.argument("target", required=False)
@click.option("--last", is_flag=True, help="The latest trace the API server holds.")
@click.option("--id", "trace_id", default="", help="A trace by its id (32 hex digits).")
@click.option("--list", "list_", is_flag=True, help="List the traces held, latest first.")
@click.option(
    "-o", "--output", type=click.Choice(["json"]), default=None, help="Output format: json."
)
@click.option(
    "--all", "whole", is_flag=True, help="For a pod: the whole trace, not only its steps."
)
@click.option("--no-details", is_flag=True, help="Omit placement, kernel commands and rule lines.")
@namespace_option
@click.pass_obj
def trace(
    opts: Options,
    target: str | None,
    last: bool,
    trace_id: str,
    list_: bool,
    output: str | None,
    whole: bool,
    no_details: bool,
    namespace: str | None,
) -> None:
    """Show the causal timeline of a change: each step, its component and node, and why."""
    opts = effective(opts, namespace)
    chosen = sum(bool(x) for x in (target, last, trace_id, list_))
    if chosen != 1:
        raise click.UsageError(USAGE)

    async def verb(client: Client) -> int:
        if list_:
            _print_list(await client.list_traces(), output)
            return 0
        focus = ""
        if target:
            resource, name = parse_target(target)
            info = scheme.for_resource(resource)
            ns = opts.namespace if info.namespaced else ""
            got = await client.get_trace(resource=resource, name=name, namespace=ns)
            if resource == "pods" and not whole:
                focus = f"pods/{ns}/{name}"
        else:
            got = await client.get_trace(trace_id=trace_id, last=last)
        if focus:
            kept = tracetree.focus(list(got.spans), focus)
            del got.spans[:]
            got.spans.extend(kept)
        if output == "json":
            click.echo(json.dumps(tracetree.to_json(got), indent=2))
        else:
            click.echo(tracetree.render(got, details=not no_details), nl=False)
        return 0

    context.exit_with(context.run(opts, verb))


def _print_list(traces: list[trace_pb2.TraceSummary], output: str | None) -> None:
    if output == "json":
        rows = [
            {
                "traceId": t.trace_id,
                "root": t.root_name,
                "why": t.root_why,
                "startTime": tracetree.when(t.start_time_unix_nano),
                "durationSeconds": (t.end_time_unix_nano - t.start_time_unix_nano) / 1e9,
                "spans": t.span_count,
            }
            for t in traces
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'TRACE ID':<32}  {'STARTED':<24}  {'DURATION':>8}  {'STEPS':>5}  ROOT")
    for t in traces:
        took = (t.end_time_unix_nano - t.start_time_unix_nano) / 1e9
        started = tracetree.when(t.start_time_unix_nano)
        root = f"{t.root_name}: {t.root_why}" if t.root_why else t.root_name
        click.echo(f"{t.trace_id:<32}  {started:<24}  {took:>7.2f}s  {t.span_count:>5}  {root}")
