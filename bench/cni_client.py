"""The CNI plugin's own cost: the thin client and the agent against the full plugin, same run.

    sudo .venv/bin/python bench/cni_client.py [--quick] [--pods 20] [--rounds 20]

What containerd pays per sandbox for the network step, measured three ways in
one run, beside the load average (the machine is shared; read the ratios):

1. start: `CNI_COMMAND=VERSION`, answered by the executable alone -- the thin
   client (`python -IS`, stdlib only) against the full plugin (`tinykube-cni`,
   the console script) -- wall time and the CPU time of the child (user+sys),
   median of --rounds runs. This is the start-up each call pays.
2. serial: ADD then DEL of one pod, --rounds times, in a node namespace the
   script makes: through the thin client and an agent's CNI server
   (netplugin/cni/server.py, in the node namespace as the agent runs), and
   through the full plugin. Median and worst, per ADD and per DEL.
3. burst: --pods ADDs started at once (a pod burst on one node), wall time
   until the last answered, and the CPU all the processes used (children's
   rusage plus the server's /proc/PID/stat) -- then the DELs.

Needs root (namespaces) for 2 and 3; without root only 1 runs. Everything it
makes (namespaces n<pid>-*, a temporary dir, the server's socket) is removed
at the end, also on failure. `--quick`: 5 rounds, 10 pods.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netplugin.cni.install import thin_client_script
from netplugin.cni.server import socket_path

FULL = Path(sys.executable).parent / "tinykube-cni"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def child_cpu() -> float:
    """CPU seconds of every child reaped so far (the plugin processes)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def env(command: str, container: str = "", netns: str = "", bin_dir: str = "") -> dict[str, str]:
    out = {"PATH": os.environ.get("PATH", ""), "CNI_COMMAND": command, "CNI_IFNAME": "eth0"}
    if container:
        out["CNI_CONTAINERID"] = container
    if netns:
        out["CNI_NETNS"] = netns
    if bin_dir:
        out["CNI_PATH"] = bin_dir
    return out


def start_cost(binary: Path, rounds: int) -> tuple[float, float]:
    """Median wall and CPU seconds of VERSION."""
    walls, cpus = [], []
    for _ in range(rounds):
        cpu0, t0 = child_cpu(), time.perf_counter()
        proc = subprocess.run([str(binary)], env=env("VERSION"), capture_output=True, check=True)
        walls.append(time.perf_counter() - t0)
        cpus.append(child_cpu() - cpu0)
        assert json.loads(proc.stdout)["cniVersion"]
    return statistics.median(walls), statistics.median(cpus)


@contextmanager
def node_namespace(name: str) -> Iterator[list[str]]:
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield ["nsenter", f"--net=/run/netns/{name}", "--"]
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@contextmanager
def pod_namespaces(prefix: str, count: int) -> Iterator[list[str]]:
    names = [f"{prefix}-{i}" for i in range(count)]
    try:
        for name in names:
            subprocess.run(["ip", "netns", "add", name], check=True)
        yield [f"/run/netns/{n}" for n in names]
    finally:
        for name in names:
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


@contextmanager
def cni_server(prefix: list[str], path: str) -> Iterator[int]:
    argv = [*prefix, sys.executable, "-m", "netplugin.cni.server", "--socket", path]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline().split()
        assert ready[:1] == [b"ready"], "the CNI server did not start"
        yield int(ready[1])
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def cni_call(
    prefix: list[str], binary: Path, conf: bytes, command: str, container: str, netns: str
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [*prefix, str(binary)],
        env=env(command, container, netns, str(binary.parent)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None
    proc.stdin.write(conf)
    proc.stdin.close()
    return proc


def wait_ok(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdout is not None
    out = proc.stdout.read()
    if proc.wait(timeout=120) != 0:
        raise RuntimeError(f"CNI call failed: {out.decode()}")


def serial(
    prefix: list[str], binary: Path, conf: bytes, pods: list[str], rounds: int
) -> tuple[list[float], list[float]]:
    adds: list[float] = []
    dels: list[float] = []
    for i in range(rounds):
        netns = pods[i % len(pods)]
        for command, into in (("ADD", adds), ("DEL", dels)):
            t0 = time.perf_counter()
            wait_ok(cni_call(prefix, binary, conf, command, f"s{i}", netns))
            into.append(time.perf_counter() - t0)
    return adds, dels


def burst(
    prefix: list[str], binary: Path, conf: bytes, pods: list[str], cpu: Callable[[], float]
) -> tuple[float, float]:
    """Wall seconds for all ADDs at once and the CPU seconds they cost; then DEL all."""
    cpu0, t0 = cpu(), time.perf_counter()
    procs = [cni_call(prefix, binary, conf, "ADD", f"b{i}", p) for i, p in enumerate(pods)]
    for proc in procs:
        wait_ok(proc)
    wall, used = time.perf_counter() - t0, cpu() - cpu0
    for proc in [cni_call(prefix, binary, conf, "DEL", f"b{i}", p) for i, p in enumerate(pods)]:
        wait_ok(proc)
    return wall, used


def row(label: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    return f"  {label:<22} median {statistics.median(ms):7.1f} ms   max {ms[-1]:7.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5 rounds, 10 pods")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--pods", type=int, default=20)
    args = ap.parse_args()
    rounds, pods = (5, 10) if args.quick else (args.rounds, args.pods)
    with tempfile.TemporaryDirectory(prefix="tkcni-bench-") as tmp:
        thin = Path(tmp) / "bin" / "tinykube-cni"
        thin.parent.mkdir()
        thin.write_text(thin_client_script())
        thin.chmod(0o755)
        (thin.parent / "tinykube-cni-full").symlink_to(FULL)
        print(f"CNI plugin start (VERSION), median of {rounds}   [{load()}]")
        t_wall, t_cpu = start_cost(thin, rounds)
        f_wall, f_cpu = start_cost(FULL, rounds)
        print(f"  thin client            {t_wall * 1000:7.1f} ms wall  {t_cpu * 1000:6.1f} ms CPU")
        print(f"  full plugin            {f_wall * 1000:7.1f} ms wall  {f_cpu * 1000:6.1f} ms CPU")
        print(f"  full / thin            {f_wall / t_wall:7.1f} x wall  {f_cpu / t_cpu:6.1f} x CPU")
        if os.geteuid() != 0:
            print("(not root: no ADD/DEL measured)")
            return
        name = f"n{os.getpid()}"
        data = Path(tmp) / "data"
        path = socket_path(str(data))
        base = {"cniVersion": "1.0.0", "name": "tinykube", "type": "tinykube-cni"}
        conf = {**base, "subnet": "10.244.1.0/24", "mtu": 1450, "dataDir": str(data)}
        thin_conf = json.dumps({**conf, "agentSocket": path}).encode()
        full_conf = json.dumps(conf).encode()
        with node_namespace(name) as prefix, pod_namespaces(name, pods) as netns:
            with cni_server(prefix, path) as server_pid:
                print(f"ADD + DEL one pod at a time, {rounds} rounds   [{load()}]")
                adds, dels = serial(prefix, thin, thin_conf, netns, rounds)
                print(row("thin + agent ADD", adds) + "\n" + row("thin + agent DEL", dels))
                adds_f, dels_f = serial(prefix, FULL, full_conf, netns, rounds)
                print(row("full plugin ADD", adds_f) + "\n" + row("full plugin DEL", dels_f))
                ratio = statistics.median(adds_f) / statistics.median(adds)
                print(f"  full / thin ADD        {ratio:7.1f} x")
                print(f"burst: {pods} ADDs at once on one node   [{load()}]")
                both = lambda: child_cpu() + proc_cpu(server_pid)  # noqa: E731
                wall, cpu = burst(prefix, thin, thin_conf, netns, both)
                print(f"  thin + agent           {wall:7.2f} s wall  {cpu:6.2f} s CPU")
            wall_f, cpu_f = burst(prefix, FULL, full_conf, netns, child_cpu)
            print(f"  full plugin            {wall_f:7.2f} s wall  {cpu_f:6.2f} s CPU")
            print(f"  full / thin            {wall_f / wall:7.1f} x wall  {cpu_f / cpu:6.1f} x CPU")
        print(f"[{load()}]")


if __name__ == "__main__":
    main()
