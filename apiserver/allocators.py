"""ClusterIP and NodePort allocation.

A Service gets a virtual IP from the service CIDR (10.96.0.0/12) and, when
its type is NodePort or LoadBalancer, a port from 30000-32767 for each of its
ports. A user may ask for a specific value; it must be in range and free.

Kubernetes keeps both allocations as bitmaps stored in etcd so that several
apiservers agree. tinykube's store (SQLite) has one writer, so the allocators
here are in-memory sets, rebuilt at start-up from the stored Services and
changed only under the Service strategy's lock (registry/services.py); the
stored Services remain the single source of truth, so a crash can never leak
or double-book an address. (With several apiservers over etcd this would need Kubernetes'
stored-bitmap scheme.)

Dynamic allocation picks at random and then scans forward, so the cost of an
allocation stays flat until the range is nearly full:

    range 30000-32767, taken {30000..30009}, random pick 30004
    -> 30004 taken, 30005 taken, ... 30010 free -> 30010
"""

from __future__ import annotations

import contextlib
import ipaddress
import random

from apimachinery import errors

SERVICE_CIDR = "10.96.0.0/12"
NODE_PORT_RANGE = (30000, 32767)


class RangeFull(Exception):
    pass


class AllocationError(errors.Invalid):
    """An Invalid error for one field; the registry names the object around it."""

    def __init__(self, cause: errors.FieldError) -> None:
        super().__init__(str(cause), [cause])
        self.cause = cause


def _field_invalid(path: str, value: object, detail: str) -> AllocationError:
    return AllocationError(errors.invalid(path, value, detail))


class _Allocator:
    """Numbers in [low, high]: allocate a given one, or any free one."""

    def __init__(self, low: int, high: int, reserved: set[int] | None = None) -> None:
        self.low = low
        self.high = high
        self.used: set[int] = set(reserved or ())
        self._rng = random.Random()

    def contains(self, n: int) -> bool:
        return self.low <= n <= self.high

    def is_free(self, n: int) -> bool:
        return self.contains(n) and n not in self.used

    def take(self, n: int) -> None:
        self.used.add(n)

    def allocate_any(self) -> int:
        size = self.high - self.low + 1
        start = self._rng.randrange(size)
        for step in range(size):
            n = self.low + (start + step) % size
            if n not in self.used:
                self.used.add(n)
                return n
        raise RangeFull

    def release(self, n: int) -> None:
        self.used.discard(n)


class ClusterIPAllocator:
    """Virtual IPs from the service CIDR. The network's first address (10.96.0.1)
    is reserved, as Kubernetes reserves it for the `kubernetes` Service: never
    handed out at random, given only to the Service that asks for it by name
    (apiserver/endpointreconciler.py creates that Service)."""

    def __init__(self, cidr: str = SERVICE_CIDR) -> None:
        self.network = ipaddress.ip_network(cidr)
        first = int(self.network.network_address)
        last = int(self.network.broadcast_address)
        self._reserved = first + 1
        self._reserved_taken = False
        self._alloc = _Allocator(first + 1, last - 1, {first + 1})

    def allocate(self, path: str, requested: str = "") -> str:
        """A free IP, or `requested` if it is valid and free; Invalid naming `path` otherwise."""
        if not requested:
            try:
                return str(ipaddress.ip_address(self._alloc.allocate_any()))
            except RangeFull:
                raise _field_invalid(
                    path, "", "failed to allocate a serviceIP: range is full"
                ) from None
        try:
            ip = ipaddress.ip_address(requested)
        except ValueError:
            raise _field_invalid(path, requested, "must be a valid IP address") from None
        n = int(ip)
        if not self._alloc.contains(n) or ip not in self.network:
            raise _field_invalid(
                path,
                requested,
                f"failed to allocate IP {requested}: the provided IP ({requested}) is not in the"
                f" valid range. The range of valid IPs is {self.network}",
            )
        if n == self._reserved and not self._reserved_taken:
            self._reserved_taken = True
            return requested
        if n in self._alloc.used:
            raise _field_invalid(
                path,
                requested,
                f"failed to allocate IP {requested}: provided IP is already allocated",
            )
        self._alloc.take(n)
        return requested

    def is_allocated(self, ip: str) -> bool:
        try:
            return int(ipaddress.ip_address(ip)) in self._alloc.used
        except ValueError:
            return False

    def mark(self, ip: str) -> None:
        """Record an IP found in the store at start-up."""
        with contextlib.suppress(ValueError):
            n = int(ipaddress.ip_address(ip))
            self._reserved_taken = self._reserved_taken or n == self._reserved
            self._alloc.take(n)

    def release(self, ip: str) -> None:
        with contextlib.suppress(ValueError):
            n = int(ipaddress.ip_address(ip))
            if n == self._reserved:  # back to reserved, not to the free pool
                self._reserved_taken = False
                return
            self._alloc.release(n)


class NodePortAllocator:
    """Ports from the NodePort range (30000-32767): a given one, or any free one."""

    def __init__(self, low: int = NODE_PORT_RANGE[0], high: int = NODE_PORT_RANGE[1]) -> None:
        self._alloc = _Allocator(low, high)

    def allocate(self, path: str, requested: int = 0) -> int:
        if not requested:
            try:
                return self._alloc.allocate_any()
            except RangeFull:
                raise _field_invalid(
                    path, 0, "failed to allocate a nodePort: range is full"
                ) from None
        if not self._alloc.contains(requested):
            raise _field_invalid(
                path,
                requested,
                f"provided port is not in the valid range. The range of valid ports is"
                f" {self._alloc.low}-{self._alloc.high}",
            )
        if requested in self._alloc.used:
            raise _field_invalid(path, requested, "provided port is already allocated")
        self._alloc.take(requested)
        return requested

    def is_allocated(self, port: int) -> bool:
        return port in self._alloc.used

    def mark(self, port: int) -> None:
        self._alloc.take(port)

    def release(self, port: int) -> None:
        self._alloc.release(port)
