"""Tracing on or off for a benchmark, the same way for every process it starts.

A benchmark's `--tracing on|off` must compare the two states a user can
really be in, not a half-way one:

    off   OTEL_SDK_DISABLED=true in the benchmark's own environment before it
          starts anything, so every process it starts inherits it: the API
          server (with the scheduler and controllers of a local cluster), the
          kubelets with their network agents, the benchmark's client.
          `tracing.configure` then refuses in each of them: no provider, no
          exporter thread, no span, no traceparent on any write.
    on    the variable removed, so every component configures its exporter;
          and each write the benchmark makes is a "command" the way the CLI
          makes one (cli/traceroot.py): a root span around it, so the write
          carries `traceparent`, the API server stores the
          `tinykube.io/trace-context` annotation, the components continue the
          trace with spans of their own, and every exporter (the benchmark's
          too) sends its batches to the API server's span store.

Without the root span "on" would measure almost nothing: a component only
continues a trace it is given (apimachinery/tracing.py), so untraced writes
cost the same with the SDK configured or not.

    apply_mode("off")                  # before the first process starts
    commands = Commands(client)        # after: configures the exporter if on
    with commands.command("create", "create configmap bench-1"):
        await client.create(cm)        # carries traceparent when on
    commands.finish()                  # export what is left

A run checks itself at the end (`evidence`, `verdict`): with tracing on, an
object it wrote carries the annotation and the span store holds traces --
for a pod, spans of the scheduler and the kubelet too; with tracing off,
neither. A run whose state is not what it claims is reported as broken, not
measured.

The overhead of tracing is then `overhead_pct(on, off)` of the same figure,
measured in the same invocation (bench/tracing_overhead.py).
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import MutableMapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from apimachinery import tracecontext, tracing
from apimachinery.client import Client
from apimachinery.tracing import HasTarget

ENV = "OTEL_SDK_DISABLED"
MODES = ("on", "off")


def add_option(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--tracing",
        choices=MODES,
        default="off",
        help="on: every write is a traced command, every process exports its spans; "
        "off: OTEL_SDK_DISABLED=true for every process (default off)",
    )


def apply_mode(mode: str, environ: MutableMapping[str, str] | None = None) -> None:
    """Set this process's environment (inherited by its children) for tracing `mode`."""
    env = os.environ if environ is None else environ
    if mode == "off":
        env[ENV] = "true"
    elif mode == "on":
        env.pop(ENV, None)
    else:
        raise ValueError(f'tracing mode must be "on" or "off", not {mode!r}')


class Commands:
    """The benchmark's writes as the CLI's commands: a root span each when tracing is on."""

    def __init__(self, client: HasTarget, service: str = "tinykube") -> None:
        self.on = tracing.configure(client, service)

    def command(self, verb: str, why: str) -> AbstractContextManager[object]:
        """A `with` block as one command: the root span itself when on (no wrapper of ours
        around it: this is on every write's path), nothing when off."""
        if not self.on:
            return nullcontext()
        return tracing.root(verb, component="tinykube", why=f"bench: {why}")

    def finish(self) -> None:
        """Export the spans not yet sent (the CLI's `finish`)."""
        if self.on:
            tracing.flush()


# ---- the comparison ---------------------------------------------------------------------


def overhead_pct(on: float, off: float) -> float:
    """How much larger `on` is than `off`, in % of `off` (negative: on was faster).

    Worked example: p99 off 0.500 s, on 0.520 s -> (0.520 - 0.500) / 0.500 = +4.0 %.
    """
    if off <= 0 or math.isnan(off) or math.isnan(on):
        return float("nan")
    return (on - off) / off * 100.0


def order(runs: int) -> list[str]:
    """The modes of 2 x `runs` runs, alternating and starting with off: off, on, off, on ...

    Alternating spreads a slow drift of the machine (another job starting, the
    page cache warming) over both modes instead of charging it to one."""
    if runs < 1:
        raise ValueError(f"runs must be at least 1, not {runs}")
    return [mode for _ in range(runs) for mode in ("off", "on")]


def pooled(runs: Sequence[Sequence[float]]) -> list[float]:
    """The samples of several runs as one list (percentiles over all of them)."""
    return [v for run in runs for v in run]


# ---- is it really on (or off)? ----------------------------------------------------------


async def evidence(
    client: Client, resource: str, name: str, namespace: str = "default"
) -> dict[str, Any]:
    """What the server shows of tracing: the object's annotation, the traces held, and the
    components (span `component`) and the number of spans of the object's trace."""
    obj = await client.get(resource, name, namespace)
    annotated = tracecontext.of_object(obj) is not None
    held = len(await client.list_traces(limit=10_000))
    components: list[str] = []
    spans = 0
    if annotated:
        trace = await client.get_trace(resource=resource, name=name, namespace=namespace)
        components = sorted({s.component for s in trace.spans})
        spans = len(trace.spans)
    return {"annotated": annotated, "traces": held, "components": components, "spans": spans}


def verdict(mode: str, seen: dict[str, Any], want: Sequence[str] = ()) -> str:
    """What is wrong with `seen` (from `evidence`) for tracing `mode`; "" when nothing is.

    `want`: components whose spans an "on" trace must hold (the scheduler, the kubelet)."""
    if mode == "off":
        if seen["annotated"] or seen["traces"]:
            return f"tracing off, yet the server holds a trace context or spans: {seen}"
        return ""
    problems = []
    if not seen["annotated"]:
        problems.append("the written object has no trace-context annotation")
    if not seen["traces"]:
        problems.append("the span store holds no trace")
    missing = sorted(set(want) - set(seen["components"]))
    if missing:
        problems.append(f"no spans from {', '.join(missing)}")
    return "tracing on, but " + "; ".join(problems) if problems else ""
