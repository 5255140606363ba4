"""Scheduler throughput: `python bench/scheduler_throughput.py [--nodes 100,1000] [--pods 2000]`.

What is measured, for each cluster size N (a fresh API server each time, in
this process, on loopback, over SQLite in a temporary directory, with
durable commits; controllers and the in-process scheduler off):

1. N Ready Node objects are created (capacity cpu 32, memory 256Gi, pods
   110; no kubelets: nothing runs the pods), then M pending pods, each
   requesting 100m CPU and 500Mi memory (as Kubernetes' scheduler_perf
   `SchedulingBasic` pods do).
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

Every Binding also costs a second write: the scheduler's `Scheduled` Event
(as in Kubernetes). `--no-events` turns those off, to show their share.

`--profile` runs the scheduler phase of the largest N under cProfile and
prints the functions that take the most time.

Target: >= 680 pods/s at 5000 nodes, the floor Kubernetes'
scheduler_perf CI accepts for SchedulingBasic. The last line is a one-line
summary.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import logging
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apimachinery.client import Client
from apimachinery.factory import SharedInformerFactory
from apiserver.server import APIServer
from apiserver.storage import open_storage
from protos import core_pb2
from scheduler.scheduler import Scheduler

TARGET = 680.0
NAMESPACE = "default"


def make_node(name: str) -> core_pb2.Node:
    n = core_pb2.Node(api_version="v1", kind="Node")
    n.metadata.name = name
    n.metadata.labels["kubernetes.io/hostname"] = name
    for field in (n.status.capacity, n.status.allocatable):
        field.update({"cpu": "32", "memory": "256Gi", "pods": "110"})
    n.status.conditions.add(type="Ready", status="True")
    return n


def make_pod(name: str) -> core_pb2.Pod:
    p = core_pb2.Pod(api_version="v1", kind="Pod")
    p.metadata.name = name
    p.metadata.namespace = NAMESPACE
    c = p.spec.containers.add(name="pause", image="registry.k8s.io/pause:3.9")
    c.resources.requests.update({"cpu": "100m", "memory": "500Mi"})
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
    client: Client, pods: int, in_flight: int, profile: cProfile.Profile | None, events: bool
) -> tuple[float, float]:
    """(pods/s bound end to end, mean milliseconds per scheduling decision)."""
    await create_all(client, [make_pod(f"sched-{i}") for i in range(pods)])
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


async def measure(
    n: int, pods: int, in_flight: int, profile: bool, events: bool
) -> tuple[float, float, float, str]:
    with tempfile.TemporaryDirectory(prefix="tinykube-bench-") as data:
        storage = await open_storage("sqlite", data)
        server = APIServer(storage, f"unix:{data}/api.sock")
        await server.start()
        client = Client(server.local_address, timeout=120)
        prof = cProfile.Profile() if profile else None
        try:
            await create_all(client, [make_node(f"node-{i}") for i in range(n)])
            sched, cycle_ms = await run_scheduler_phase(client, pods, in_flight, prof, events)
            noop = await run_noop_phase(client, n, pods, in_flight)
        finally:
            await client.close()
            await server.stop(grace=0)
        report = ""
        if prof is not None:
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
            report = out.getvalue()
        return sched, noop, cycle_ms, report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", default="100,1000,5000", help="comma-separated cluster sizes")
    ap.add_argument("--pods", type=int, default=2000, help="pending pods per run (M)")
    ap.add_argument("--in-flight", type=int, default=256, help="Bindings outstanding at most")
    ap.add_argument("--profile", action="store_true", help="cProfile the largest run")
    ap.add_argument("--no-events", action="store_true", help="scheduler writes no Scheduled Events")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    sizes = [int(s) for s in args.nodes.split(",") if s]
    rows = []
    profile_report = ""
    for n in sizes:
        sched, noop, cycle_ms, report = asyncio.run(
            measure(
                n, args.pods, args.in_flight, args.profile and n == max(sizes), not args.no_events
            )
        )
        profile_report = report or profile_report
        rows.append((n, sched, noop, cycle_ms))
        print(
            f"nodes={n} pods={args.pods}: scheduler {sched:.0f} pods/s, no-op binder {noop:.0f}, "
            f"{cycle_ms:.2f} ms per decision",
            file=sys.stderr,
        )
    if profile_report:
        print(profile_report)
    print(
        f"{'NODES':>6}  {'PODS':>5}  {'SCHEDULER pods/s':>16}  {'NO-OP BINDER pods/s':>19}  "
        f"{'RATIO':>5}  {'DECISION ms':>11}  {'DECISIONS/s':>11}"
    )
    for n, sched, noop, cycle_ms in rows:
        print(
            f"{n:>6}  {args.pods:>5}  {sched:>16.0f}  {noop:>19.0f}  {sched / noop:>5.2f}  "
            f"{cycle_ms:>11.2f}  {1000 / cycle_ms:>11.0f}"
        )
    n, sched, noop, cycle_ms = rows[-1]
    verdict = "met" if sched >= TARGET else "NOT met"
    print(
        f"summary: {sched:.0f} pods/s scheduled at {n} nodes (no-op binder {noop:.0f}, "
        f"{cycle_ms:.2f} ms per decision); target >= {TARGET:.0f} pods/s {verdict}"
    )


if __name__ == "__main__":
    main()
