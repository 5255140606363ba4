"""Warnings: what admission tells a client without refusing its request.

Kubernetes returns them as HTTP `Warning: 299 - "..."` headers, and kubectl
prints each as `Warning: ...` on stderr; Pod Security's warn mode is their
best-known user:

    $ tinykube apply -f debug-pod.yaml
    Warning: would violate PodSecurity "restricted:latest": runAsNonRoot != true (...)
    pod/debug created

Admission runs deep inside the registry, far from the gRPC handler that
answers, so the warnings of one request are gathered in a context variable:
the handler opens a collection (`collecting()`), anything below it calls
`warn(text)`, and the handler sends what was gathered as trailing metadata
(`warning`, one entry per text), which the client prints. Outside a
collection, `warn` does nothing: a controller's own writes in-process have
nobody to tell.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

METADATA_KEY = "warning"

_current: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "tinykube_warnings", default=None
)


def warn(text: str) -> None:
    """Add a warning to the current request's answer (once; order kept)."""
    gathered = _current.get()
    if gathered is not None and text not in gathered:
        gathered.append(text)


@contextlib.contextmanager
def collecting() -> Iterator[list[str]]:
    """Gather the warnings raised inside the block into the list it yields."""
    gathered: list[str] = []
    token = _current.set(gathered)
    try:
        yield gathered
    finally:
        _current.reset(token)
