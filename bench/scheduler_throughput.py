"""Scheduler throughput: `python bench/scheduler_throughput.py [--case all] [--quick]`.

What is measured, for each cluster size N and each case (a fresh API server
each time, on loopback, over SQLite in a temporary directory, with durable
commits; controllers and the API server's own scheduler off):

1. N Ready Node objects are created (capacity cpu 32, memory 256Gi, pods
   110; labels `kubernetes.io/hostname` and `topology.kubernetes.io/zone`,
   three zones moon-1..moon-3 as scheduler_perf labels them; no kubelets:
   nothing runs the pods), then M pending pods of the case:

   basic           each requests 100m CPU and 500Mi memory (scheduler_perf's
                   `SchedulingBasic` pods)
   anti-affinity   the same, labelled color=green, with a required
                   podAntiAffinity term against color=green on
                   kubernetes.io/hostname: at most one per node
                   (`SchedulingPodAntiAffinity`)
   spread          the same, labelled color=blue, with a topologySpreadConstraint
                   maxSkew 1 on the zone key, DoNotSchedule, selecting
                   color=blue (`TopologySpreading`)

2. The real Scheduler starts (default profile, adaptive
   percentageOfNodesToScore, placement records, Events). The clock starts
   when its informers have synced and stops when a watch on pods has seen
   all M pods with a nodeName: pods/s scheduled = M / elapsed.
3. The Scheduler is stopped; M fresh pending pods are created and a no-op
   binder binds them, round-robin over the nodes, with no filtering or
   scoring, as many Bindings in flight as the scheduler allows itself. Its
   clock starts with its own list of pending pods and stops the same way.

The no-op binder is the ceiling this API server allows: every Binding is a
gRPC call, a compare-and-swap in SQLite, an fsync and a watch event in both
runs. The gap between the two rates is what scheduling decisions cost.

The table also shows the mean time of one scheduling decision (filter,
score, pick, record; not the Binding) and its inverse: the rate the
scheduler could reach if writes were free.

`--apiserver process` runs the API server as its own `tinykube apiserver`
process (scheduler and controllers off; the bench is the local admin on its
unix socket), as a cluster runs kube-scheduler beside kube-apiserver: the
scheduler then has a core to itself. The default, `inline`, keeps both in
this process, on one event loop.

Every Binding also costs a second write: the scheduler's `Scheduled` Event
(as in Kubernetes). `--no-events` turns those off, to show their share.

`--profile` runs the scheduler phase of the largest N under cProfile and
prints the functions that take the most time (with `--apiserver inline`
that includes the API server's Python work).

Targets (docs/performance.md): >= 1500 pods/s for basic at 5000 nodes, >= 300
pods/s for anti-affinity and spread. The last line is a one-line summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import logging
import os
import pstats
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apimachinery.client import Client
from apimachinery.factory import SharedInformerFactory
from apiserver.server import APIServer
from apiserver.storage import open_storage
from localcluster.processes import ApiServerProcess
from protos import core_pb2
from scheduler.scheduler import Scheduler

TARGETS = {"basic": 1500.0, "anti-affinity": 300.0, "spread": 300.0}
CASES = tuple(TARGETS)
NAMESPACE = "default"
ZONE_KEY = "topology.kubernetes.io/zone"
HOSTNAME_KEY = "kubernetes.io/hostname"
ZONES = ("moon-1", "moon-2", "moon-3")


def make_node(i: int) -> core_pb2.Node:
    n = core_pb2.Node(api_version="v1", kind="Node")
    n.metadata.name = name = f"node-{i}"
    n.metadata.labels[HOSTNAME_KEY] = name
    n.metadata.labels[ZONE_KEY] = ZONES[i % len(ZONES)]
    for field in (n.status.capacity, n.status.allocatable):
        field.update({"cpu": "32", "memory": "256Gi", "pods": "110"})
    n.status.conditions.add(type="Ready", status="True")
    return n


def make_pod(name: str, case: str = "basic") -> core_pb2.Pod:
    p = core_pb2.Pod(api_version="v1", kind="Pod")
    p.metadata.name = name
    p.metadata.namespace = NAMESPACE
    c = p.spec.containers.add(name="pause", image="registry.k8s.io/pause:3.9")
    c.resources.requests.update({"cpu": "100m", "memory": "500Mi"})
    if case == "anti-affinity":
        p.metadata.labels["color"] = "green"
        anti = p.spec.affinity.pod_anti_affinity
        term = anti.required_during_scheduling_ignored_during_execution.add()
        term.label_selector.match_labels["color"] = "green"
        term.topology_key = HOSTNAME_KEY
    elif case == "spread":
        p.metadata.labels["color"] = "blue"
        c2 = p.spec.topology_spread_constraints.add(
            max_skew=1, topology_key=ZONE_KEY, when_unsatisfiable="DoNotSchedule"
        )
        c2.label_selector.match_labels["color"] = "blue"
    return p


async def create_all(client: Client, objs: list[object], concurrency: int = 64) -> None:
    it = iter(objs)

    async def worker() -> None:
        for obj in it:
            await client.create(obj)  # type: ignore[type-var]

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def wait_bound(client: Client, prefix: str, count: int, rv: str) -> float:
    """Watch pods from `rv` until `count` pods named prefix* have a node; the time then."""
    bound: set[str] = set()
    async for ev in client.watch("pods", NAMESPACE, resource_version=rv):
        pod = ev.object
        if pod.spec.node_name and pod.metadata.name.startswith(prefix):
            bound.add(pod.metadata.name)
            if len(bound) >= count:
                break
    return time.perf_counter()


async def run_scheduler_phase(
    client: Client,
    case: str,
    pods: int,
    in_flight: int,
    profile: cProfile.Profile | None,
    events: bool,
) -> tuple[float, float]:
    """(pods/s bound end to end, mean milliseconds per scheduling decision)."""
    await create_all(client, [make_pod(f"sched-{i}", case) for i in range(pods)])
    _, rv = await client.list("namespaces")
    factory = SharedInformerFactory(client)
    scheduler = Scheduler(client, factory, seed=1, max_binds_in_flight=in_flight, events=events)
    watcher = asyncio.ensure_future(wait_bound(client, "sched-", pods, rv))
    task = asyncio.ensure_future(scheduler.run())
    await factory.wait_for_sync()
    started = time.perf_counter()
    if profile is not None:
        profile.enable()
    try:
        finished = await watcher
    finally:
        if profile is not None:
            profile.disable()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await factory.stop()
    cycle_ms = 1000 * scheduler.cycle_seconds / max(scheduler.cycles, 1)
    return pods / (finished - started), cycle_ms


async def run_noop_phase(client: Client, nodes: int, pods: int, in_flight: int) -> float:
    await create_all(client, [make_pod(f"noop-{i}") for i in range(pods)])
    _, rv = await client.list("namespaces")
    watcher = asyncio.ensure_future(wait_bound(client, "noop-", pods, rv))
    await asyncio.sleep(0)
    started = time.perf_counter()
    pending, _ = await client.list("pods", NAMESPACE, field_selector="spec.nodeName=")
    names = [p.metadata.name for p in pending if p.metadata.name.startswith("noop-")]
    slots = asyncio.Semaphore(in_flight)

    async def bind(i: int, name: str) -> None:
        try:
            await client.bind(name, f"node-{i % nodes}", NAMESPACE)
        finally:
            slots.release()

    tasks = []
    for i, name in enumerate(names):
        await slots.acquire()
        tasks.append(asyncio.ensure_future(bind(i, name)))
    await asyncio.gather(*tasks)
    finished = await watcher
    return pods / (finished - started)


@contextlib.asynccontextmanager
async def api_server(mode: str, data: str) -> AsyncIterator[Client]:
    """A client of a fresh API server: in this process, or a `tinykube apiserver` child."""
    if mode == "process":
        srv = ApiServerProcess(
            Path(data) / "data", extra_args=("--no-scheduler", "--no-controllers")
        )
        srv.start()
        client = Client(srv.address, timeout=120)
        try:
            yield client
        finally:
            await client.close()
            srv.stop()
        return
    storage = await open_storage("sqlite", data)
    server = APIServer(storage, f"unix:{data}/api.sock")
    await server.start()
    client = Client(server.local_address, timeout=120)
    try:
        yield client
    finally:
        await client.close()
        await server.stop(grace=0)


async def measure(
    n: int, case: str, args: argparse.Namespace, profile: bool
) -> tuple[float, float, float, str]:
    with tempfile.TemporaryDirectory(prefix="tinykube-bench-") as data:
        prof = cProfile.Profile() if profile else None
        async with api_server(args.apiserver, data) as client:
            await create_all(client, [make_node(i) for i in range(n)])
            sched, cycle_ms = await run_scheduler_phase(
                client, case, args.pods, args.in_flight, prof, not args.no_events
            )
            noop = await run_noop_phase(client, n, args.pods, args.in_flight)
        report = ""
        if prof is not None:
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
            report = out.getvalue()
        return sched, noop, cycle_ms, report


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--nodes", default="100,1000,5000", help="comma-separated cluster sizes")
    ap.add_argument("--pods", type=int, default=2000, help="pending pods per run (M)")
    ap.add_argument("--case", choices=(*CASES, "all"), help="which pods (basic; with --quick: all)")
    ap.add_argument("--quick", action="store_true", help="5000 nodes, 1000 pods (every case)")
    ap.add_argument("--apiserver", default="inline", choices=("inline", "process"))
    ap.add_argument("--in-flight", type=int, default=256, help="Bindings outstanding at most")
    ap.add_argument("--profile", action="store_true", help="cProfile the largest run")
    ap.add_argument("--no-events", action="store_true", help="scheduler writes no Scheduled Events")
    args = ap.parse_args()
    if args.quick:
        args.nodes, args.pods = "5000", 1000
    args.case = args.case or ("all" if args.quick else "basic")
    logging.basicConfig(level=logging.ERROR)
    sizes = [int(s) for s in args.nodes.split(",") if s]
    cases = CASES if args.case == "all" else (args.case,)
    rows = []
    for case in cases:
        for n in sizes:
            sched, noop, cycle_ms, report = asyncio.run(
                measure(n, case, args, args.profile and n == max(sizes))
            )
            rows.append((case, n, sched, noop, cycle_ms, load()))
            print(
                f"{case} nodes={n} pods={args.pods}: scheduler {sched:.0f} pods/s, no-op binder "
                f"{noop:.0f}, {cycle_ms:.2f} ms per decision ({rows[-1][5]})",
                file=sys.stderr,
            )
            if report:
                print(f"profile: {case}, {n} nodes\n{report}")
    print(
        f"{'CASE':<13}  {'NODES':>6}  {'PODS':>5}  {'SCHEDULER pods/s':>16}  "
        f"{'NO-OP BINDER pods/s':>19}  {'RATIO':>5}  {'DECISION ms':>11}  {'DECISIONS/s':>11}  LOAD"
    )
    for case, n, sched, noop, cycle_ms, ld in rows:
        print(
            f"{case:<13}  {n:>6}  {args.pods:>5}  {sched:>16.0f}  {noop:>19.0f}  "
            f"{sched / noop:>5.2f}  {cycle_ms:>11.2f}  {1000 / cycle_ms:>11.0f}  {ld}"
        )
    parts = []
    for case in cases:
        _, sched, noop, cycle_ms = max((r[1], r[2], r[3], r[4]) for r in rows if r[0] == case)
        verdict = "met" if sched >= TARGETS[case] else "NOT met"
        parts.append(
            f"{case} {sched:.0f} pods/s (target {TARGETS[case]:.0f}: {verdict}; "
            f"{1000 / cycle_ms:.0f} decisions/s, no-op binder {noop:.0f})"
        )
    print(f"summary: at {max(sizes)} nodes, apiserver {args.apiserver}: " + "; ".join(parts))


if __name__ == "__main__":
    main()
