"""Pod startup and memory on a `tinykube up` cluster: `sudo python bench/pod_startup.py
--local-cluster [--nodes 2] [--runtime containerd|docker] [--pods 20] [--tracing on|off]
[--json FILE]`.

Why a second mode. bench/pod_startup.py's default mode measures the kubelet
alone (one kubelet, pods created with spec.nodeName set). Users meet pods the
other way: created without a node, placed by the scheduler, started by one of
several kubelets, and watched until Running. This mode measures that path
end to end, on the real local cluster of localcluster/cluster.py (network
namespace nodes, each with its containerd or dockerd and a kubelet that runs
the netplugin agent in its process; the API server -- with the scheduler and
controllers in its process -- on node1), and then reads the memory of every
process of that cluster.

One run, step by step:

1. `Cluster("bench<pid>", nodes, runtime, make_current=False).up()`: a cluster
   of its own name, so a cluster someone else runs (`mem`, CI's) is never
   touched, and the CLI's current cluster stays what it was.
2. Warm-up: one pod pinned to each node by spec.nodeName, waited Running,
   then deleted and waited gone. It pulls the image from the cluster's
   registry mirror into each node's runtime, so no pull is timed later (the
   "image present" case of Kubernetes' pod startup SLO).
3. One at a time: `--pods` pods WITHOUT nodeName, each created and waited
   Running before the next. A pod's startup is the time from its Create call
   returning to a watch on pods delivering it Running with every container
   running: scheduling, binding, the kubelet's sandbox + container start and
   its status write, as a user sees it. Where each pod landed is counted, and
   the scheduler's share is shown apart ("bound": Create returning to the
   watch seeing spec.nodeName set; the rest is the kubelet's and runtime's).
4. The pods are deleted and waited gone, then a burst: all `--pods` created at
   once (concurrent Create calls), each timed the same way, plus the wall time
   from the first Create to the last pod Running.
5. With the burst's pods still running (about `--pods / nodes` per node),
   `--settle` seconds pass, then RSS and PSS of each process are read from
   /proc/PID/smaps_rollup (PSS splits shared pages -- the Python interpreter's
   libraries, mapped by every tinykube process -- between their users, so the
   PSS column adds up to what the cluster really costs). Targets:
   apiserver (scheduler and controllers included) <= 100 MB RSS; each node's
   kubelet + netplugin <= 80 MB RSS (one process: `kubelet --network-agent`).
   The runtime daemon and its shims are shown for reference, and each
   process's CPU seconds since it started (where the burst's time went). MB
   here is 10^6 bytes, the unit the targets are stated in.
6. Always, even on Ctrl-C or SIGTERM: `cluster.down()` (a second Ctrl-C
   during it is ignored, so the teardown completes); `--keep-logs` keeps the
   cluster's logs/ directory for a look at the kubelets afterwards.

`--tracing off` (the default) sets OTEL_SDK_DISABLED=true before `up`, so
no process of the cluster traces; `--tracing on` leaves every component's
exporter on and makes each create and delete a traced command, as the CLI's
are, then checks that the last burst pod's trace holds the scheduler's and
the kubelet's spans (bench/tracing_mode.py). bench/tracing_overhead.py runs
both; `--json` writes every sample and the memory table for it. The memory
readings live in bench/cluster_memory.py.

Percentiles are nearest-rank (of 20 samples p50 is the 10th, p99 the 20th:
the slowest). The last line is a one-line summary.

Worked example of the output's core (figures illustrative):

    sequential    20 pods  p50 0.635 s  p99 1.143 s  max 1.143 s   node1 10, node2 10
      bound       20 pods  p50 0.006 s  p99 0.027 s  max 0.027 s   of it, Create -> ...
    burst         20 pods  p50 10.943 s  p99 11.680 s  ...   all Running in 11.73 s
    process     node         pid   RSS MB   PSS MB   CPU s  target
    apiserver   node1      20254     50.1     30.0    20.1  <= 100 MB RSS ok
    kubelet     node1      20310     53.4     36.1     9.8  kubelet + netplugin agent
      = node    node1                53.4     36.1          <= 80 MB RSS ok
    summary: local cluster (2 nodes, containerd): 20 pods sequential p50 0.635s ...

(Sequential p99 1.143 s meets the 1.5 s target. A node's kubelet and its
network agent are one process, so the per-node line is that process.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apimachinery.client import Client
from bench.cluster_memory import Memory, read_memory
from bench.measure import is_running, percentile
from bench.tracing_mode import Commands, add_option, apply_mode, evidence, verdict
from localcluster.cluster import Cluster, ClusterError
from protos import core_pb2

IMAGE = "docker.io/library/busybox:latest"
# A shell as PID 1 exits at once on SIGTERM with this trap (a bare `sleep` would not).
COMMAND = ("sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait")
NAMESPACE = "default"
LABEL = "pod-startup-cluster"
P99_TARGET_S = 1.5
APISERVER_TARGET_MB = 100.0
NODE_TARGET_MB = 80.0
POD_TIMEOUT = 120.0


def make_pod(name: str, node: str = "") -> core_pb2.Pod:
    pod = core_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.name = name
    pod.metadata.namespace = NAMESPACE
    pod.metadata.labels["bench"] = LABEL
    if node:
        pod.spec.node_name = node
    pod.spec.termination_grace_period_seconds = 2
    pod.spec.containers.add(
        name="app", image=IMAGE, command=list(COMMAND), image_pull_policy="IfNotPresent"
    )
    return pod


# ---- the pods -----------------------------------------------------------------------------------


class PodWatch:
    """One watch on the bench's pods: when each was first seen Running, on which node; deletions."""

    def __init__(self, client: Client, commands: Commands) -> None:
        self.client = client
        self.commands = commands  # each create and delete a command, traced when tracing is on
        self.running_at: dict[str, float] = {}
        self.bound_at: dict[str, float] = {}
        self.node_of: dict[str, str] = {}
        self.events: dict[str, asyncio.Event] = {}
        self.alive: set[str] = set()
        self.changed = asyncio.Event()
        self.bound: dict[str, float] = {}
        self.task: asyncio.Future[None] | None = None

    def event(self, name: str) -> asyncio.Event:
        return self.events.setdefault(name, asyncio.Event())

    async def start(self) -> None:
        items, rv = await self.client.list("pods", NAMESPACE, label_selector=f"bench={LABEL}")
        self.alive = {p.metadata.name for p in items}
        self.task = asyncio.ensure_future(self._run(rv))

    async def _run(self, rv: str) -> None:
        selector = f"bench={LABEL}"
        async for ev in self.client.watch(
            "pods", NAMESPACE, resource_version=rv, label_selector=selector
        ):
            pod = ev.object
            name = pod.metadata.name
            if ev.type == "DELETED":
                self.alive.discard(name)
            elif ev.type in ("ADDED", "MODIFIED"):
                self.alive.add(name)
                if name not in self.bound_at and pod.spec.node_name:
                    self.bound_at[name] = time.perf_counter()
                if name not in self.running_at and is_running(pod):
                    self.running_at[name] = time.perf_counter()
                    self.node_of[name] = pod.spec.node_name
                    self.event(name).set()
            self.changed.set()

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def start_one(self, name: str, node: str = "") -> float:
        """Create the pod; seconds from Create returning to Running seen by the watch.

        `bound[name]` becomes the part of it until the watch saw spec.nodeName set
        (the scheduler's share; the rest is the kubelet's and the runtime's)."""
        self.running_at.pop(name, None)
        self.bound_at.pop(name, None)
        self.events[name] = asyncio.Event()
        with self.commands.command("create", f"create pod {name}"):
            await self.client.create(make_pod(name, node))
        created = time.perf_counter()
        try:
            await asyncio.wait_for(self.event(name).wait(), POD_TIMEOUT)
        except asyncio.TimeoutError:
            raise RuntimeError(f"pod {name} not Running after {POD_TIMEOUT:.0f} s") from None
        self.bound[name] = self.bound_at.get(name, created) - created
        return self.running_at[name] - created

    async def delete_all(self, names: list[str]) -> None:
        """Delete the pods and wait until the watch has seen every one go."""

        async def delete(name: str) -> None:
            with self.commands.command("delete", f"delete pod {name}"):
                await self.client.delete("pods", name, NAMESPACE)

        await asyncio.gather(*(delete(n) for n in names))
        deadline = time.monotonic() + POD_TIMEOUT
        while self.alive & set(names):
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"pods not gone: {', '.join(sorted(self.alive & set(names)))}")
            self.changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 1.0))


@dataclass
class Startup:
    sequential: list[float] = field(default_factory=list)
    burst: list[float] = field(default_factory=list)
    burst_wall: float = 0.0
    placement: dict[str, int] = field(default_factory=dict)
    burst_placement: dict[str, int] = field(default_factory=dict)
    warmup: dict[str, float] = field(default_factory=dict)
    sequential_bound: list[float] = field(default_factory=list)  # Create -> nodeName seen
    burst_bound: list[float] = field(default_factory=list)
    load: float = 0.0  # the host's 1-minute load average before the runs (2 cores, shared)
    tracing: str = "off"
    evidence: dict[str, object] = field(default_factory=dict)  # bench/tracing_mode.evidence


async def measure_startup(address: str, nodes: list[str], count: int, mode: str) -> Startup:
    out = Startup(load=os.getloadavg()[0], tracing=mode)
    async with Client(address, timeout=30) as client:
        commands = Commands(client)
        watch = PodWatch(client, commands)
        await watch.start()
        try:
            warm = [f"warm-{n}" for n in nodes]
            times = await asyncio.gather(
                *(watch.start_one(w, n) for w, n in zip(warm, nodes, strict=True))
            )
            out.warmup = dict(zip(nodes, times, strict=True))
            await watch.delete_all(warm)

            seq = [f"seq-{i}" for i in range(count)]
            for name in seq:
                out.sequential.append(await watch.start_one(name))
            out.sequential_bound = [watch.bound[p] for p in seq]
            out.placement = {n: sum(watch.node_of[p] == n for p in seq) for n in nodes}
            await watch.delete_all(seq)

            burst = [f"burst-{i}" for i in range(count)]
            began = time.perf_counter()
            out.burst = list(await asyncio.gather(*(watch.start_one(p) for p in burst)))
            out.burst_wall = max(watch.running_at[p] for p in burst) - began
            out.burst_bound = [watch.bound[p] for p in burst]
            out.burst_placement = {n: sum(watch.node_of[p] == n for p in burst) for n in nodes}
            commands.finish()
            out.evidence = await check_tracing(client, mode, burst[0])
        finally:
            await watch.stop()
    return out


async def check_tracing(client: Client, mode: str, pod: str) -> dict[str, object]:
    """Is tracing what `mode` says? With it on, the pod's trace must hold the scheduler's and
    the kubelet's spans (exported in batches: waited for up to 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        seen = await evidence(client, "pods", pod, NAMESPACE)
        problem = verdict(mode, seen, want=("default-scheduler", "kubelet"))
        if not problem:
            return seen
        if time.monotonic() > deadline:
            raise RuntimeError(problem)
        await asyncio.sleep(0.5)


# ---- the run ------------------------------------------------------------------------------------


@contextlib.contextmanager
def interrupts_as_keyboard() -> Iterator[None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt, so `finally` tears the cluster down.

    SIGINT's handler is set explicitly: a shell without job control starts a
    background command with SIGINT ignored, and Python then leaves it ignored."""

    def raise_interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old_term = signal.signal(signal.SIGTERM, raise_interrupt)
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)


def teardown(cluster: Cluster, keep_logs: bool) -> None:
    """`down`, not to be interrupted half-way by a second Ctrl-C or a SIGTERM."""
    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    old_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        cluster.down(progress=print, keep_logs=keep_logs)
        if keep_logs:
            print(f"the logs stay in {cluster.state.log_dir}")
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)


def run(args: argparse.Namespace) -> None:
    name = args.name or f"bench{os.getpid()}"
    cluster = Cluster(name, nodes=args.nodes, runtime=args.runtime, make_current=False)
    if cluster.exists():
        sys.exit(f"a cluster named {name!r} exists already: pick another --name")
    apply_mode(args.tracing)  # inherited by every process `up` starts
    with interrupts_as_keyboard():
        try:
            began = time.monotonic()
            cluster.up(progress=print)
            up_seconds = time.monotonic() - began
            startup = asyncio.run(
                measure_startup(cluster.client_address, cluster.nodes, args.pods, args.tracing)
            )
            time.sleep(args.settle)
            memory = read_memory(cluster)
        finally:
            teardown(cluster, args.keep_logs)
    report(args, up_seconds, startup, memory)
    if args.json:
        write_json(Path(args.json), up_seconds, startup, memory)


def write_json(path: Path, up_seconds: float, s: Startup, memory: list[Memory]) -> None:
    """Every figure of the run, the samples in seconds (bench/tracing_overhead.py reads it)."""
    data = {**dataclasses.asdict(s), "up_seconds": up_seconds}
    data["memory"] = [dataclasses.asdict(m) for m in memory]
    path.write_text(json.dumps(data))


def _row(label: str, values: list[float], extra: str) -> str:
    p50, p99 = percentile(values, 50), percentile(values, 99)
    spread = f"p50 {p50:.3f} s  p99 {p99:.3f} s  max {max(values):.3f} s"
    return f"{label:<12}{len(values):>4} pods  {spread}   {extra}"


def _spread(counts: Mapping[str, float]) -> str:
    return ", ".join(f"{n} {c}" for n, c in counts.items())


def report(args: argparse.Namespace, up_seconds: float, s: Startup, memory: list[Memory]) -> None:
    warm = {n: round(t, 2) for n, t in s.warmup.items()}
    print()
    print(
        f"pod startup on a local cluster: {args.nodes} nodes, runtime {args.runtime}, "
        f"image {IMAGE} present (warm-up {_spread(warm)} s), "
        f"cluster up in {up_seconds:.1f} s, load average {s.load:.2f}, tracing {s.tracing}"
    )
    print(_row("sequential", s.sequential, _spread(s.placement)))
    print(_row("  bound", s.sequential_bound, "of it, Create -> spec.nodeName seen"))
    print(
        _row("burst", s.burst, f"{_spread(s.burst_placement)}; all Running in {s.burst_wall:.2f} s")
    )
    print(_row("  bound", s.burst_bound, "of it, Create -> spec.nodeName seen"))
    print()
    print(
        f"memory with {len(s.burst)} pods running ({args.settle:.0f} s after the burst), "
        "MB = 10^6 B"
    )
    print(f"{'process':<12}{'node':<8}{'pid':>8}{'RSS MB':>9}{'PSS MB':>9}{'CPU s':>8}  target")
    totals: dict[str, float] = {}
    pss_totals: dict[str, float] = {}
    apiserver_rss = 0.0
    for m in memory:
        target = ""
        if m.component == "apiserver":
            apiserver_rss = m.rss_mb
            verdict = "ok" if m.rss_mb <= APISERVER_TARGET_MB else "MISSED"
            target = f"<= {APISERVER_TARGET_MB:.0f} MB RSS {verdict}"
        elif m.component == "kubelet":
            totals[m.node] = totals.get(m.node, 0.0) + m.rss_mb
            pss_totals[m.node] = pss_totals.get(m.node, 0.0) + m.pss_mb
            target = "kubelet + netplugin agent"
        elif m.component == "shims":
            target = f"reference ({m.count} shims)"
        else:
            target = "reference"
        pid = str(m.pid) if m.pid else "-"
        figures = f"{m.rss_mb:>9.1f}{m.pss_mb:>9.1f}{m.cpu_s:>8.1f}"
        print(f"{m.component:<12}{m.node:<8}{pid:>8}{figures}  {target}")
    for node, total in totals.items():
        verdict = "ok" if total <= NODE_TARGET_MB else "MISSED"
        print(
            f"{'  = node':<12}{node:<8}{'':>8}{total:>9.1f}{pss_totals[node]:>9.1f}{'':>8}  "
            f"<= {NODE_TARGET_MB:.0f} MB RSS {verdict}"
        )
    seq99, burst99 = percentile(s.sequential, 99), percentile(s.burst, 99)
    ok_latency = seq99 <= P99_TARGET_S
    ok_api = apiserver_rss <= APISERVER_TARGET_MB
    ok_nodes = all(t <= NODE_TARGET_MB for t in totals.values())
    all_ok = ok_latency and ok_api and ok_nodes
    nodes = " ".join(f"{n} {t:.1f}MB" for n, t in totals.items())
    print(
        f"summary: local cluster ({args.nodes} nodes, {args.runtime}): {len(s.sequential)} pods "
        f"sequential p50 {percentile(s.sequential, 50):.3f}s p99 {seq99:.3f}s "
        f"(target {P99_TARGET_S} {'ok' if ok_latency else 'MISSED'}), burst p50 "
        f"{percentile(s.burst, 50):.3f}s p99 {burst99:.3f}s; apiserver {apiserver_rss:.1f}MB "
        f"({'ok' if ok_api else 'MISSED'}), kubelet+netplugin {nodes} "
        f"({'ok' if ok_nodes else 'MISSED'}); targets {'met' if all_ok else 'NOT met'}"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--local-cluster", action="store_true", help="this mode (always on here)")
    ap.add_argument("--nodes", type=int, default=2, help="nodes of the cluster (1-9)")
    ap.add_argument("--runtime", default="containerd", choices=["containerd", "docker"])
    ap.add_argument("--pods", type=int, default=20, help="pods in each run")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds before reading memory")
    ap.add_argument("--name", default="", help="cluster name (default bench<pid>)")
    ap.add_argument("--keep-logs", action="store_true", help="keep the cluster's logs/ after")
    ap.add_argument("--json", default="", help="also write every figure to this file")
    add_option(ap)
    args = ap.parse_args(argv)
    if args.pods < 1 or not 1 <= args.nodes <= 9 or args.settle < 0:
        ap.error("need --pods >= 1, 1 <= --nodes <= 9 and --settle >= 0")
    if os.geteuid() != 0:
        sys.exit("pod_startup --local-cluster needs root (network namespaces, containerd)")
    try:
        run(args)
    except ClusterError as err:  # `up` has printed the component's log lines already
        sys.exit(f"pod_startup --local-cluster: {err}")
    except KeyboardInterrupt:  # the cluster is down already (run's finally)
        print("pod_startup --local-cluster: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
