"""The chaos run's two loads: a Service client and a ConfigMap writer, and what each saw.

ServiceProbe runs bench/chaos_probe.py inside a node's network namespace (a
poll of the ClusterIP every 100 ms, module docstring there) and reads its
lines in a thread. From them:

    availability   polls answered / polls made (a poll may retry a failed connect
                   within its 1-s budget, as an HTTP client with a connect timeout does)
    first try      polls answered on their first connection / polls made
    longest gap    the longest run of unanswered ticks, in seconds (tick x interval),
                   with the time it began (seconds since the probe started)

StateSampler reads, once a second, each node's Ready, the seed's pods and the
Service's endpoints, so a run can say what the cluster looked like during each
run of unanswered polls.

ConfigMapWriter creates ConfigMaps in its own namespace at a steady rate
(one create in flight at a time, each with a 5-s deadline), from a thread with
its own event loop, as the cluster's admin on the API server's unix socket.
A create counts as acknowledged only when the server answered it with the
created object: that is the promise a Kubernetes API server makes (the write
is in etcd before the 201). Refusals (5xx during disk pressure, "connection
refused" while the API server restarts) and timeouts are counted by kind and
promise nothing. `lost()` then reads every acknowledged ConfigMap back by
name, one GET each, and returns those missing or holding other data.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from apimachinery import errors
from apimachinery.client import Client
from localcluster.netns import NetNS
from protos import core_pb2, meta_pb2


@dataclass
class ProbeFigures:
    polls: int
    answered: int
    first_try: int
    longest_gap: float
    gap_began: float

    @property
    def availability(self) -> float:
        return 100.0 * self.answered / self.polls if self.polls else 0.0

    @property
    def first_try_rate(self) -> float:
        return 100.0 * self.first_try / self.polls if self.polls else 0.0


class ServiceProbe:
    """bench/chaos_probe.py in `ns`, polling `url`; `start()`, `stop()`, `figures()`."""

    def __init__(self, ns: NetNS, url: str, interval: float = 0.1) -> None:
        self.ns, self.url, self.interval = ns, url, interval
        self.results: dict[int, tuple[bool, int]] = {}  # tick -> (answered, attempts)
        self.proc: subprocess.Popen[str] | None = None
        self.t0 = 0.0  # time.monotonic() of tick 0 (in the parent's clock)
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        from localcluster.processes import BIN, REPO

        argv = [str(BIN / "python"), "-m", "bench.chaos_probe", "--url", self.url]
        argv += ["--interval", str(self.interval)]
        self.proc = subprocess.Popen(
            [*self.ns.prefix(), *argv],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            parts = line.split()
            if len(parts) == 4:
                tick = int(parts[0])
                if tick == 0:
                    self.t0 = time.monotonic() - float(parts[3]) / 1000
                self.results[tick] = (parts[1] == "1", int(parts[2]))

    def stop(self) -> None:
        """SIGTERM (the probe finishes its polls in flight), then SIGKILL; idempotent."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        self.proc = None

    def outages(self) -> list[tuple[float, int]]:
        """Runs of unanswered polls: (start in seconds after tick 0, polls in the run)."""
        runs: list[tuple[float, int]] = []
        start, length = 0, 0
        for tick in sorted(self.results):
            if not self.results[tick][0]:
                start, length = (start, length + 1) if length else (tick, 1)
                continue
            if length:
                runs.append((start * self.interval, length))
            length = 0
        if length:
            runs.append((start * self.interval, length))
        return runs

    def figures(self) -> ProbeFigures:
        ticks = sorted(self.results)
        answered = sum(1 for t in ticks if self.results[t][0])
        first = sum(1 for t in ticks if self.results[t] == (True, 1))
        longest, began, run_start, run = 0, 0, 0, 0
        for t in ticks:
            if self.results[t][0]:
                run = 0
                continue
            if run == 0:
                run_start = t
            run += 1
            if run > longest:
                longest, began = run, run_start
        return ProbeFigures(
            len(ticks), answered, first, longest * self.interval, began * self.interval
        )


@dataclass
class ConfigMapWriter:
    """Creates ConfigMaps `w-000001`, ... in `namespace` at `rate` per second until stopped."""

    server: str
    namespace: str = "chaos-writes"
    rate: float = 5.0
    acknowledged: dict[str, str] = field(default_factory=dict)  # name -> the value written
    refused: Counter[str] = field(default_factory=Counter)  # error kind -> count
    attempts: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    async def _run(self) -> None:
        async with Client(self.server, timeout=5) as client:
            ns = core_pb2.Namespace(metadata=meta_pb2.ObjectMeta(name=self.namespace))
            with contextlib.suppress(errors.AlreadyExists):
                await client.create(ns)
            start = time.monotonic()
            while not self._stop.is_set():
                self.attempts += 1
                name = f"w-{self.attempts:06d}"
                value = f"{self.attempts}@{time.time():.3f}"
                cm = core_pb2.ConfigMap(
                    metadata=meta_pb2.ObjectMeta(name=name, namespace=self.namespace),
                    data={"seq": value},
                )
                try:
                    await client.create(cm)
                    self.acknowledged[name] = value
                except errors.StatusError as err:
                    self.refused[type(err).__name__] += 1
                except Exception as err:  # a broken channel mid-restart: not acknowledged
                    self.refused[type(err).__name__] += 1
                delay = start + self.attempts / self.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)

    def lost(self) -> list[str]:
        """Acknowledged ConfigMaps missing or changed now, each read back by name."""
        return asyncio.run(self._check())

    async def _check(self) -> list[str]:
        lost: list[str] = []
        async with Client(self.server, timeout=10) as client:
            for name, value in sorted(self.acknowledged.items()):
                got = await _get_patiently(client, name, self.namespace)
                if got is None:
                    lost.append(f"{name}: not found")
                elif got.data.get("seq") != value:
                    lost.append(f"{name}: holds {got.data.get('seq')!r}, {value!r} was written")
        return lost


async def _get_patiently(client: Client, name: str, namespace: str) -> Any:
    """The ConfigMap, or None if the server says NotFound; other errors are retried."""
    for attempt in range(20):
        try:
            return await client.get(core_pb2.ConfigMap, name, namespace)
        except errors.NotFound:
            return None
        except errors.StatusError:
            await asyncio.sleep(0.5 * (attempt + 1))
    return await client.get(core_pb2.ConfigMap, name, namespace)


@dataclass
class Sample:
    at: float  # seconds since `origin`
    nodes: dict[str, bool]  # node -> Ready
    pods: list[tuple[str, str, bool]]  # (pod, node, Ready) of the seed's pods
    endpoints: int

    def line(self) -> str:
        nodes = " ".join(
            f"{n}:{'Ready' if r else 'NotReady'}" for n, r in sorted(self.nodes.items())
        )
        pods = " ".join(f"{p[-5:]}@{n}{'' if r else '(not ready)'}" for p, n, r in self.pods)
        return f"{nodes}; pods {pods or 'none'}; {self.endpoints} endpoints"


class StateSampler:
    """Once a second: each node's Ready, the seed's pods (node, Ready), the Service's endpoints.

    With it a run can say what the cluster looked like while polls went unanswered.
    """

    def __init__(self, server: str, origin: float, period: float = 1.0) -> None:
        self.server, self.origin, self.period = server, origin, period
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    async def _run(self) -> None:
        async with Client(self.server, timeout=2) as client:
            while not self._stop.is_set():
                with contextlib.suppress(Exception):  # the API server away: no sample
                    self.samples.append(await self._sample(client))
                await asyncio.sleep(self.period)

    async def _sample(self, client: Client) -> Sample:
        at = time.monotonic() - self.origin
        nodes, _ = await client.list(core_pb2.Node)
        pods, _ = await client.list(core_pb2.Pod, "default", label_selector="app=web-app")
        ep = await client.get(core_pb2.Endpoints, "web-app-service", "default")

        def ready(conditions: Any) -> bool:
            return any(c.type == "Ready" and c.status == "True" for c in conditions)

        return Sample(
            at,
            {n.metadata.name: ready(n.status.conditions) for n in nodes},
            sorted(
                (p.metadata.name, p.spec.node_name, ready(p.status.conditions))
                for p in pods
                if not p.metadata.HasField("deletion_timestamp")
            ),
            sum(len(s.addresses) for s in ep.subsets),
        )

    def at(self, t: float) -> Sample | None:
        """The last sample taken at or before `t`."""
        before = [s for s in self.samples if s.at <= t]
        return before[-1] if before else None
