"""Pod startup on a real node: `sudo python bench/pod_startup.py [--runtime containerd|docker]
[--pods 30] [--concurrency 1]`.

With `--local-cluster [--nodes 2] [--runtime containerd|docker] [--pods 20]
[--tracing on|off]` it measures a whole `tinykube up` cluster instead -- scheduling included, and
the memory of every process: bench/pod_startup_cluster.py, whose docstring
tells what and how.

What is measured, in one run, on one private containerd (its own root,
state and socket under a temporary directory; localcluster/containerd.py)
or, with `--runtime docker`, one private dockerd (localcluster/dockerd.py),
with the pause and busybox images built offline and loaded first (imported
into containerd; pushed to a local registry and pulled by dockerd), so no
pull is ever timed (the "image present" case of Kubernetes' pod startup SLO):

1. The floor: for each of `--pods` pods, RunPodSandbox + CreateContainer +
   StartContainer straight through the runtime adapter (kubelet/runtime/cri.py,
   or docker.py with its own CNI call) -- what any kubelet must pay on this
   runtime, this CNI plugin and this disk. The sandboxes are removed afterwards.
2. The kubelet: an API server process and one `tinykube kubelet --runtime
   containerd|docker` process. Each pod is created with spec.nodeName already set
   (scheduling is not the kubelet's latency) and its startup is the time from
   the Create call returning to a watch on pods delivering it Running with
   every container running -- the status write included, as a user sees it.
3. The kubelet's footprint: pods are deleted down to `--steady-pods` (20),
   then its RSS (VmRSS) and CPU (utime + stime over wall time, in cores)
   are sampled for `--sample-seconds`.

`--concurrency K` keeps K pods starting at once in both runs (1: one after
the other, the latency without queueing). Percentiles are nearest-rank: of
30 samples, p50 is the 15th and p99 the 30th (the slowest).

Targets: p99 <= floor p99 + 0.5 s (Kubernetes' SLO is 5 s end to
end); kubelet <= 50 MiB RSS and <= 0.1 core with 20 pods (Kubernetes'
density limits). The last line is a one-line summary.

Needs root, containerd, runc, ctr, gcc, busybox-static and the CNI plugins
(`sudo make system-deps`); `--runtime docker` also dockerd and docker-registry.
The pods run on a bridge of their own (10.98.0.0/24) that nothing is routed
to; all of it is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apimachinery.client import Client
from bench.measure import is_running, percentile
from kubelet.runtime.cri import CRIRuntime
from kubelet.runtime.docker import DockerRuntime
from kubelet.runtime.interface import ContainerConfig, ContainerRuntime, PodSandboxConfig
from localcluster import images
from localcluster.containerd import CNI_BIN_DIR, Containerd, ContainerdConfig
from localcluster.dockerd import Dockerd, DockerdConfig
from localcluster.hostbridge import HostBridgeNetwork
from localcluster.processes import ApiServerProcess, KubeletProcess
from localcluster.registry import LocalRegistry
from protos import core_pb2

IMAGE = "docker.io/library/busybox:1.36"
# Stops at once on SIGTERM (a PID 1 without a handler ignores it).
COMMAND = ("sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done")
NODE = "bench-node"
SLO_MARGIN = 0.5
RSS_TARGET_MIB = 50.0
CPU_TARGET = 0.1


async def bounded(
    count: int, concurrency: int, one: Callable[[int], Awaitable[float]]
) -> list[float]:
    """Run one(i) for i < count with at most `concurrency` in flight; their latencies."""
    gate = asyncio.Semaphore(concurrency)

    async def run(i: int) -> float:
        async with gate:
            return await one(i)

    return list(await asyncio.gather(*(run(i) for i in range(count))))


# ---- 1. the floor -----------------------------------------------------------------------------


async def measure_floor(
    new_runtime: Callable[[], ContainerRuntime], count: int, concurrency: int
) -> list[float]:
    runtime = new_runtime()

    async def one(i: int) -> float:
        sandbox_config = PodSandboxConfig(
            name=f"floor-{i}", namespace="bench", uid=f"floor-uid-{i}", hostname=f"floor-{i}"
        )
        config = ContainerConfig(name="app", image=IMAGE, command=COMMAND)
        started = time.perf_counter()
        sandbox = await runtime.run_pod_sandbox(sandbox_config)
        cid = await runtime.create_container(sandbox.id, config, sandbox_config)
        await runtime.start_container(cid)
        return time.perf_counter() - started

    try:
        return await bounded(count, concurrency, one)
    finally:
        for sandbox in await runtime.list_pod_sandboxes():
            await runtime.stop_pod_sandbox(sandbox.id)
            await runtime.remove_pod_sandbox(sandbox.id)
        await runtime.close()


# ---- 2. the kubelet ---------------------------------------------------------------------------


def make_pod(name: str) -> core_pb2.Pod:
    pod = core_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.name = name
    pod.metadata.namespace = "default"
    pod.metadata.labels["bench"] = "pod-startup"
    pod.spec.node_name = NODE
    pod.spec.termination_grace_period_seconds = 2
    pod.spec.containers.add(name="app", image=IMAGE, command=list(COMMAND))
    return pod


async def wait_node_ready(client: Client, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            node = await client.get("nodes", NODE)
        except Exception:  # not registered yet
            node = None
        if node is not None and node.spec.pod_cidr:
            ready = [c for c in node.status.conditions if c.type == "Ready"]
            if ready and ready[0].status == "True":
                return
        await asyncio.sleep(0.2)
    raise RuntimeError("the kubelet's node did not become Ready")


async def measure_kubelet(address: str, count: int, concurrency: int) -> list[float]:
    async with Client(address) as client:
        await wait_node_ready(client)
        _, rv = await client.list("pods", "default")
        seen: dict[str, asyncio.Event] = {}
        running_at: dict[str, float] = {}

        async def watch() -> None:
            async for event in client.watch("pods", "default", resource_version=rv):
                pod = event.object
                name = pod.metadata.name
                if name not in running_at and is_running(pod):
                    running_at[name] = time.perf_counter()
                    seen.setdefault(name, asyncio.Event()).set()

        watcher = asyncio.ensure_future(watch())

        async def one(i: int) -> float:
            name = f"startup-{i}"
            done = seen.setdefault(name, asyncio.Event())
            await client.create(make_pod(name))
            created = time.perf_counter()
            await asyncio.wait_for(done.wait(), 120)
            return running_at[name] - created

        try:
            return await bounded(count, concurrency, one)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)


# ---- 3. the footprint -------------------------------------------------------------------------


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def proc_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def shrink_to(address: str, keep: int, total: int) -> None:
    async with Client(address) as client:
        for i in range(keep, total):
            await client.delete("pods", f"startup-{i}", "default")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            items, _ = await client.list("pods", "default", label_selector="bench=pod-startup")
            if len(items) <= keep:
                return
            await asyncio.sleep(0.5)
    raise RuntimeError("deleted pods did not go away")


def footprint(pid: int, seconds: float) -> tuple[float, float]:
    """(RSS MiB at the end, CPU in cores over `seconds`)."""
    cpu0, wall0 = proc_cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    cpu1, wall1 = proc_cpu_seconds(pid), time.monotonic()
    return proc_rss_mib(pid), (cpu1 - cpu0) / (wall1 - wall0)


# ---- the run ----------------------------------------------------------------------------------


def missing_tools(runtime: str) -> list[str]:
    tools: tuple[str, ...] = ("containerd", "runc", "ctr", "gcc", images.BUSYBOX_BINARY)
    if runtime == "docker":
        tools = ("dockerd", "docker-registry", "runc", "gcc", images.BUSYBOX_BINARY)
    out = [t for t in tools if shutil.which(t) is None and not Path(t).exists()]
    if not Path(CNI_BIN_DIR, "bridge").exists():
        out.append(f"{CNI_BIN_DIR}/bridge")
    return out


class RuntimeUnderTest:
    """The daemon for `--runtime` with its images loaded; how the kubelet and the floor reach it."""

    def __init__(self, name: str, base: Path, network: HostBridgeNetwork) -> None:
        self.name = name
        self.base = base
        self.network = network
        self.containerd = Containerd(
            ContainerdConfig(
                base=base / "containerd",
                sandbox_image=images.PAUSE_IMAGE,
                cni_conf_dir=str(network.conf_dir),
            )
        )
        self.registry = LocalRegistry(base / "registry")
        self.dockerd = Dockerd(
            DockerdConfig(base=base / "dockerd", registry_mirror=self.registry.address)
        )

    @property
    def endpoint(self) -> str:
        return self.containerd.endpoint if self.name == "containerd" else self.dockerd.endpoint

    def start(self) -> None:
        archives = images.build_all(self.base / "images", ("pause", "busybox"))
        if self.name == "containerd":
            self.containerd.start()
            for archive in archives:
                images.import_archive(archive, self.containerd.socket)
            return
        self.registry.start()
        for archive in archives:
            self.registry.push_archive(archive)
        self.dockerd.start()
        self.dockerd.preload_images([images.PAUSE_IMAGE, IMAGE], self.registry.address)

    def stop(self) -> None:
        if self.name == "containerd":
            self.containerd.stop()
        else:
            self.dockerd.stop()
            self.registry.stop()

    def new_runtime(self, log_root: Path, cni_cache: Path) -> ContainerRuntime:
        if self.name == "containerd":
            return CRIRuntime(self.endpoint, log_root=str(log_root))
        return DockerRuntime(
            self.endpoint,
            log_root=str(log_root),
            cni_conf_dir=str(self.network.conf_dir),
            cni_bin_dir=CNI_BIN_DIR,
            cni_cache_dir=str(cni_cache),
            pause_image=images.PAUSE_IMAGE,
        )

    def kubelet_args(self) -> tuple[str, ...]:
        args: tuple[str, ...] = ("--runtime-endpoint", self.endpoint)
        if self.name == "docker":
            args += ("--cni-conf-dir", str(self.network.conf_dir), "--cni-bin-dir", CNI_BIN_DIR)
            args += ("--pod-infra-container-image", images.PAUSE_IMAGE)
        return args


def run(args: argparse.Namespace, base: Path) -> None:
    network = HostBridgeNetwork(base / "cni" / "net.d", base / "cni" / "ipam", "10.98.0.0/24")
    daemon = RuntimeUnderTest(args.runtime, base, network)
    apiserver = ApiServerProcess(base / "apiserver")
    kubelet = KubeletProcess(
        NODE,
        apiserver,  # a node of its PKI, over mTLS, as on a cluster
        base / "logs",
        runtime=args.runtime,
        extra_args=(
            *daemon.kubelet_args(),
            "--pod-log-dir",
            str(base / "pod-logs"),
            "--root-dir",
            str(base / "kubelet"),
            "--node-ip",
            network.gateway,
            "--kubelet-port",
            "0",
        ),
    )
    try:
        network.setup()
        daemon.start()
        version = asyncio.run(_version(daemon.new_runtime(base / "floor-logs", base / "cni")))
        floor = asyncio.run(
            measure_floor(
                lambda: daemon.new_runtime(base / "floor-logs", base / "floor-cni"),
                args.pods,
                args.concurrency,
            )
        )
        apiserver.start()
        kubelet.start()
        startup = asyncio.run(measure_kubelet(apiserver.address, args.pods, args.concurrency))
        asyncio.run(shrink_to(apiserver.address, args.steady_pods, args.pods))
        assert kubelet.proc is not None
        rss, cpu = footprint(kubelet.proc.pid, args.sample_seconds)
    except BaseException:
        print(f"---- kubelet log\n{_tail(kubelet.log)}", file=sys.stderr)
        raise
    finally:
        kubelet.stop()
        apiserver.stop()
        daemon.stop()
        network.teardown()
    report(args, version, floor, startup, rss, cpu)


async def _version(runtime: ContainerRuntime) -> str:
    try:
        return str(await runtime.version())
    finally:
        await runtime.close()


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def report(
    args: argparse.Namespace,
    version: str,
    floor: list[float],
    startup: list[float],
    rss: float,
    cpu: float,
) -> None:
    p50, p99 = percentile(startup, 50), percentile(startup, 99)
    f50, f99 = percentile(floor, 50), percentile(floor, 99)
    print(
        f"pod startup: {args.pods} pods, concurrency {args.concurrency}, {version}, image present"
    )
    print(f"{'':<28}{'p50 s':>8}{'p99 s':>8}{'max s':>8}")
    adapter = "raw CRI, cri.py" if args.runtime == "containerd" else "docker.py + CNI"
    print(f"{'floor (' + adapter + ')':<28}{f50:>8.3f}{f99:>8.3f}{max(floor):>8.3f}")
    print(f"{'kubelet (create->Running)':<28}{p50:>8.3f}{p99:>8.3f}{max(startup):>8.3f}")
    print(f"{'kubelet - floor':<28}{p50 - f50:>+8.3f}{p99 - f99:>+8.3f}")
    print(f"kubelet with {args.steady_pods} pods: RSS {rss:.1f} MiB, CPU {cpu:.3f} core")
    ok_latency = p99 <= f99 + SLO_MARGIN
    ok_rss = rss <= RSS_TARGET_MIB
    ok_cpu = cpu <= CPU_TARGET
    verdict = "met" if ok_latency and ok_rss and ok_cpu else "NOT met"
    print(
        f"summary: pod startup p50 {p50:.3f}s p99 {p99:.3f}s vs floor p99 {f99:.3f}s "
        f"(+{p99 - f99:.3f}s, target +{SLO_MARGIN}s {'ok' if ok_latency else 'MISSED'}); "
        f"kubelet {rss:.1f} MiB {'ok' if ok_rss else 'MISSED'}, {cpu:.3f} core "
        f"{'ok' if ok_cpu else 'MISSED'} with {args.steady_pods} pods; targets {verdict}"
    )


def main() -> None:
    if "--local-cluster" in sys.argv[1:]:
        from bench.pod_startup_cluster import main as cluster_main

        cluster_main(sys.argv[1:])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runtime", default="containerd", choices=["containerd", "docker"])
    ap.add_argument(
        "--local-cluster",
        action="store_true",
        help="measure a `tinykube up` cluster instead (see bench/pod_startup_cluster.py --help)",
    )
    ap.add_argument("--pods", type=int, default=30, help="pods started in each run")
    ap.add_argument("--concurrency", type=int, default=1, help="pods starting at once")
    ap.add_argument("--steady-pods", type=int, default=20, help="pods kept for the footprint")
    ap.add_argument("--sample-seconds", type=float, default=10.0, help="footprint sampling")
    ap.add_argument("--workdir", default="", help="keep logs here (default: a temporary dir)")
    args = ap.parse_args()
    if args.steady_pods > args.pods or args.pods < 1 or args.concurrency < 1:
        ap.error("need 1 <= --steady-pods <= --pods and --concurrency >= 1")
    if os.geteuid() != 0:
        sys.exit("pod_startup needs root (containerd or dockerd, network namespaces)")
    missing = missing_tools(args.runtime)
    if missing:
        sys.exit("missing: " + ", ".join(missing) + " (sudo make system-deps)")
    if args.workdir:
        run(args, Path(args.workdir))
        return
    with tempfile.TemporaryDirectory(prefix="tinykube-bench-") as tmp:
        run(args, Path(tmp))


if __name__ == "__main__":
    main()
