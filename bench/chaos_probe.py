"""The chaos run's Service client: one HTTP GET every 100 ms, from inside a node's namespace.

bench/chaos.py starts it as `nsenter --net=/run/netns/tk-<cluster>-node1 --
python -m bench.chaos_probe --url http://CLUSTER_IP/`, so it reaches the
Service as a pod's neighbour on that node does: through the ClusterIP's DNAT
rules that the node's network agent (our kube-proxy) writes. It runs in its
own process so its timing does not depend on the busy parent.

Each tick (a fixed grid: tick N is due at start + N x interval, whatever the
previous polls are doing) starts a poll of its own, so a poll that hangs
never hides the ones after it. A poll is what an ordinary HTTP client with a
connect timeout does:

    connect (0.3 s timeout) -> GET / -> a 200 whose page names the pod
    a failed connect (refused, or no SYN-ACK: an endpoint on a cut-off node)
    is tried again on a new connection -- so a new conntrack entry and a new
    random endpoint -- while the poll's 1-s budget lasts

and prints one line when it ends, `TICK OK ATTEMPTS MS`:

    17 1 1 3.2          tick 17 answered on the first connection in 3.2 ms
    18 1 2 305.9        answered on the second (the first endpoint did not answer)
    19 0 3 1000.0       not answered within the budget

The parent counts `OK` for availability and `ATTEMPTS == 1` for the
first-try figure. The probe stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from urllib.parse import urlsplit

CONNECT_TIMEOUT = 0.3


async def attempt(host: str, port: int, path: str, budget: float) -> bool | None:
    """One connection: True = answered, False = a wrong answer, None = no connection."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), min(CONNECT_TIMEOUT, budget)
        )
    except (OSError, asyncio.TimeoutError):
        return None
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        body = await asyncio.wait_for(reader.read(-1), budget)
        return body.startswith(b"HTTP/1.") and b" 200 " in body[:16]
    except (OSError, asyncio.TimeoutError):
        return False
    finally:
        writer.close()


async def poll(tick: int, host: str, port: int, path: str, budget: float) -> None:
    started = time.monotonic()
    attempts, ok = 0, False
    while True:
        left = budget - (time.monotonic() - started)
        if left <= 0.01:
            break
        attempts += 1
        result = await attempt(host, port, path, left)
        if result is not None:
            ok = result
            break
    ms = (time.monotonic() - started) * 1000
    sys.stdout.write(f"{tick} {int(ok)} {attempts} {ms:.1f}\n")
    sys.stdout.flush()


async def main(url: str, interval: float, budget: float) -> None:
    parts = urlsplit(url)
    host, port, path = parts.hostname or "", parts.port or 80, parts.path or "/"
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    start = time.monotonic()
    tasks: set[asyncio.Task[None]] = set()
    tick = 0
    while not stop.is_set():
        task = asyncio.create_task(poll(tick, host, port, path, budget))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        tick += 1
        delay = start + tick * interval - time.monotonic()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), max(delay, 0))
    if tasks:
        await asyncio.wait(tasks, timeout=budget + 1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--budget", type=float, default=1.0)
    args = parser.parse_args()
    asyncio.run(main(args.url, args.interval, args.budget))
