"""Traced and untraced writes side by side in one run: `python bench/tracing_api.py
[--duration S] [--watchers 1,100] [--rate 200] [--seed N] [--control] [--json FILE]`.

bench/tracing_overhead.py first compared whole runs, tracing off against
tracing on. On a shared 2-core machine two runs of the *same* mode differ
by 20-30 % in their write p50 (the fsync of each commit, other work), far
more than tracing's few percent, so those comparisons could show neither
"met" nor "missed". This benchmark compares within one run instead:

    one API server with tracing on (every process's SDK configured, its
    exporter sending to the span store), one writer, one set of watchers;
    the writes of the run are split at random into two classes:

        traced    a command as the CLI makes one: a root span around the
                  write, `traceparent` on the call, the server stores the
                  trace-context annotation on the object (86 bytes more),
                  the span is exported to the server's span store
        untraced  the same write, outside any trace

Both classes meet the same fsyncs, the same other work and the same
watchers at the same moments, so the difference of their percentiles is
what a trace adds to one write: the client's root span (it is inside the
timed call, as a command's is), the header, the bigger object stored and
delivered to every watcher. What is shared by both classes -- the exporter
threads, the span store's calls -- is not in that difference; it shows as
CPU per write in the whole-run comparison, which tracing_overhead.py still
makes (`--tracing off|on` runs of bench/api_latency.py).

How a write is classed: writes go in pairs, a create then an update (as in
bench/api_latency.py, the update goes to the newest object of its class whose
create has returned); a pair is traced or not by a seeded coin (`--seed`), so
neither class falls on a fixed rhythm of the machine. The class is in the
object's name (`<run>-t-<n>`, `<run>-u-<n>`), which is how the watchers tell
the events apart.

What the method can resolve: `--control` runs the same split with *both*
classes untraced (an A/A test). Whatever differs between the classes then is
the noise of the comparison itself -- at 100 watchers the p99 is a handful
of event-loop stalls that catch writes of both classes at random -- and a
traced/untraced difference within that spread is not shown to be tracing's.

Worked example of the figure (illustrative): untraced p50 2.50 ms, traced
p50 2.58 ms -> overhead (2.58 - 2.50) / 2.50 = +3.2 %.

The last line is a one-line summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apimachinery import errors, tracecontext
from apimachinery.client import Client, retry_on_conflict
from bench.api_watch import ClassedLatencies, classed_watch_process
from bench.api_writer import NAMESPACE, _cm, connect, grant_writer, writer_kubeconfig
from bench.measure import percentile
from bench.tracing_mode import Commands, apply_mode, overhead_pct
from localcluster.processes import ApiServerProcess
from protos import core_pb2

CLASSES = ("traced", "untraced")


def plan(count: int, seed: int) -> list[bool]:
    """Which of `count` writes are traced: pairs (create, update) share one coin."""
    rng = random.Random(seed)
    coins = [rng.random() < 0.5 for _ in range((count + 1) // 2)]
    return [coins[i // 2] for i in range(count)]


def name_of(run: str, traced: bool, pair: int) -> str:
    return f"{run}-{'t' if traced else 'u'}-{pair}"


def class_of(name: str) -> str:
    """The class a written object's name says (see `name_of`)."""
    tag = name.rsplit("-", 2)[-2] if name.count("-") >= 2 else ""
    return {"t": "traced", "u": "untraced"}.get(tag, "")


async def _open_loop(
    writer: str, rate: int, duration: float, run: str, seed: int, control: bool = False
) -> ClassedLatencies:
    out: ClassedLatencies = {c: [] for c in CLASSES}
    async with connect(writer, retries=False) as c:
        commands = Commands(c)
        if not commands.on:
            raise SystemExit("tracing_api: tracing is off in this process (OTEL_SDK_DISABLED?)")
        traced = plan(int(rate * duration), seed)
        interval = 1.0 / rate

        made: dict[bool, list[str]] = {True: [], False: []}  # created, by class
        refused = [0]

        async def write(i: int) -> None:
            # An update goes to the newest object of its class whose create has returned
            # (open loop: the pair's own create may still be in flight), as in api_latency.
            create = i % 2 == 0 or not made[traced[i]]
            name = name_of(run, traced[i], i // 2) + ("" if i % 2 == 0 else "u")
            name = name if create else made[traced[i]][-1]
            cm = _cm(name, run)
            s = time.perf_counter()
            try:
                if traced[i] and not control:
                    with commands.command("write", f"write configmap {name}"):
                        await _one(c, cm, create=create)
                else:
                    await _one(c, cm, create=create)
            except errors.TooManyRequests:  # the server's in-flight or loop-lag limit
                refused[0] += 1
                return
            out["traced" if traced[i] else "untraced"].append(time.perf_counter() - s)
            if create:
                made[traced[i]].append(name)

        tasks = []
        t0 = time.perf_counter()
        for i in range(len(traced)):
            delay = t0 + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(write(i)))
        await asyncio.gather(*tasks)
        commands.finish()
    if refused[0]:  # not retried (as api_latency's writers): left out of both classes
        print(f"  {refused[0]} writes refused with 429 TooManyRequests")
    return out


async def _one(c: Client, cm: core_pb2.ConfigMap, *, create: bool) -> None:
    if create:
        await c.create(cm)
    else:  # the object the pair's create made, unconditionally (no resourceVersion)
        await retry_on_conflict(lambda: c.update(cm))


async def _check(address: str, run: str, traced: list[bool]) -> str:
    """What is wrong with the run's objects' trace contexts ("" when nothing is): the first
    object of each class is looked at."""
    async with connect(address) as c:
        for cls in (True, False):
            pair = traced.index(cls) // 2 if cls in traced else -1
            if pair < 0:
                return f"no {'traced' if cls else 'untraced'} write in the run"
            obj = await c.get("configmaps", name_of(run, cls, pair), NAMESPACE)
            if cls and tracecontext.of_object(obj) is None:
                return "a traced write's object has no trace-context annotation"
            if not cls and tracecontext.of_object(obj) is not None:
                return "an untraced write's object carries a trace context"
    return ""


def run_case(
    address: str,
    writer: str,
    rate: int,
    watchers: int,
    duration: float,
    seed: int,
    control: bool = False,
) -> dict[str, ClassedLatencies]:
    """One row: write and watch-delivery latencies (seconds) by class."""
    run = f"p{watchers}w{int(time.time() * 1000) % 100000}"
    count = int(rate * duration)
    ctx = mp.get_context("spawn")
    ready, expected = ctx.Event(), ctx.Value("i", count)
    parent, child = ctx.Pipe()
    proc = ctx.Process(
        target=classed_watch_process,
        args=(address, watchers, run, expected, ready, child, class_of),
    )
    proc.start()
    ready.wait(60)
    writes = asyncio.run(_open_loop(writer, rate, duration, run, seed, control))
    expected.value = sum(len(v) for v in writes.values())  # the watchers wait for no more
    watch: ClassedLatencies = parent.recv() if parent.poll(150) else {c: [] for c in CLASSES}
    proc.join(10)
    problem = "" if control else asyncio.run(_check(address, run, plan(count, seed)))
    if problem:
        raise SystemExit(f"tracing_api: {problem}")
    return {"write": writes, "watch": watch}


def line(what: str, samples: ClassedLatencies) -> str:
    t, u = samples["traced"], samples["untraced"]
    if not t or not u:
        return f"{what:<28} no samples (traced {len(t)}, untraced {len(u)})"
    tp50, tp99, up50, up99 = (percentile(v, q) for v in (t, u) for q in (50, 99))
    return (
        f"{what:<28} untraced p50 {up50 * 1e3:.2f} p99 {up99 * 1e3:.2f} ms   "
        f"traced p50 {tp50 * 1e3:.2f} p99 {tp99 * 1e3:.2f} ms   "
        f"overhead p50 {overhead_pct(tp50, up50):+.1f} %  p99 {overhead_pct(tp99, up99):+.1f} %"
        f"   ({len(t)} / {len(u)})"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per row")
    ap.add_argument("--rate", type=int, default=200, help="writes/s, open loop")
    ap.add_argument("--watchers", default="1,100", help="rows: watchers on the kind")
    ap.add_argument("--seed", type=int, default=1, help="the coin that classes the writes")
    ap.add_argument(
        "--control",
        action="store_true",
        help="trace neither class (an A/A test: the comparison's own noise)",
    )
    ap.add_argument("--json", default="", help="also write every latency measured here")
    args = ap.parse_args(argv)
    try:
        args.watchers = [int(w) for w in args.watchers.split(",") if w.strip()]
    except ValueError:
        ap.error(f"--watchers: not a comma-separated list of numbers: {args.watchers!r}")
    if args.duration <= 0 or args.rate < 1 or not args.watchers or min(args.watchers) < 1:
        ap.error("need --duration > 0, --rate >= 1 and --watchers of numbers >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    args = parse_args(argv)
    apply_mode("on")  # every process it starts configures its exporter
    load = os.getloadavg()[0]
    what = "control: neither class traced" if args.control else "tracing on"
    print(f"load {load:.2f}; {args.rate} writes/s for {args.duration:g} s per row, {what}")
    out: dict[str, object] = {"load": load, "control": args.control, "rows": []}
    with tempfile.TemporaryDirectory(prefix="tinykube-tracing-api-") as tmp:
        srv = ApiServerProcess(Path(tmp) / "data")
        srv.start()
        try:
            time.sleep(2.0)
            writer = str(writer_kubeconfig(srv))
            asyncio.run(grant_writer(srv.address, writer))
            parts = []
            for w in args.watchers:
                row = run_case(
                    srv.address, writer, args.rate, w, args.duration, args.seed, args.control
                )
                out["rows"].append({"watchers": w, **row})  # type: ignore[attr-defined]
                for what in ("write", "watch"):
                    text = line(f"{what}, {w} watcher{'s' * (w > 1)}", row[what])
                    print(text)
                    parts.append(text.split("overhead ")[-1].split("   (")[0])
        finally:
            srv.stop()
    out["load_after"] = os.getloadavg()[0]
    if args.json:
        Path(args.json).write_text(json.dumps(out))
    label = "control (both untraced)" if args.control else "traced vs untraced writes"
    print(f"summary: {label} in one run: {'; '.join(parts)}")


if __name__ == "__main__":
    main()
