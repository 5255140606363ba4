"""The Proxier: Services + Endpoints from informers, one nftables transaction per sync.

kube-proxy's nftables Proxier, cut to its mechanism. Informer events never
touch the kernel: each one only marks the state dirty. A loop then syncs:

    event(s) -> dirty -> wait until min_sync_interval after the last sync
             -> snapshot the caches (on the event loop; then, in a thread:)
             -> model.build(every cached Service, every cached Endpoints)
             -> rules.render(...)  -> the same resulting table as last time? done
             -> `nft -f -` (the whole table, one transaction)

So a burst -- `tinykube apply` of 1000 Services, a Deployment scaled from 2 to
50 -- is coalesced into as few transactions as min_sync_interval allows (one,
when the burst arrives faster than that), and the cost of a sync does not
depend on how many events led to it. Worked example with the default 0.1 s:

    t=0.00  Service 1 added    -> dirty; last sync long ago -> sync now (1 Service)
    t=0.01  Services 2..1000   -> dirty (the loop is busy or waiting)
    t=0.10  one sync: 1000 Services, one `nft -f -`
    t=0.30  nothing            -> no sync
    t=30.0  periodic resync    -> re-render, re-apply even if unchanged (repairs a
                                  table someone else flushed)

Full syncs only: every transaction carries the whole table. That keeps the
code small and the kernel state exactly the render of the cache; the price
is that a sync's cost grows with the number of Services (measured in
bench/network.py: 5000 Services with one endpoint each in 1.0-1.5 s on a busy
2-core machine; with two endpoints each, about 1.5 s).

Before the first sync the Proxier prepares the node (each change logged;
`cleanup` removes the route, the sysctls stay as they are harmless):

    ip route replace 10.96.0.0/12 dev tk0    # the node has no default route: without
                                             # this, its own connections to a ClusterIP
                                             # fail before the nat output hook runs
    sysctl -w net.bridge.bridge-nf-call-iptables=1   # see rules.py: same-bridge replies
    sysctl -w net.ipv4.conf.all.send_redirects=0     # and net.ipv4.conf.tk0.send_redirects=0

Why no redirects: a pod's packet to a ClusterIP comes in on tk0 and, routed
by the service route, goes out on tk0 again, so the kernel answers it with an
ICMP redirect ("that host is on your link"). That is wrong for a virtual
address, and worse, the redirect spends the per-host ICMP rate-limit token:
the "port unreachable" that rejects a UDP packet to a Service without
endpoints right after it was then never sent, and the client hung instead of
being refused (measured; nstat shows IcmpOutRedirects and IcmpOutRateLimitHost).

After a sync, UDP flows to endpoints that left their Service are deleted
from conntrack (netplugin/proxy/conntrack.py explains why).

Tracing: a sync that changes the table after a traced Service or Endpoints
change is a span (SyncProxyRules) under the newest such change, with the
rule lines added and removed -- the last step of an `apply`'s trace on each node.

Failure modes: a failed `nft -f` changes nothing (atomic); the Proxier
forgets what it believed the table held, re-reads it and tries once more at
once (a table deleted behind its back is rebuilt in the same sync); if that
fails too, it retries with backoff (0.5 s doubling to 30 s) while staying
dirty. The API server going away only stops events: the table keeps serving
the last state.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Sequence
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

# The modules themselves, not the package: proxy/__init__ imports this one.
import netplugin.proxy.conntrack as conntrack
import netplugin.proxy.model as model
import netplugin.proxy.rules as rules
from apimachinery import scheme, tracecontext, tracing
from apimachinery.cache import meta_namespace_key
from apimachinery.factory import SharedInformerFactory
from apimachinery.informer import wait_for_cache_sync
from netplugin.commands import CommandLog
from netplugin.constants import BRIDGE, NFT_TABLE, SERVICE_CIDR
from netplugin.proxy.nft import Nft, NftError

log = logging.getLogger(__name__)

BRIDGE_NF_SYSCTL = "net.bridge.bridge-nf-call-iptables"


def _check_cidr(value: str, what: str) -> str:
    try:
        return str(ipaddress.IPv4Network(value))
    except ValueError:
        raise ValueError(f"{what}: {value!r} is not an IPv4 network (like 10.244.0.0/16)") from None


class Proxier:
    """Programs this node's nftables table from the cluster's Services and Endpoints."""

    def __init__(
        self,
        factory: SharedInformerFactory,
        *,
        node_name: str,
        node_ips: Sequence[str],
        cluster_cidr: str,
        cmds: CommandLog,
        min_sync_interval: float = 0.1,
        sync_period: float = 30.0,
        service_cidr: str = SERVICE_CIDR,
        bridge: str = BRIDGE,
        table: str = NFT_TABLE,
        netns: str | None = None,
    ) -> None:
        for ip in node_ips:
            try:
                ipaddress.IPv4Address(ip)
            except ValueError:
                raise ValueError(f"node_ips: {ip!r} is not an IPv4 address") from None
        self.node_name = node_name
        self.node_ips = list(node_ips)
        self.cluster_cidr = _check_cidr(cluster_cidr, "cluster_cidr") if cluster_cidr else ""
        self.service_cidr = _check_cidr(service_cidr, "service_cidr")
        self.bridge = bridge
        self.table = table
        self.cmds = cmds
        self.min_sync_interval = min_sync_interval
        self.sync_period = sync_period
        self.nft = Nft(cmds, netns)
        self.services = factory.informer("services")
        self.endpoints = factory.informer("endpoints")
        for informer in (self.services, self.endpoints):
            informer.add_handlers(
                on_add=self._on_change,
                on_update=lambda _old, new: self._on_change(new),
                on_delete=self._on_change,
            )
        self._dirty = asyncio.Event()
        self._prepared = False
        self._redirects_off = False
        self._masquerade_bridged = False
        self._chains: set[str] | None = None  # what the table holds; None: read it first
        self._sets: set[str] = set()
        self.last_script = ""  # the last script handed to nft (tests and debugging read it)
        self._fingerprint = ""  # what the table holds since the last sync (Ruleset.fingerprint)
        self._udp: conntrack.UdpEndpoints = {}  # UDP endpoints as of the last sync
        self.transactions = 0  # `nft -f -` runs so far (tests count them)
        self.last_sync_seconds = 0.0
        self.last_error = ""  # why the last sync failed ("" after a good one)
        self._causes: dict[str, Any] = {}  # traced objects changed since the last sync

    # ---- events --------------------------------------------------------------------------

    def _on_change(self, obj: Any) -> None:
        if obj is not None and tracecontext.of_object(obj) is not None:
            self._causes[f"{obj.DESCRIPTOR.name}/{meta_namespace_key(obj)}"] = obj  # newest of each
        self._dirty.set()

    def _traced(self, causes: dict[str, Any], before: str, started_ns: int) -> None:
        """A sync that changed the table, as a span under the newest traced change behind it
        (the rest linked), with the rule lines it added and removed."""
        if not causes or self.last_script == before:
            return
        old, new = set(before.splitlines()), set(self.last_script.splitlines())
        added = sorted(line.strip() for line in new - old if line.strip())
        removed = sorted(line.strip() for line in old - new if line.strip())
        ordered = sorted(
            causes.values(), key=lambda o: int(o.metadata.resource_version or 0), reverse=True
        )
        tracing.record(
            "SyncProxyRules",
            parent=ordered[0],
            links=ordered[1:],
            start_ns=started_ns,
            end_ns=time.time_ns(),
            component="proxy",
            node=self.node_name,
            obj=f"{scheme.for_message(ordered[0]).resource}/{meta_namespace_key(ordered[0])}",
            why=f"{', '.join(sorted(causes))} changed: +{len(added)} -{len(removed)} rule "
            f"lines in one `nft -f -` transaction on table {self.table}",
            attributes={"tinykube.nft.added": added, "tinykube.nft.removed": removed},
        )

    # ---- one sync ------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Bridge netfilter, once (and again after a failure)."""
        value = self.nft.read_sysctl(BRIDGE_NF_SYSCTL)
        if value is None:
            # No br_netfilter: fall back to masquerading same-bridge service traffic.
            self._masquerade_bridged = True
            log.warning(
                "br_netfilter unavailable, masquerading same-node service traffic",
                extra={"node": self.node_name, "sysctl": BRIDGE_NF_SYSCTL},
            )
        else:
            self.nft.set_sysctl(BRIDGE_NF_SYSCTL, "1")
        self._prepared = True

    def _ensure_route(self) -> None:
        if not self.nft.ensure_route(self.service_cidr, self.bridge):
            log.warning(
                "bridge missing, no route to the service CIDR yet",
                extra={"node": self.node_name, "bridge": self.bridge, "cidr": self.service_cidr},
            )
            return
        if not self._redirects_off:
            # Service traffic enters and leaves by tk0; see the module docstring.
            for key in (
                "net.ipv4.conf.all.send_redirects",
                f"net.ipv4.conf.{self.bridge}.send_redirects",
            ):
                self.nft.set_sysctl(key, "0")
            self._redirects_off = True

    def snapshot(self) -> tuple[list[Any], list[Any]]:
        """The cached Services and Endpoints now (on the event loop's thread: a cheap copy).

        The cached objects themselves are never changed in place (an informer
        replaces them), so the lists can be read from another thread.
        """
        return self.services.store.list(), self.endpoints.store.list()

    @staticmethod
    def build_model(services: list[Any], endpoints: list[Any]) -> list[model.ServicePort]:
        return model.build(services, {meta_namespace_key(ep): ep for ep in endpoints})

    def sync_snapshot(self, snapshot: tuple[list[Any], list[Any]], *, force: bool) -> str:
        """Model, render and apply a snapshot (5000 Services: ~0.5 s of model, off the loop)."""
        return self.apply(self.build_model(*snapshot), force=force)

    def render(self, ports: Sequence[model.ServicePort]) -> rules.Ruleset:
        if self._chains is None:
            found = self.nft.list_table(self.table)
            self._chains, self._sets = found if found is not None else (set(), set())
        config = rules.RulesConfig(
            table=self.table,
            cluster_cidr=self.cluster_cidr,
            bridge=self.bridge,
            masquerade_bridged=self._masquerade_bridged,
        )
        return rules.render(ports, config, existing_chains=self._chains, existing_sets=self._sets)

    def apply(self, ports: Sequence[model.ServicePort], *, force: bool = False) -> str:
        """Render `ports` and apply them in one transaction (skipped when unchanged)."""
        started = time.perf_counter()
        if not self._prepared:
            self._prepare()
        self._ensure_route()
        ruleset = self.render(ports)
        if ruleset.fingerprint == self._fingerprint and not force:
            return ruleset.script
        try:
            applied = self.nft.apply(ruleset.script)
        except NftError as exc:
            # Most often the table is not what we believed (someone flushed or deleted
            # it, so a `delete chain` names a chain that is gone): read it and try once more.
            log.warning("proxy transaction failed, rereading the table", extra={"error": str(exc)})
            self._chains = None
            self._fingerprint = ""
            ruleset = self.render(ports)
            applied = self.nft.apply(ruleset.script)  # a second failure goes to the caller
        self._fingerprint = ruleset.fingerprint
        if applied:
            self.transactions += 1
            self._chains, self._sets = set(ruleset.chains), set(ruleset.sets)
        udp = conntrack.udp_endpoints(ports)
        flows = conntrack.stale_flows(self._udp, udp)
        self._udp = udp
        if flows:
            try:
                conntrack.clear(flows, self.cmds, self.nft.netns)
            except (OSError, NetlinkError) as exc:  # rules are right; old flows expire later
                log.warning(
                    "stale UDP flows not deleted", extra={"node": self.node_name, "error": str(exc)}
                )
        self.last_script = ruleset.script
        self.last_sync_seconds = time.perf_counter() - started
        log.info(
            "proxy rules synced",
            extra={
                "node": self.node_name,
                "service_ports": len(ports),
                "lines": ruleset.lines,
                "nft_seconds": round(self.nft.last_apply_seconds, 4),
                "seconds": round(self.last_sync_seconds, 4),
            },
        )
        return ruleset.script

    def sync_once(self) -> str:
        """One sync now, from the informers' caches; returns the ruleset script."""
        return self.sync_snapshot(self.snapshot(), force=True)

    # ---- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Wait for the caches, then sync whenever dirty (rate limited) until cancelled."""
        await wait_for_cache_sync(self.services, self.endpoints)
        log.info("proxier started", extra={"node": self.node_name, "node_ips": self.node_ips})
        self._dirty.set()
        last = float("-inf")
        failures = 0
        while True:
            force = False
            try:
                await asyncio.wait_for(self._dirty.wait(), self.sync_period)
            except asyncio.TimeoutError:
                force = True  # periodic resync: re-apply even if nothing changed
            delay = last + self.min_sync_interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self._dirty.clear()
            last = time.monotonic()
            snapshot = self.snapshot()
            causes, self._causes, before, started_ns = (
                self._causes,
                {},
                self.last_script,
                time.time_ns(),
            )
            try:
                await asyncio.to_thread(self.sync_snapshot, snapshot, force=force or failures > 0)
                failures, self.last_error = 0, ""
                self._traced(causes, before, started_ns)
            except Exception as exc:  # every failure is retried the same way
                self._causes = {**causes, **self._causes}  # still to be traced once it works
                failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                backoff = min(0.5 * 2 ** (failures - 1), 30.0)
                log.error(
                    "proxy sync failed",
                    extra={"node": self.node_name, "error": str(exc), "retry_in": backoff},
                )
                self._prepared = False
                self._dirty.set()
                await asyncio.sleep(backoff)


def cleanup(
    cmds: CommandLog,
    *,
    netns: str | None = None,
    table: str = NFT_TABLE,
    service_cidr: str = SERVICE_CIDR,
) -> None:
    """Remove the proxy's table and its route to the service CIDR; idempotent.

    nft -f - <<'EOF'
    add table ip tinykube
    delete table ip tinykube
    EOF
    ip route del 10.96.0.0/12
    """
    nft = Nft(cmds, netns)
    if nft.has_table(table) or cmds.dry_run:
        nft.apply(rules.delete_script(table))
    with contextlib.suppress(OSError):
        nft.delete_route(service_cidr)
