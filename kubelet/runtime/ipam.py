"""A per-node pod IP allocator: the CNI host-local plugin's policy, in memory.

The node IPAM controller gives each Node a podCIDR (a /24 from 10.244.0.0/16);
inside it, some per-node allocator hands each pod sandbox one address. On a
real node that is the CNI plugin's IPAM (netplugin/cni, called by containerd);
the fake runtime has no CNI, so it uses this class directly.

Layout of a podCIDR, e.g. 10.244.1.0/24:

    10.244.1.0     network address, never handed out
    10.244.1.1     the gateway: the node's bridge (cni0) holds it
    10.244.1.2 ..  pods, handed out upward
    10.244.1.255   broadcast, never handed out

Allocation walks upward from just after the last address handed out and
wraps around (host-local's "round robin"), so an address freed by a deleted
pod is not given to the very next pod: a stale Endpoints entry or a client's
cached connection then points at nothing rather than at the wrong pod.
Worked example with a /29 (10.0.0.0/29: .2 .. .6 usable):

    allocate a -> .2   allocate b -> .3   release a   allocate c -> .4
    allocate d -> .5   allocate e -> .6   allocate f -> .2 (wrapped; .3 is b's)
    allocate g -> PodIPsExhausted

Allocations are keyed by an owner (the sandbox id), so releasing is
idempotent and allocating twice for one owner returns the same address.
"""

from __future__ import annotations

import ipaddress

from kubelet.errors import NetworkNotReady, PodIPsExhausted

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class PodIPAM:
    """Hands out the addresses of one podCIDR, round robin, one per owner (sandbox id)."""

    def __init__(self, cidr: str = "") -> None:
        self._network: _Network | None = None
        self._by_owner: dict[str, str] = {}
        self._taken: set[str] = set()
        self._last = 1  # offset of the last address handed out (.1 = the gateway)
        if cidr:
            self.set_cidr(cidr)

    @property
    def cidr(self) -> str:
        return str(self._network) if self._network is not None else ""

    @property
    def gateway(self) -> str:
        if self._network is None:
            return ""
        return str(self._network.network_address + 1)

    def set_cidr(self, cidr: str) -> None:
        """Use `cidr` from now on; addresses already handed out stay taken."""
        network = ipaddress.ip_network(cidr, strict=False)
        if network.num_addresses < 4:
            raise ValueError(f"pod CIDR {cidr} is too small")
        if network != self._network:
            self._network = network
            self._last = 1

    def allocate(self, owner: str) -> str:
        """An address for `owner` (the same one if it already has one)."""
        if owner in self._by_owner:
            return self._by_owner[owner]
        network = self._network
        if network is None:
            raise NetworkNotReady("network is not ready: the node has no podCIDR yet")
        first, last = 2, network.num_addresses - 2  # skip network, gateway and broadcast
        span = last - first + 1
        for step in range(1, span + 1):
            offset = first + (self._last - first + step) % span
            address = str(network.network_address + offset)
            if address not in self._taken:
                self._taken.add(address)
                self._by_owner[owner] = address
                self._last = offset
                return address
        raise PodIPsExhausted(f"no free address left in pod CIDR {network}")

    def release(self, owner: str) -> None:
        address = self._by_owner.pop(owner, None)
        if address is not None:
            self._taken.discard(address)

    def allocated(self) -> dict[str, str]:
        """owner -> address, a copy."""
        return dict(self._by_owner)
