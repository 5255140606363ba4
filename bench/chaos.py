"""The chaos run: the seed under load on a `tinykube up` cluster while faults land at random.

    sudo .venv/bin/python -m bench.chaos --duration 600 --fault-interval 20 [--seed N]
    sudo .venv/bin/python -m bench.chaos --quick        # 90 s, a fault every 15 s

What it does, in order:

1. a two-node cluster (localcluster.cluster, the short failover timings of the
   e2e tests: a node is NotReady ~6 s after its last Lease renewal, its pods
   evicted 5 s later), with the API server's data directory on a 64 MiB tmpfs
   (localcluster.faults.DataDirTmpfs) so that a disk can really fill up;
2. the seed (examples/web-app.yaml: a Deployment of two nginx replicas and a
   Service), spread one replica per node;
3. two loads (bench/chaos_load.py): a client in node1's namespace polling the
   Service's ClusterIP every 100 ms, and a writer creating ConfigMaps at 5/s
   that remembers every create the API server acknowledged;
4. for --duration seconds, a fault every --fault-interval seconds (+-25 %),
   drawn with a seeded RNG (the seed is printed; the same seed draws the same
   faults) from localcluster.faults.KINDS: kill -9 of the API server (with its
   scheduler and controller-manager) or of a kubelet (with its network agent),
   a containerd restart, a partition between the nodes, a full disk. Each is
   undone as a supervisor or an operator would, and the next one waits for it;
5. the faults' leftovers removed, then a settle period: until the nodes are
   Ready, both replicas Running and in the Service's endpoints, and nothing
   leaks (localcluster/leaks.py's node inventory: sandboxes, containers, veths,
   IP reservations; plus containers of pods the API no longer has, and the
   faults' own tables and files);
6. the figures: availability (% of polls answered; a poll may retry a failed
   connect within its 1-s budget, as an HTTP client does -- the first-try rate
   beside it), the longest run of unanswered polls, writes acknowledged and
   lost (every acknowledged ConfigMap read back by name: must be 0), leaks
   (must be 0), the fault log with the polls each fault cost, and, last, a
   one-line summary.

tests/e2e/test_chaos.py runs the same `run_chaos` for 3 minutes in CI.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.chaos_load import ConfigMapWriter, ProbeFigures, ServiceProbe, StateSampler
from localcluster.cluster import Cluster
from localcluster.faults import TABLE, DataDirTmpfs, FaultRecord, Injector
from localcluster.leaks import inventory
from localcluster.probes import SEED, curl_from, replicas_seen, running_containers
from localcluster.processes import cluster_env, tinykube_cmd
from localcluster.seedprobes import cluster_ip, endpoints_of, running, spread, web_pods

Say = Callable[[str], None]
SETTLE_TIMEOUT = 240.0


@dataclass
class ChaosResult:
    seed: int
    duration: float
    interval: float
    probe: ProbeFigures
    acknowledged: int
    attempted: int
    refused: Counter[str]
    lost: list[str]
    leaks: list[str]
    faults: list[FaultRecord]
    served: dict[str, set[str]] = field(default_factory=dict)  # node -> replicas seen from it
    replicas: set[str] = field(default_factory=set)
    loads: list[float] = field(default_factory=list)  # 1-min load averages sampled in the run
    failed_by_fault: list[int] = field(default_factory=list)
    outages: list[str] = field(default_factory=list)  # each run of unanswered polls, explained

    @property
    def load(self) -> str:
        if not self.loads:
            return "?"
        mean = sum(self.loads) / len(self.loads)
        return f"{mean:.1f} (min {min(self.loads):.1f}, max {max(self.loads):.1f})"

    def report(self) -> list[str]:
        p = self.probe
        refused = ", ".join(f"{k} {v}" for k, v in self.refused.most_common()) or "none"
        lines = [
            f"seed {self.seed}, {self.duration:.0f} s, a fault every ~{self.interval:.0f} s,"
            f" 1-min load average {self.load}",
            f"availability: {p.availability:.2f} % of {p.polls} polls answered"
            f" (first try {p.first_try_rate:.2f} %)",
            f"longest gap: {p.longest_gap:.1f} s (began at t={p.gap_began:.1f} s)",
            f"writes: {self.acknowledged} acknowledged of {self.attempted}; refused: {refused}",
            f"acknowledged writes lost: {len(self.lost)}",
            *(f"  LOST {line}" for line in self.lost[:20]),
            f"leaked resources: {len(self.leaks)}",
            *(f"  LEAK {line}" for line in self.leaks[:20]),
            "served at the end: "
            + ", ".join(f"from {n}: {len(s)} replicas" for n, s in sorted(self.served.items())),
            f"fault log ({len(self.faults)} faults; polls failed in each fault's window):",
        ]
        for record, failed in zip(self.faults, self.failed_by_fault, strict=False):
            lines.append(f"  {record.line()}  [{failed} polls failed]")
        lines.append(f"runs of unanswered polls ({len(self.outages)}), with the cluster's state:")
        lines.extend(f"  {line}" for line in self.outages)
        return lines

    def summary(self) -> str:
        return (
            f"chaos: seed {self.seed}, {self.duration:.0f} s, {len(self.faults)} faults,"
            f" availability {self.probe.availability:.2f} %, longest gap"
            f" {self.probe.longest_gap:.1f} s, {len(self.lost)} of {self.acknowledged}"
            f" acknowledged writes lost, {len(self.leaks)} leaks, load {self.load}"
        )


def apply_seed(cluster: Cluster, say: Say) -> None:
    out = subprocess.run(
        [*tinykube_cmd(), "apply", "-f", SEED],
        capture_output=True,
        text=True,
        env=cluster_env(cluster.name),
        timeout=120,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"tinykube apply -f {SEED}: {out.stdout}{out.stderr}")
    until(lambda: len(running(cluster)) == 2, 180, "two web-app pods Running")
    spread(cluster)
    until(lambda: len(endpoints_of(cluster)) == 2, 60, "two endpoints")
    say(f"seed running: {sorted(running(cluster).items())}")


def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # the API server restarting: ask again
            pass
        time.sleep(1.0)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def leaks_now(cluster: Cluster, disk: DataDirTmpfs | None) -> list[str]:
    """Everything left over that should not be (module docstring, step 5)."""
    found: list[str] = []
    pods = {p.metadata.name: p.spec.node_name for p in web_pods(cluster)}
    for node in cluster.nodes:
        found += [f"{node}: {p}" for p in inventory(cluster, node).problems()]
        names = running_containers(cluster, node, "web-app")
        found += [
            f"{node}: a container of pod {n} runs, which the API does not have there"
            for n in sorted(set(names))
            if pods.get(n) != node
        ]
        found += [
            f"{node}: pod {n} runs {c} containers" for n, c in Counter(names).items() if c > 1
        ]
        tables = cluster.node_exec(node, ["nft", "list", "tables"]).stdout
        if f"inet {TABLE}" in tables:
            found.append(f"{node}: partition table {TABLE} left")
    if disk is not None and disk.filler.exists():
        found.append(f"disk filler {disk.filler} left")
    return found


def settle(cluster: Cluster, disk: DataDirTmpfs | None, say: Say) -> list[str]:
    """Wait until the seed is whole and nothing leaks; what is still wrong at the timeout."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    began = time.monotonic()
    problems = ["not checked"]
    while time.monotonic() < deadline:
        try:
            pods = running(cluster)
            problems = []
            if len(pods) != 2 or len(web_pods(cluster)) != 2:
                problems.append(f"web-app pods: {len(web_pods(cluster))}, Running: {sorted(pods)}")
            elif endpoints_of(cluster) != {ip for _, ip in pods.values()}:
                problems.append("endpoints differ from the Running pods' IPs")
            problems += leaks_now(cluster, disk)
        except Exception as err:
            problems = [f"check failed: {err}"]
        if not problems:
            say(f"settled in {time.monotonic() - began:.1f} s")
            return []
        time.sleep(2.0)
    return problems


def fault_loop(injector: Injector, duration: float, interval: float, loads: list[float]) -> None:
    """A fault every `interval` (+-25 %) until `duration`; between them, a supervisor's watch."""
    rng = injector.rng
    next_at = interval * rng.uniform(0.75, 1.25)
    while injector.now() < duration:
        loads.append(os.getloadavg()[0])
        if injector.now() >= next_at:
            record = injector.inject()
            print(f"  {record.line()}", flush=True)
            next_at = max(record.at + interval * rng.uniform(0.75, 1.25), injector.now() + 2.0)
        else:
            injector.check_alive()
            time.sleep(min(2.0, max(0.1, next_at - injector.now())))


def failed_per_fault(probe: ServiceProbe, faults: list[FaultRecord], offset: float) -> list[int]:
    """Unanswered polls from each fault's start to the next one's (probe ticks -> run time)."""
    bounds = [f.at for f in faults] + [float("inf")]
    out = [0] * len(faults)
    for tick, (ok, _) in probe.results.items():
        t = tick * probe.interval + offset
        if ok:
            continue
        for i in range(len(faults)):
            if bounds[i] <= t < bounds[i + 1]:
                out[i] += 1
    return out


def explain_outages(
    probe: ServiceProbe, sampler: StateSampler, faults: list[FaultRecord], offset: float
) -> list[str]:
    """Each run of unanswered polls: when, how long, the fault then, and the sampled state."""
    out = []
    for start, polls in probe.outages():
        t = start + offset
        fault = next((f for f in reversed(faults) if f.at <= t), None)
        during = f"after {fault.kind} {fault.target} at t={fault.at:.1f}s" if fault else "no fault"
        sample = sampler.at(t + 0.5)
        state = sample.line() if sample else "no sample"
        out.append(
            f"t={t:7.1f}s  {polls * probe.interval:4.1f}s ({polls} polls)  {during}; {state}"
        )
    return out


def run_chaos(
    cluster: Cluster,
    duration: float,
    interval: float,
    seed: int,
    say: Say = print,
    rate: float = 5.0,
) -> ChaosResult:
    """Steps 1-6 of the module docstring on a cluster that is up; undoes its faults always."""
    disk = DataDirTmpfs(cluster)
    injector = Injector(cluster, random.Random(seed), disk)
    writer = ConfigMapWriter(cluster.client_address, rate=rate)
    probe: ServiceProbe | None = None
    sampler: StateSampler | None = None
    loads: list[float] = []
    try:
        disk.install()
        say(f"API server data dir on a {disk.size_mib} MiB tmpfs: {disk.path} ({disk.usage()})")
        apply_seed(cluster, say)
        probe = ServiceProbe(cluster.node_ns(cluster.nodes[0]), f"http://{cluster_ip(cluster)}/")
        probe.start()
        writer.start()
        injector.origin = time.monotonic()
        sampler = StateSampler(cluster.client_address, injector.origin)
        sampler.start()
        say(f"faults for {duration:.0f} s (seed {seed}):")
        fault_loop(injector, duration, interval, loads)
        injector.cleanup()
        leaks = settle(cluster, disk, say)
    finally:
        if probe is not None:
            probe.stop()
        writer.stop()
        if sampler is not None:
            sampler.stop()
        injector.cleanup()
    assert probe is not None and sampler is not None
    offset = probe.t0 - injector.origin
    replicas = set(running(cluster))
    url = f"http://{cluster_ip(cluster)}/"
    served = {
        node: replicas_seen(lambda n=node: curl_from(cluster, n, url), replicas)  # type: ignore[misc]
        for node in cluster.nodes
    }
    return ChaosResult(
        seed=seed,
        duration=duration,
        interval=interval,
        probe=probe.figures(),
        acknowledged=len(writer.acknowledged),
        attempted=writer.attempts,
        refused=writer.refused,
        lost=writer.lost(),
        leaks=leaks,
        faults=injector.log,
        served=served,
        replicas=replicas,
        loads=loads,
        failed_by_fault=failed_per_fault(probe, injector.log, offset),
        outages=explain_outages(probe, sampler, injector.log, offset),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Faults at random under the seed's load.")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of faults")
    parser.add_argument("--fault-interval", type=float, default=20.0, help="seconds between")
    parser.add_argument("--seed", type=int, default=None, help="the RNG's seed (default: random)")
    parser.add_argument("--quick", action="store_true", help="90 s, a fault every 15 s")
    parser.add_argument("--rate", type=float, default=5.0, help="ConfigMap creates per second")
    parser.add_argument("--keep-logs", action="store_true", help="keep the cluster's logs/")
    parser.add_argument("--name", default=f"chaos{os.getpid() % 10000}", help="cluster name")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.fault_interval = 90.0, 15.0
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    print(f"seed {seed}", flush=True)
    cluster = Cluster(args.name, nodes=2, fast_failover=True, make_current=False)
    try:
        cluster.up(progress=print)
        result = run_chaos(cluster, args.duration, args.fault_interval, seed, rate=args.rate)
    finally:
        cluster.down(progress=print, keep_logs=args.keep_logs)
        if args.keep_logs:
            print(f"logs kept in {cluster.state.log_dir}")
    for line in result.report():
        print(line)
    print(result.summary())


if __name__ == "__main__":
    main()
