"""Where a change's trace begins: the root span of each of the CLI's changing verbs.

kubectl sends no trace context; tinykube's CLI starts a trace for every
command that changes the cluster, so that `tinykube trace` can show what
that command set off:

    tinykube apply -f examples/web-app.yaml
      root span "apply" (component tinykube, why: the command line)
        every write the command makes carries `traceparent: 00-<trace>-<root span>-01`
        -> the API server stores it on the Deployment and the Service
        -> the controllers, the scheduler, the kubelets and the proxies continue it

Which verbs: those that write (`MUTATING`); reads (`get`, `describe`,
`logs`, `rollout status`) start nothing. The root ends when the command
does, and is exported to the API server the command talked to
(apimachinery/tracing.py) before the process exits -- one more call, made
only by changing commands. A user who may not write spans (`create` on
/traces) loses the root span only: the components' spans still arrive, and
`tinykube trace` shows them under a missing root.

`cli/context.py run` calls `root_span` around every verb and `finish` after
its event loop has ended (the export is a blocking call).
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from apimachinery.tracing import HasTarget

# First word of the command path, or (first, second) for groups whose other verbs only read.
MUTATING: frozenset[str | tuple[str, str]] = frozenset(
    {
        *("annotate", "apply", "autoscale", "cordon", "create", "delete", "drain", "edit"),
        *("expose", "label", "patch", "replace", "run", "scale", "set", "taint", "uncordon"),
        ("rollout", "pause"),
        ("rollout", "restart"),
        ("rollout", "resume"),
        ("rollout", "undo"),
    }
)


def command_words() -> list[str]:
    """The verb as typed: `set image` for `tinykube set image deployment/web ...`."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return []
    return ctx.command_path.split()[1:]


def mutating(words: list[str]) -> bool:
    if not words:
        return False
    return words[0] in MUTATING or tuple(words[:2]) in MUTATING


@contextmanager
def root_span(client: HasTarget) -> Iterator[None]:
    """A root span around a changing command (nothing for one that only reads).

    The OpenTelemetry SDK is imported here, not at the top: `get` does not pay for it."""
    words = command_words()
    if not mutating(words):
        yield
        return
    from apimachinery import tracing

    if not tracing.configure(client, "tinykube"):
        yield
        return
    typed = os.path.basename(sys.argv[0]).startswith("tinykube")  # else: driven from Python
    why = "tinykube " + (shlex.join(sys.argv[1:]) if typed else " ".join(words))
    with tracing.root(" ".join(words), component="tinykube", why=why):
        yield


def finish() -> None:
    """Export the root span (if any) before the process ends."""
    tracing = sys.modules.get("apimachinery.tracing")
    if tracing is not None:
        tracing.flush()
