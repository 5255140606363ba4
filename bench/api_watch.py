"""Watchers for the API benchmarks, in a process of their own, with latencies by class.

A benchmark's watchers must not share the writer's event loop (they would
steal its turns and bend the write latencies), so they run in a process
started with `multiprocessing`'s spawn context. `classed_watch_process` opens
`watchers` label-selector watches on ConfigMaps (ten per connection, as
bench/api_latency.py's do), and for each ADDED or MODIFIED event records the
delivery latency -- from the moment the write was *sent* (the object's
`data["t"]`, the writer's wall clock) to the moment the event arrived -- under
the class `classify(object name)` gives it. Events whose class is "" are
counted but not recorded.

The parent hands in two shared values: `expected`, the number of events each
watcher waits for (the writes issued, lowered to those accepted once the
writer is done), and `ready`, set once every stream is open, so no write
happens before the watchers can see it. The result -- {class: [seconds]} --
comes back through the pipe `out`; a failure prints itself and sends what
was gathered, so the parent never waits for ever.

    classify = bench.tracing_api.class_of     # "<run>-t-<n>" -> "traced"
    proc = ctx.Process(target=classed_watch_process,
                       args=(address, 100, run, expected, ready, child, classify))
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable

from bench.api_writer import NAMESPACE, connect

ClassedLatencies = dict[str, list[float]]
ALL = "all"


def one_class(name: str) -> str:
    """Every event in one class (bench/api_latency.py's watchers)."""
    return ALL


def classed_watch_process(
    address: str,
    watchers: int,
    run: str,
    expected: object,
    ready: object,
    out: object,
    classify: Callable[[str], str],
) -> None:
    """Runs in its own process (see the module docstring)."""
    latencies: ClassedLatencies = {}

    async def main() -> None:
        clients = [connect(address) for _ in range((watchers + 9) // 10)]
        try:
            start = (await clients[0].list("configmaps", NAMESPACE))[1]
            seen = [0] * watchers

            async def one(i: int) -> None:
                stream = clients[i % len(clients)].watch(
                    "configmaps", NAMESPACE, resource_version=start, label_selector=f"run={run}"
                )
                async for ev in stream:
                    now = time.time()
                    cls = classify(ev.object.metadata.name)
                    if ev.type in ("ADDED", "MODIFIED") and cls:
                        latencies.setdefault(cls, []).append(now - float(ev.object.data["t"]))
                    seen[i] += 1
                    if seen[i] >= expected.value:  # type: ignore[attr-defined]
                        return

            tasks = [asyncio.ensure_future(one(i)) for i in range(watchers)]
            await asyncio.sleep(0.5)  # let every stream open before the writes begin
            ready.set()  # type: ignore[attr-defined]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not all(t.done() for t in tasks):
                await asyncio.wait(tasks, timeout=0.1)
                if all(n >= expected.value for n in seen):  # type: ignore[attr-defined]
                    break  # `expected` was lowered to the writes accepted: none is missing
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for c in clients:
                await c.close()

    try:
        asyncio.run(main())
    except Exception as exc:  # report, never leave the parent waiting
        print(f"watcher process failed: {exc!r}", file=sys.stderr)
    out.send(latencies)  # type: ignore[attr-defined]
