"""The per-node network agent, `tinykube netplugin`: flanneld's VXLAN backend + kube-proxy.

It runs in the node's network namespace (on a VM: the host's; in tests:
`nsenter --net=/run/netns/NODE`), one per node, and owns everything the
network plugin puts in that namespace except the pods' own veths.

Startup, in order (each step idempotent, so a restart changes nothing):

    1. the node IP and underlay interface from --node-ip / --iface (nodeip.py)
    2. sysctl net.ipv4.ip_forward=1
    3. a Node informer (and the proxy's Service/Endpoints informers) on one
       SharedInformerFactory; start it, wait for the caches
    4. wait until this node's Node has spec.podCIDR (the node IPAM controller
       gives it one when the kubelet -- or a test -- creates the Node)
    5. the VXLAN device tinykube.1 (reused if already right)
    6. publish the device's MAC and the node IP as annotations on the Node, for
       the other nodes' agents (retry on conflict: the kubelet writes it too)
    7. the bridge tk0 with the gateway; the CNI server on a unix socket, which
       runs the thin `tinykube-cni` calls in this process (netplugin/cni/server.py);
       the CNI conflist (MTU = underlay - 50, naming that socket); masquerade
       unless --no-masquerade (agent_node.py)
    8. run, until SIGTERM: the overlay's reconcile loop, the Proxier and
       (unless --no-cluster-dns) the node-local DNS server (netplugin/dns)

The overlay loop is level-triggered, as Kubernetes' controllers are: a Node
event (add, delete, an update that changes a node's podCIDR, VTEP MAC or node
IP -- not the kubelet's heartbeats) only enqueues the one key "overlay"; a worker
takes it, reads the whole Node cache and applies desired minus actual
(overlay/vxlan.py). Ten node events in a burst are one reconcile; a reconcile
never runs twice at once; a failure (netlink error, API error while
publishing) requeues with exponential backoff (5 ms, 10 ms, ... apimachinery/
workqueue.py); the worker is apimachinery/worker.py's WorkLoop, the same
loop the controllers run. Every `resync_period` seconds the key is enqueued
anyway, so drift nobody announced (an entry deleted by hand) is repaired.

Failure modes: the API server down at start -> the informer retries with
backoff and the agent waits; the API server lost later -> the cache keeps its
last state and the overlay stays as it is (existing routes keep working); the
agent killed -> the kernel keeps every entry, pods keep talking, and the next
agent finds nothing to change; the node's own podCIDR changed while running ->
logged as an error (the podCIDR is fixed for a node's life, as in Kubernetes);
the node's own address changed -> restart the agent with the new --node-ip: it
replaces the device, publishes the new MAC and IP, and every other agent
replaces its neighbour and FDB entries for this node.

`--dry-run` runs steps 1-7 and one proxy sync with a dry-run CommandLog: the
commands are printed, nothing is changed (not the kernel, not the Node).
`--cleanup` is agent_node.cleanup.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from dataclasses import dataclass
from typing import Any

from apimachinery import errors, tracing
from apimachinery.client import Client, retry_on_conflict
from apimachinery.factory import SharedInformerFactory
from apimachinery.informer import Informer
from apimachinery.worker import WorkLoop
from apimachinery.workqueue import RateLimitingQueue
from netplugin import agent_node, masquerade, nodeip
from netplugin.cni.server import CNIServer, socket_path
from netplugin.commands import CommandLog
from netplugin.constants import (
    ANNOTATION_NODE_IP,
    ANNOTATION_VTEP_MAC,
    CLUSTER_CIDR,
    CNI_DATA_DIR,
    VXLAN_OVERHEAD,
)
from netplugin.overlay import VXLANBackend, VxlanSpec, lease_from_node
from protos import core_pb2

log = logging.getLogger(__name__)

OVERLAY_KEY = "overlay"


class AgentError(RuntimeError):
    """The agent cannot start (bad flags, no podCIDR in time); the message says why."""


@dataclass
class AgentConfig:
    node_name: str
    node_ip: str = ""
    iface: str = ""
    cni_conf_dir: str = "/etc/cni/net.d"
    cni_data_dir: str = CNI_DATA_DIR
    masquerade: bool = True
    proxy: bool = True
    dns: bool = True  # NodeLocalDNS (netplugin/dns) on DNS_ADDRESS
    cluster_cidr: str = CLUSTER_CIDR
    resync_period: float = 30.0
    pod_cidr_timeout: float = 0.0  # 0 = wait forever (a dry run gives up after 10 s)
    cni_server: bool = True  # serve thin tinykube-cni calls (netplugin/cni/server.py)
    cni_socket: str = ""  # "" = server.socket_path(cni_data_dir), under /run/tinykube


class NetPluginAgent:
    """One node's agent; `run()` until cancelled, or `dry_run()` once."""

    def __init__(self, config: AgentConfig, client: Client, cmds: CommandLog) -> None:
        self.config = config
        self.client = client
        self.cmds = cmds
        self.factory = SharedInformerFactory(client)
        tracing.configure(client, "netplugin")  # the proxy's spans go to the API server
        self.nodes: Informer[core_pb2.Node] = self.factory.informer(core_pb2.Node)
        self.queue: RateLimitingQueue[str] = RateLimitingQueue(name="overlay")
        self.work = WorkLoop(self.queue, self._sync_key, on_error=self._reconcile_failed)
        self.address: nodeip.NodeAddress | None = None
        self.pod_cidr = ""
        self.backend: VXLANBackend | None = None
        self.proxier: Any = None
        self.dns: Any = None
        self.cni_server: CNIServer | None = None
        self._own_changed = asyncio.Event()

    # ---- event handlers: enqueue only --------------------------------------------------------

    def _on_add_or_delete(self, obj: core_pb2.Node) -> None:
        self.queue.add(OVERLAY_KEY)
        if obj.metadata.name == self.config.node_name:
            self._own_changed.set()

    def _on_update(self, old: core_pb2.Node, new: core_pb2.Node) -> None:
        """Enqueue only when what the overlay uses changed: every kubelet rewrites its Node's
        status every few seconds, and a reconcile per heartbeat per node would be waste."""
        if new.metadata.name == self.config.node_name:
            self._own_changed.set()
            if old.spec.pod_cidr != new.spec.pod_cidr or dict(old.metadata.annotations) != dict(
                new.metadata.annotations
            ):
                self.queue.add(OVERLAY_KEY)  # e.g. our annotations removed: publish again
        elif lease_from_node(old) != lease_from_node(new):
            self.queue.add(OVERLAY_KEY)

    # ---- startup ------------------------------------------------------------------------------

    def _setup_informers(self) -> None:
        self.nodes.add_handlers(
            on_add=self._on_add_or_delete,
            on_update=self._on_update,
            on_delete=self._on_add_or_delete,
        )
        if self.config.proxy:
            from netplugin.proxy import Proxier

            assert self.address is not None
            self.proxier = Proxier(
                self.factory,
                node_name=self.config.node_name,
                node_ips=[self.address.ip],
                cluster_cidr=self.config.cluster_cidr,
                cmds=self.cmds,
            )
        if self.config.dns:
            from netplugin.dns import NodeLocalDNS

            self.dns = NodeLocalDNS(self.factory, self.cmds)

    async def _wait_for_pod_cidr(self, timeout: float) -> core_pb2.Node:
        """This node's Node once it has spec.podCIDR (from the informer cache)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout > 0 else None
        logged = False
        while True:
            node = self.nodes.store.get(self.config.node_name)
            if node is not None and node.spec.pod_cidr:
                return node
            if not logged:
                log.info("waiting for the node's podCIDR", extra={"node": self.config.node_name})
                logged = True
            self._own_changed.clear()
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                state = "does not exist" if node is None else "has no podCIDR"
                raise AgentError(f"node {self.config.node_name} {state} (waited {timeout:g} s)")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._own_changed.wait(), remaining)

    async def _prepare(self, pod_cidr_timeout: float) -> None:
        """Steps 1-7 of the module docstring (the dry run stops after them)."""
        cfg = self.config
        self.address = await asyncio.to_thread(nodeip.resolve, cfg.node_ip, cfg.iface)
        log.info(
            "node address",
            extra={"ip": self.address.ip, "iface": self.address.iface, "mtu": self.address.mtu},
        )
        await asyncio.to_thread(agent_node.enable_ip_forward, self.cmds)
        self._setup_informers()
        self.factory.start()
        if not await self.factory.wait_for_sync(pod_cidr_timeout or None):
            raise AgentError(
                f"cannot list from the API server at {self.client.server}"
                f" (waited {pod_cidr_timeout:g} s)"
            )
        node = await self._wait_for_pod_cidr(pod_cidr_timeout)
        self.pod_cidr = str(ipaddress.IPv4Network(node.spec.pod_cidr))
        gateway = str(ipaddress.IPv4Network(self.pod_cidr).network_address)
        spec = VxlanSpec.for_node(self.address.ip, self.address.iface, self.address.mtu, gateway)
        self.backend = VXLANBackend(spec, self.cmds)
        await asyncio.to_thread(self.backend.ensure_device)
        await self._publish()
        mtu = self.address.mtu - VXLAN_OVERHEAD
        await asyncio.to_thread(agent_node.ensure_bridge, self.pod_cidr, mtu, self.cmds)
        agent_socket = await self._start_cni_server()
        await asyncio.to_thread(
            agent_node.ensure_conflist,
            self.pod_cidr,
            mtu,
            cfg.cni_conf_dir,
            self.cmds,
            cfg.cni_data_dir,
            agent_socket,
        )
        if cfg.masquerade:
            await asyncio.to_thread(masquerade.ensure, self.pod_cidr, self.cmds, cfg.cluster_cidr)

    async def _start_cni_server(self) -> str:
        """Serve thin CNI calls before the conflist names the socket; the socket ("" = none).

        Without the server (--dry-run shows the socket a real start would serve; a
        socket that cannot be made is logged) the thin client runs the full plugin,
        so pods get their network either way."""
        cfg = self.config
        if not cfg.cni_server:
            return ""
        path = cfg.cni_socket or socket_path(cfg.cni_data_dir)
        if self.cmds.dry_run:
            return path
        server = CNIServer(path)
        try:
            await server.start()
        except (OSError, ValueError) as e:
            log.warning("CNI calls run the full plugin", extra={"socket": path, "error": str(e)})
            return ""
        self.cni_server = server
        return path

    async def _publish(self) -> None:
        """Put the VTEP MAC and node IP on this node's Node, if they are not there yet."""
        assert self.backend is not None and self.address is not None
        want = {ANNOTATION_VTEP_MAC: self.backend.mac, ANNOTATION_NODE_IP: self.address.ip}
        cached = self.nodes.store.get(self.config.node_name)
        if cached is not None and all(
            cached.metadata.annotations.get(k) == v for k, v in want.items()
        ):
            return
        if self.cmds.dry_run or not self.backend.mac:
            log.info("would publish node annotations", extra=want)
            return

        async def once() -> None:
            node = await self.client.get(core_pb2.Node, self.config.node_name)
            if all(node.metadata.annotations.get(k) == v for k, v in want.items()):
                return
            for key, value in want.items():
                node.metadata.annotations[key] = value
            await self.client.update(node)
            log.info("published node annotations", extra=want)

        await retry_on_conflict(once)

    # ---- the reconcile loop -------------------------------------------------------------------

    async def sync(self) -> None:
        """One reconcile: the overlay from the Node cache, then re-publish if the MAC moved."""
        assert self.backend is not None
        own = self.nodes.store.get(self.config.node_name)
        if own is not None and own.spec.pod_cidr and own.spec.pod_cidr != self.pod_cidr:
            log.error(
                "the node's podCIDR changed; restart the agent",
                extra={"was": self.pod_cidr, "now": own.spec.pod_cidr},
            )
        nodes = self.nodes.store.list()
        await asyncio.to_thread(self.backend.reconcile, nodes, self.config.node_name, self.pod_cidr)
        if own is not None:
            await self._publish()

    async def _sync_key(self, key: str) -> None:
        await self.sync()  # one key, OVERLAY_KEY: every reconcile covers the whole overlay

    @staticmethod
    def _reconcile_failed(key: str, exc: Exception) -> None:
        """Called inside the `except` block, so log.exception carries the traceback."""
        if isinstance(exc, (errors.StatusError, OSError, RuntimeError, ValueError)):
            log.warning("overlay reconcile failed, will retry", extra={"error": str(exc)})
        else:  # a netlink error type, a bug: keep the agent alive, retry
            log.exception("overlay reconcile failed, will retry")

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.config.resync_period)
            self.queue.add(OVERLAY_KEY)

    async def run(self) -> None:
        """Set up, then reconcile the overlay and run the proxy until cancelled."""
        try:
            await self._prepare(self.config.pod_cidr_timeout)
            self.queue.add(OVERLAY_KEY)
            tasks = [
                asyncio.ensure_future(self.work.worker()),
                asyncio.ensure_future(self._resync()),
            ]
            if self.proxier is not None:
                tasks.append(asyncio.ensure_future(self.proxier.run()))
            if self.dns is not None:
                tasks.append(asyncio.ensure_future(self.dns.run()))
            log.info("agent running", extra={"node": self.config.node_name})
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # a task that ended raised: surface it
            finally:
                self.queue.shut_down()
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
        finally:
            if self.cni_server is not None:
                await self.cni_server.close()
            await self.factory.stop()

    async def dry_run(self) -> list[str]:
        """Every command a real start would run now; nothing is changed."""
        assert self.cmds.dry_run
        timeout = self.config.pod_cidr_timeout or 10.0
        try:
            await self._prepare(timeout)
            assert self.backend is not None
            await asyncio.to_thread(
                self.backend.reconcile,
                self.nodes.store.list(),
                self.config.node_name,
                self.pod_cidr,
            )
            if self.proxier is not None:
                self.proxier.sync_once()
            if self.dns is not None:
                await self.dns.run()  # a dry run only logs the link it would add
        finally:
            await self.factory.stop()
        return list(self.cmds.commands)
