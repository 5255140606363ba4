"""Forgetting UDP flows to endpoints that went away (kube-proxy's conntrack cleanup).

The ruleset only decides a connection's first packet; later packets follow
the NAT recorded in conntrack. For TCP that is what we want: an established
connection to a pod that left the Service either keeps working (the pod is
still there) or dies with the pod. For UDP there is no connection to die: a
client that keeps sending from one source port (a DNS resolver, a game, a
metrics agent) keeps matching the same conntrack entry, refreshed by every
packet, so it stays DNATed to the old endpoint forever -- and when that was
the last endpoint, it is never refused either.

So after each sync the Proxier compares the UDP endpoints it programmed
before with the new ones, and for each endpoint that left a service port it
deletes the flows that were sent to it through that port. Worked example:
10.96.0.10:53/UDP had endpoints 10.244.1.5:5353 and 10.244.2.7:5353 and now
has only 10.244.2.7:5353; the Proxier runs the equivalent of

    conntrack -D -p udp --orig-dst 10.96.0.10 --orig-port-dst 53 --reply-src 10.244.1.5

(and, with a NodePort 30053, `conntrack -D -p udp --orig-port-dst 30053
--reply-src 10.244.1.5`). The client's next datagram is a new flow and is
balanced again -- or rejected, when no endpoint is left.

Through pyroute2's conntrack netlink socket (NFCTSocket), in the current
network namespace or, for tests and benchmarks, a named one (entered by a
helper thread: setns changes only the calling thread's namespace).
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyroute2 import Conntrack
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple

from netplugin.commands import CommandLog
from netplugin.proxy.model import ServicePort

log = logging.getLogger(__name__)

CLONE_NEWNET = 0x40000000
UDP = 17


@dataclass(frozen=True)
class StaleFlow:
    """UDP flows to `dport` (on `daddr`; any address when "") answered by `endpoint`."""

    daddr: str
    dport: int
    endpoint: str

    def command(self) -> list[str]:
        argv = ["conntrack", "-D", "-p", "udp"]
        if self.daddr:
            argv += ["--orig-dst", self.daddr]
        return [*argv, "--orig-port-dst", str(self.dport), "--reply-src", self.endpoint]


UdpEndpoints = dict[tuple[str, int], tuple[int, frozenset[str]]]


def udp_endpoints(ports: Sequence[ServicePort]) -> UdpEndpoints:
    """(clusterIP, port) -> (nodePort, endpoint IPs) of every UDP service port."""
    return {
        (p.cluster_ip, p.port): (p.node_port, frozenset(e.ip for e in p.endpoints))
        for p in ports
        if p.protocol == "udp"
    }


def stale_flows(before: UdpEndpoints, after: UdpEndpoints) -> list[StaleFlow]:
    """The flows to forget: each endpoint that left a UDP service port (ClusterIP, NodePort)."""
    flows = []
    for (cluster_ip, port), (node_port, eps) in sorted(before.items()):
        _, now = after.get((cluster_ip, port), (0, frozenset()))
        for ep in sorted(eps - now):
            flows.append(StaleFlow(cluster_ip, port, ep))
            if node_port:
                flows.append(StaleFlow("", node_port, ep))
    return flows


def _in_netns(netns: str | None, fn: Callable[[], int]) -> int:
    if netns is None:
        return fn()
    result: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(Path("/run/netns") / netns, os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {netns}")
            finally:
                os.close(fd)
            result.append(fn())
        except BaseException as exc:  # handed to the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"conntrack-{netns}")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def _reply_source(entry: Any) -> str:
    return str(getattr(entry.tuple_reply, "saddr", "") or "")


def clear(flows: Sequence[StaleFlow], cmds: CommandLog, netns: str | None = None) -> int:
    """Delete the UDP conntrack entries of `flows`; how many were deleted."""
    todo = [f for f in flows if cmds.change(*f.command())]
    if not todo:
        return 0

    def work() -> int:
        deleted = 0
        with Conntrack() as ct:
            for flow in todo:
                wanted = NFCTAttrTuple(proto=UDP, dport=flow.dport)
                if flow.daddr:
                    wanted = NFCTAttrTuple(proto=UDP, daddr=flow.daddr, dport=flow.dport)
                for entry in list(ct.dump_entries(tuple_orig=wanted)):
                    if _reply_source(entry) != flow.endpoint:
                        continue
                    try:
                        ct.entry("del", tuple_orig=entry.tuple_orig)
                        deleted += 1
                    except NetlinkError:  # gone meanwhile (expired or deleted by someone else)
                        continue
        return deleted

    deleted = _in_netns(netns, work)
    log.info("stale UDP flows deleted", extra={"flows": len(todo), "entries": deleted})
    return deleted
