"""API server latency and throughput: `python bench/api_latency.py [--duration S] [--quick]
[--tracing on|off] [--rates 20,200] [--watchers 1,100] [--max-mutating-inflight N]
[--max-loop-lag-ms MS] [--json FILE]`.

What is measured, against a real `tinykube apiserver` process on loopback with
its SQLite store in a temporary directory (durable commits: every write is
fsynced before it is acknowledged):

* mutating latency: p50/p99 of single-object creates and updates, issued open
  loop at a fixed rate (20, 200, 1000 writes/s), alternating create / update;
* watch delivery latency: p50/p99 from the moment a write is *sent* to the
  moment each watcher receives its event, with 1 and 100 watchers on the kind
  (watchers run in a separate process so they do not steal the writer's loop);
* saturation: writes/s with 32 closed-loop writers;
* memory: the server's RSS when idle after start, and after the runs.

`--storage etcd` runs the same cases with the server on a one-member etcd
(TLS, loopback, started here: localcluster/etcdcluster.single_member) instead
of SQLite; docs/performance.md puts the two side by side.

The writers are a user of their own, `bench-writer` (bench/api_writer.py): a
client certificate the bench signs with the server's CA, allowed by a Role to
create and update ConfigMaps in `default`, over mutual TLS on the API port.
Not being in system:masters, they meet the server's in-flight limit
(`--max-mutating-inflight N`, passed to the server as
`--max-mutating-requests-inflight`) and its loop-lag trigger (`--max-loop-lag-ms
MS`, passed as is, 0 turns it off; apiserver/inflight.py), and do not retry:
a write refused with 429 TooManyRequests is counted in `refused`, apart from
`failed`, and the latency percentiles are over the accepted writes. The
watchers and the saturation writers are the local admin over the server's unix
socket (no TLS), or with `--tls` the admin over mutual TLS on the API port.
bench/http_latency.py runs the same cases over the HTTP API.

`--tracing on` makes every write a traced command, as the CLI's are (a root
span whose traceparent the server stores on the object, exported to the
server's span store); `off` (the default) sets OTEL_SDK_DISABLED=true for the
server, the watchers and the writers (bench/tracing_mode.py).
bench/tracing_overhead.py runs both and compares them; `--json` writes every
latency measured, for it.

Open loop means a write is started on schedule whether or not earlier ones
have returned, so a slow server shows up as latency instead of quietly
lowering the rate (the coordinated-omission trap). If the writer cannot even
start writes on schedule, the achieved rate is printed beside the target.

The last line is a one-line summary. Targets (docs/performance.md): mutating
p99 <= 10 ms at 200 writes/s with 100 watchers; idle RSS <= 80 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apimachinery import errors
from apimachinery.client import Client, retry_on_conflict
from apiserver.inflight import DEFAULT_MAX_LOOP_LAG_MS
from bench.api_watch import ALL, classed_watch_process, one_class
from bench.api_writer import NAMESPACE, _cm, connect, grant_writer, writer_kubeconfig
from bench.tracing_mode import Commands, add_option, apply_mode, evidence, verdict
from localcluster.etcdcluster import single_member
from localcluster.processes import ApiServerProcess

# The server's --max-mutating-requests-inflight for the run (module docstring, docs/performance.md).
DEFAULT_MAX_MUTATING_INFLIGHT = 200


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# ----------------------------------------------------------------------------- watchers


# They run in a process of their own: bench/api_watch.py (one class: every event).


# ----------------------------------------------------------------------------- writers


async def _open_loop(address: str, rate: int, duration: float, run: str) -> dict[str, object]:
    creates: list[float] = []
    updates: list[float] = []
    names: list[str] = []
    failed = refused = 0
    async with connect(address, retries=False) as c:
        commands = Commands(c)
        count = int(rate * duration)
        interval = 1.0 / rate
        tasks = []
        t0 = time.perf_counter()

        async def one(i: int) -> None:
            nonlocal failed, refused
            try:
                await write(i)
            except errors.TooManyRequests:
                refused += 1  # the server's in-flight limit: refused at once, not retried
            except errors.StatusError:
                failed += 1  # e.g. the 30 s client deadline under overload

        async def write(i: int) -> None:
            if i % 2 == 0 or not names:
                name = f"{run}-{i}"
                s = time.perf_counter()
                with commands.command("create", f"create configmap {name}"):
                    await c.create(_cm(name, run))
                creates.append(time.perf_counter() - s)
                names.append(name)
            else:
                # Each update goes to its own object (the one created just before), so the
                # figure is the cost of a write, not of many clients fighting over one key.
                cm = _cm(names[-1], run)
                s = time.perf_counter()
                with commands.command("replace", f"replace configmap {names[-1]}"):
                    await retry_on_conflict(lambda: c.update(cm))  # unconditional: no RV
                updates.append(time.perf_counter() - s)

        for i in range(count):
            delay = t0 + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(i)))
        issued = time.perf_counter() - t0
        await asyncio.gather(*tasks)
        commands.finish()
    return {
        "creates": creates,
        "updates": updates,
        "failed": failed,
        "refused": refused,
        "achieved": count / issued if issued else 0,
    }


async def _saturate(address: str, writers: int, duration: float) -> float:
    done = 0
    stop = time.perf_counter() + duration

    async def loop(i: int, c: Client) -> None:
        nonlocal done
        n = 0
        while time.perf_counter() < stop:
            with commands.command("create", f"create configmap sat-{i}-{n}"):
                await c.create(_cm(f"sat-{i}-{n}", "sat"))
            n += 1
            done += 1

    clients = [connect(address) for _ in range(4)]
    commands = Commands(clients[0])
    t0 = time.perf_counter()
    await asyncio.gather(*(loop(i, clients[i % 4]) for i in range(writers)))
    elapsed = time.perf_counter() - t0
    commands.finish()
    for c in clients:
        await c.close()
    return done / elapsed


async def _check_tracing(address: str, mode: str) -> dict[str, object]:
    """Is tracing what `mode` says? (The first saturation write; bench/tracing_mode.py.)"""
    async with connect(address) as c:
        seen = await evidence(c, "configmaps", "sat-0-0", NAMESPACE)
    problem = verdict(mode, seen)
    print(f"tracing {mode}: {seen['traces']} traces held, {problem or 'as it should be'}")
    if problem:
        raise SystemExit(f"api_latency: {problem}")
    return seen


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, every thread) a process has used: /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_case(
    address: str, writer: str, rate: int, watchers: int, duration: float, server_pid: int = 0
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """One row: its figures, and the latencies (seconds) they were computed from.

    Also the CPU seconds the server and this writer (its exporter thread included)
    spent on the row's writes: with the latencies of a shared machine noisy, the
    CPU a write costs is the steadier figure to compare (bench/tracing_overhead.py)."""
    run = f"r{rate}w{watchers}t{int(time.time() * 1000) % 100000}"
    count = int(rate * duration)
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    expected = ctx.Value("i", count)
    parent, child = ctx.Pipe()
    args = (address, watchers, run, expected, ready, child)
    proc = ctx.Process(target=classed_watch_process, args=(*args, one_class))
    proc.start()
    ready.wait(60)
    server0, client0 = cpu_s(server_pid) if server_pid else 0.0, time.process_time()
    result = asyncio.run(_open_loop(writer, rate, duration, run))
    client_cpu = time.process_time() - client0
    creates = result["creates"]
    updates = result["updates"]
    assert isinstance(creates, list) and isinstance(updates, list)
    expected.value = accepted = len(creates) + len(updates)
    watch_lat: list[float] = parent.recv().get(ALL, []) if parent.poll(150) else []
    server_cpu = cpu_s(server_pid) - server0 if server_pid else 0.0
    proc.join(10)
    row = {
        "rate": rate,
        "achieved": float(result["achieved"]),  # type: ignore[arg-type]
        "watchers": watchers,
        "create_p50": pct(creates, 50) * 1000,
        "create_p99": pct(creates, 99) * 1000,
        "update_p50": pct(updates, 50) * 1000,
        "update_p99": pct(updates, 99) * 1000,
        "watch_p50": pct(watch_lat, 50) * 1000,
        "watch_p99": pct(watch_lat, 99) * 1000,
        "delivered": len(watch_lat) / max(1, accepted * watchers),
        "failed": float(result["failed"]),  # type: ignore[arg-type]
        "refused": float(result["refused"]),  # type: ignore[arg-type]
        "server_cpu_s": server_cpu,
        "client_cpu_s": client_cpu,
        "writes": float(count),
    }
    return row, {"creates": creates, "updates": updates, "watch": watch_lat}


def _print_row(row: dict[str, float]) -> None:
    print(
        f"{row['rate']:>7.0f} {row['achieved']:>9.0f} {row['watchers']:>8.0f} "
        f"{row['create_p50']:>8.2f}ms {row['create_p99']:>5.2f}ms "
        f"{row['update_p50']:>8.2f}ms {row['update_p99']:>5.2f}ms "
        f"{row['watch_p50']:>7.2f}ms {row['watch_p99']:>5.2f}ms "
        f"{row['delivered']:>8.0%} {row['failed']:>6.0f} {row['refused']:>7.0f}",
        flush=True,
    )


def _numbers(text: str) -> list[int]:
    """`--rates 20,200` -> [20, 200]; a clear error for anything else."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of numbers: {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"need numbers >= 1: {text!r}")
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per rate")
    ap.add_argument("--quick", action="store_true", help="rates 20 and 200 only, 2 s each")
    ap.add_argument(
        "--tls", action="store_true", help="over the TLS port (admin.conf), not the unix socket"
    )
    ap.add_argument(
        "--storage",
        choices=("sqlite", "etcd"),
        default="sqlite",
        help="the server's store: SQLite in its data directory, or a one-member etcd started here",
    )
    ap.add_argument("--rates", type=_numbers, help="writes/s of the rows (default 20,200,1000)")
    ap.add_argument("--watchers", type=_numbers, default=[1, 100], help="default 1,100")
    ap.add_argument("--json", default="", help="also write every latency measured to this file")
    ap.add_argument(
        "--max-mutating-inflight",
        type=int,
        default=DEFAULT_MAX_MUTATING_INFLIGHT,
        help="the server's --max-mutating-requests-inflight (0: no limit; default %(default)s)",
    )
    ap.add_argument(
        "--max-loop-lag-ms",
        type=int,
        default=DEFAULT_MAX_LOOP_LAG_MS,
        help="the server's --max-loop-lag-ms (0: off; default %(default)s, the server's own)",
    )
    ap.add_argument(
        "--profile-server",
        default="",
        metavar="FILE",
        help="sample the server's CPU by Python stack into FILE (bench/server_profile)",
    )
    add_option(ap)
    args = ap.parse_args(argv)
    if args.rates is None:
        args.rates = [20, 200] if args.quick else [20, 200, 1000]
    if args.quick:
        args.duration = 2.0
    if args.duration <= 0:
        ap.error("--duration must be positive")
    if args.max_mutating_inflight < 0:
        ap.error("--max-mutating-inflight must be a non-negative integer")
    if args.max_loop_lag_ms < 0:
        ap.error("--max-loop-lag-ms must be a non-negative integer")
    return args


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    args = parse_args()
    apply_mode(args.tracing)  # before the server, the watchers and the writers start
    if args.profile_server:  # the server imports bench/server_profile/sitecustomize.py
        here = str(Path(__file__).resolve().parent / "server_profile")
        os.environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, (here, os.environ.get("PYTHONPATH")))
        )
        os.environ["TINYKUBE_SERVER_PROFILE"] = str(Path(args.profile_server).resolve())
    out: dict[str, object] = {"tracing": args.tracing, "load": list(os.getloadavg()), "rows": []}
    with tempfile.TemporaryDirectory(prefix="tinykube-bench-") as tmp, contextlib.ExitStack() as st:
        extra: tuple[str, ...] = ()
        if args.storage == "etcd":
            etcd = st.enter_context(single_member(Path(tmp) / "etcd"))
            extra = ("--storage", etcd.storage_spec())
        print(
            f"storage: {args.storage}, max mutating in flight: {args.max_mutating_inflight},"
            f" max loop lag: {args.max_loop_lag_ms} ms"
        )
        extra += ("--max-mutating-requests-inflight", str(args.max_mutating_inflight))
        extra += ("--max-loop-lag-ms", str(args.max_loop_lag_ms))
        srv = ApiServerProcess(Path(tmp) / "data", extra_args=extra)
        srv.start()
        try:
            assert srv.proc is not None
            time.sleep(2.0)
            address = str(srv.admin_kubeconfig) if args.tls else srv.address
            idle = rss_mb(srv.proc.pid)
            writer = str(writer_kubeconfig(srv))
            asyncio.run(grant_writer(srv.address, writer))
            print(f"apiserver idle RSS: {idle:.1f} MB (tracing {args.tracing})")
            header = (
                f"{'rate/s':>7} {'achieved':>9} {'watchers':>8} {'create p50':>10} "
                f"{'p99':>7} {'update p50':>10} {'p99':>7} {'watch p50':>9} {'p99':>7} "
                f"{'delivered':>9} {'failed':>6} {'refused':>7}"
            )
            print(header)
            rows = []
            for watchers in args.watchers:
                for rate in args.rates:
                    pid = srv.proc.pid
                    row, samples = run_case(address, writer, rate, watchers, args.duration, pid)
                    rows.append(row)
                    out["rows"].append({**row, **samples})  # type: ignore[attr-defined]
                    _print_row(row)
            sat = asyncio.run(_saturate(address, 32, args.duration))
            print(f"saturation: {sat:.0f} writes/s (32 closed-loop writers)")
            loaded = rss_mb(srv.proc.pid)
            print(f"apiserver RSS after the runs: {loaded:.1f} MB")
            out.update(saturation=sat, idle_rss=idle, rss_after=loaded)
            out["evidence"] = asyncio.run(_check_tracing(address, args.tracing))
            out["load_after"] = list(os.getloadavg())
            if args.json:
                Path(args.json).write_text(json.dumps(out))
            _summary(rows, sat, idle)
        finally:
            srv.stop()


def _summary(rows: list[dict[str, float]], sat: float, idle: float) -> None:
    target = next((r for r in rows if r["rate"] == 200 and r["watchers"] == 100), rows[-1])
    worst = max(target["create_p99"], target["update_p99"])
    watch_median = statistics.median([r["watch_p50"] for r in rows])
    print(
        f"summary: mutating p99 at {target['rate']:.0f} writes/s with {target['watchers']:.0f} "
        f"watchers {worst:.2f} ms (target 10), saturation {sat:.0f} writes/s, "
        f"idle RSS {idle:.1f} MB (target 80), median watch delivery {watch_median:.2f} ms"
    )


if __name__ == "__main__":
    main()
