"""The in-flight limit: a busy API server refuses at once what it cannot serve at once.

kube-apiserver's `--max-requests-inflight` (default 400) and
`--max-mutating-requests-inflight` (default 200) bound how many requests it
serves at the same time, in two pools: read-only requests (get, list) and
mutating ones (create, update, patch, delete, and their subresources:
status, binding). A request that finds its pool full is not queued: it is
answered at once with 429 TooManyRequests, "Too many requests, please try
again later.", and `Retry-After: 1`; client-go (and apimachinery/client.py)
waits that second and tries again. Queueing instead is what turns overload
into latency: at 1000 writes/s against a store that commits 800, every write
waits for all those before it, and the wait grows for as long as the
overload lasts. With the limit, an accepted write waits for at most the
limit's worth of writes ahead of it; the rest is the client's to retry.

What is not counted, as in Kubernetes:

* long-running requests -- watch (and proxy), and the subresources log,
  exec, attach, portforward, proxy: they hold a connection for minutes by
  design, and a hundred watches must not lock out every write;
* a limit of 0: that pool has no limit;
* members of `system:masters`, when the pool is full: "a super-admin should
  always get an answer" (the loopback control plane, the admin's socket).
  They take a slot when one is free, and are served without one when none is.

So the check needs the caller's identity: it runs after authentication and
before authorization (auth/filters.py calls `admit` from the guard), which
is where Kubernetes' filter chain puts it.

How a slot is held. A request's handler runs inside `request_scope()` (the
gRPC servicer's `_call`, the HTTP API's `handle`): a context variable holds
the request's scope, and the first `admit` inside it decides and takes the
slot; later checks of the same request (the HTTP handlers call the gRPC
servicer's methods, which ask the guard again; apply asks twice) find the
scope decided and take nothing more. Leaving the scope -- an answer, an
error, a cancelled call -- gives the slot back. A check outside any scope
(the metrics, traces and maintenance services over gRPC) is not counted.

Worked example, `--max-mutating-requests-inflight 2`: writes A and B are
in the store, C arrives and finds 2 in flight: 429 at once, and C's client
sleeps 1 s. A commits and leaves its scope (1 in flight); D arrives, takes
the slot. The admin's write E arrives with 2 in flight: served, uncounted.
A watch arriving meanwhile is never counted. Refusals are counted per pool
in `dropped`, as kube-apiserver's `apiserver_dropped_requests_total
{request_kind="readOnly"|"mutating"}`.

The loop-lag trigger (`--max-loop-lag-ms`, default 100; 0 turns it off).
A pool counts only requests inside the handler; a request still queued in
the event loop holds no slot (looplag.py explains the lag and how it is
measured). So a second, earlier reason gives the same answer: while the
loop's smoothed lag is above the threshold, a mutating request is refused
at once with the same 429 and Retry-After, and counted in the same
`dropped["mutating"]`, whatever its pool holds. Never refused for lag: reads
(they add no store commit and no fan-out), long-running requests,
system:masters, and the cluster's own components -- the nodes, the
scheduler and the controller manager (`lag_exempt`), whose writes keep the
cluster alive (a kubelet's lease renewals). Not in Kubernetes,
whose API server runs handlers on many threads and has no one loop to
fall behind. The server starts the monitor with the listeners (`start`)
and stops it with them (`stop`); a limiter never started measures nothing
and refuses nothing for lag.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from apimachinery import errors
from apiserver.auth.authorizer import (
    CONTROLLER_MANAGER,
    SCHEDULER,
    SYSTEM_MASTERS,
    SYSTEM_NODES,
    UserInfo,
)
from apiserver.looplag import LoopLagMonitor

DEFAULT_MAX_REQUESTS_INFLIGHT = 400
DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT = 200
DEFAULT_MAX_LOOP_LAG_MS = 100
RETRY_AFTER_SECONDS = 1

READ_ONLY_VERBS = frozenset({"get", "list", "watch"})
LONG_RUNNING_VERBS = frozenset({"watch", "proxy"})
LONG_RUNNING_SUBRESOURCES = frozenset({"attach", "exec", "proxy", "log", "portforward"})

READ_ONLY = "readOnly"  # the request kinds of apiserver_dropped_requests_total
MUTATING = "mutating"


@dataclass(frozen=True)
class InflightLimits:
    """The two limits and the loop-lag threshold; 0 is no limit. Negative values are
    refused, naming the flag."""

    max_requests_inflight: int = DEFAULT_MAX_REQUESTS_INFLIGHT
    max_mutating_requests_inflight: int = DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT
    max_loop_lag_ms: int = DEFAULT_MAX_LOOP_LAG_MS

    def __post_init__(self) -> None:
        for flag, value in (
            ("--max-requests-inflight", self.max_requests_inflight),
            ("--max-mutating-requests-inflight", self.max_mutating_requests_inflight),
            ("--max-loop-lag-ms", self.max_loop_lag_ms),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{flag} must be a non-negative integer, not {value!r}")

    def limit(self, kind: str) -> int:
        if kind == MUTATING:
            return self.max_mutating_requests_inflight
        return self.max_requests_inflight


class _Scope:
    """One request: decided once, and the pool whose slot it holds, if any."""

    __slots__ = ("decided", "kind", "limiter")

    def __init__(self) -> None:
        self.decided = False
        self.limiter: InflightLimiter | None = None
        self.kind = ""


_CURRENT: ContextVar[_Scope | None] = ContextVar("inflight_request", default=None)


@contextlib.contextmanager
def request_scope() -> Iterator[None]:
    """The span of one request: a slot taken inside it is given back when it ends, however
    it ends. Nested scopes (an HTTP handler calling the gRPC servicer) are the outer one."""
    if _CURRENT.get() is not None:
        yield
        return
    scope = _Scope()
    token = _CURRENT.set(scope)
    try:
        yield
    finally:
        _CURRENT.reset(token)
        if scope.limiter is not None:
            scope.limiter.release(scope.kind)


def request_kind(verb: str, subresource: str = "") -> str | None:
    """readOnly or mutating; None for a long-running request (never counted)."""
    if verb in LONG_RUNNING_VERBS or subresource in LONG_RUNNING_SUBRESOURCES:
        return None
    return READ_ONLY if verb in READ_ONLY_VERBS else MUTATING


def lag_exempt(user: UserInfo) -> bool:
    """Is `user` served whatever the loop's lag? The cluster's own components are.

    Kubernetes' API Priority and Fairness puts their requests in priority levels
    of their own -- the nodes in `system`, the scheduler and the controller
    manager in `workload-high` -- so that a flood of user writes cannot starve
    the kubelets' lease renewals (a node whose renewals were refused for 40 s
    would be marked NotReady and its pods evicted). Refusing for lag is the
    user's level only: whoever is not system:masters, a node or one of those two.
    """
    return (
        SYSTEM_MASTERS in user.groups
        or SYSTEM_NODES in user.groups
        or user.name in (SCHEDULER, CONTROLLER_MANAGER)
    )


class InflightLimiter:
    """The two pools of one API server, shared by its gRPC and HTTP APIs (one event loop),
    and the loop-lag trigger; `loop_lag` is a seam for tests (else one is made when the
    threshold is not 0)."""

    def __init__(
        self, limits: InflightLimits | None = None, loop_lag: LoopLagMonitor | None = None
    ) -> None:
        self.limits = limits or InflightLimits()
        self.in_flight = {READ_ONLY: 0, MUTATING: 0}
        self.dropped = {READ_ONLY: 0, MUTATING: 0}  # apiserver_dropped_requests_total
        if loop_lag is None and self.limits.max_loop_lag_ms:
            loop_lag = LoopLagMonitor()
        self.loop_lag = loop_lag

    def start(self) -> None:
        """Start measuring the running loop's lag (the server's start)."""
        if self.loop_lag is not None and self.limits.max_loop_lag_ms:
            self.loop_lag.start()

    async def stop(self) -> None:
        if self.loop_lag is not None:
            await self.loop_lag.stop()

    def lagging(self) -> bool:
        """Is the loop's lag over `--max-loop-lag-ms`? Never when it is 0."""
        threshold = self.limits.max_loop_lag_ms
        if not threshold or self.loop_lag is None:
            return False
        return self.loop_lag.lag() * 1000 > threshold

    def admit(self, user: UserInfo, verb: str, subresource: str = "") -> None:
        """Take a slot for the current request, or raise TooManyRequests (module docstring)."""
        scope = _CURRENT.get()
        if scope is None or scope.decided:
            return
        scope.decided = True
        kind = request_kind(verb, subresource)
        if kind is None:
            return
        masters = SYSTEM_MASTERS in user.groups
        if kind == MUTATING and not lag_exempt(user) and self.lagging():
            self.dropped[kind] += 1  # the loop is behind: refused before it adds to it
            raise errors.TooManyRequests(retry_after_seconds=RETRY_AFTER_SECONDS)
        limit = self.limits.limit(kind)
        if limit == 0:
            return
        if self.in_flight[kind] >= limit:
            if masters:
                return  # a super-admin always gets an answer: served, without a slot
            self.dropped[kind] += 1
            raise errors.TooManyRequests(retry_after_seconds=RETRY_AFTER_SECONDS)
        self.in_flight[kind] += 1
        scope.limiter, scope.kind = self, kind

    def release(self, kind: str) -> None:
        self.in_flight[kind] -= 1
