"""The HTTP API's latency, beside the gRPC figures: `python bench/http_latency.py [--quick]`.

The same runs as bench/api_latency.py (read it first: open-loop writes at 20,
200 and 1000 writes/s alternating create and update, watch delivery to 1 and
100 watchers in a separate process, saturation with 32 closed-loop writers,
the server's RSS), against the same `tinykube apiserver` process, but over the
path kubectl and client-go take: HTTPS on the API port, the admin's client
certificate (admin.conf), Kubernetes' JSON, one request at a time per
HTTP/1.1 connection, as client-go does when it speaks HTTP/1.1:

    POST /api/v1/namespaces/default/configmaps            create  (201)
    PUT  /api/v1/namespaces/default/configmaps/NAME       update  (200, no resourceVersion:
                                                                   unconditional, as the gRPC run)
    GET  /api/v1/namespaces/default/configmaps?watch=1&resourceVersion=RV&labelSelector=run=RUN
                                                          one watch per connection (HTTP/1.1
                                                          cannot interleave streams)

The gRPC benchmark dials the local admin's unix socket (no TLS) unless given
`--tls`; this one always goes through the TLS front and its relay, so
`bench/api_latency.py --tls` is the like-for-like gRPC figure, and the gap
between the two is HTTP/1.1 and JSON. The client is a small asyncio HTTP/1.1
client written here (at most 32 keep-alive connections, as a client-go
transport keeps a bounded pool), so the client's own cost stays close to
grpc.aio's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import ssl
import sys
import tempfile
import time
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apimachinery import kubeconfig
from bench.api_latency import pct, rss_mb
from localcluster.processes import ApiServerProcess

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


def tls_context(conf: Path, scratch: Path) -> ssl.SSLContext:
    """The admin's identity from admin.conf, offering HTTP/1.1 as kubectl does."""
    config = kubeconfig.load(conf)
    ctx = ssl.create_default_context(cadata=(config.ca_pem or b"").decode())
    pem = scratch / "admin-client.pem"
    pem.write_bytes((config.cert_pem or b"") + (config.key_pem or b""))
    ctx.load_cert_chain(str(pem))
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class HTTPClient:
    """Keep-alive HTTP/1.1 connections to one server, each carrying one request at a time, at
    most `limit` of them (a request waits for a free one: that wait is part of its latency)."""

    def __init__(self, port: int, ctx: ssl.SSLContext, limit: int = 32) -> None:
        self.port = port
        self.ctx = ctx
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.slots = asyncio.Semaphore(limit)

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(
            "127.0.0.1", self.port, ssl=self.ctx, server_hostname="127.0.0.1"
        )

    async def request(self, method: str, target: str, body: Any = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else b""
        head = (
            f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        ).encode()
        async with self.slots:
            while self.idle:  # a kept-alive connection the server closed meanwhile: the next
                try:
                    return await self._exchange(self.idle.pop(), head + data)
                except (ConnectionError, asyncio.IncompleteReadError):
                    continue
            return await self._exchange(await self._open(), head + data)

    async def _exchange(
        self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes
    ) -> tuple[int, bytes]:
        reader, writer = conn
        writer.write(request)
        await writer.drain()
        status, headers = await _head(reader)
        if headers.get("transfer-encoding") == "chunked":
            payload = b"".join([chunk async for chunk in _chunks(reader)])
        else:
            payload = await reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            writer.close()
        else:
            self.idle.append(conn)
        return status, payload

    async def watch(self, query: dict[str, str]) -> AsyncIterator[dict[str, Any]]:
        """The events of a watch, on a connection of its own."""
        reader, writer = await self._open()
        target = f"{CONFIGMAPS}?{urllib.parse.urlencode({'watch': '1', **query})}"
        writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        await writer.drain()
        status, _ = await _head(reader)
        if status != 200:
            raise RuntimeError(f"watch answered {status}")
        buffered = b""
        try:
            async for chunk in _chunks(reader):
                buffered += chunk
                *lines, buffered = buffered.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        finally:
            writer.close()

    async def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


async def _head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    line = await reader.readline()
    if not line:
        raise ConnectionResetError("the server closed the connection")
    status = int(line.split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


async def _chunks(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while size := int((await reader.readline()).split(b";")[0], 16):
        yield await reader.readexactly(size)
        await reader.readexactly(2)
    await reader.readline()


def _cm(name: str, run: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"run": run}},
        "data": {"t": repr(time.time())},
    }


def _watch_process(
    port: int, conf: str, watchers: int, run: str, expected: int, ready: Any, out: Any
) -> None:
    """Runs in its own process: `watchers` watches, one latency per event received."""

    async def main() -> list[float]:
        latencies: list[float] = []
        with tempfile.TemporaryDirectory() as scratch:
            client = HTTPClient(port, tls_context(Path(conf), Path(scratch)))
            _, body = await client.request("GET", CONFIGMAPS)
            start = json.loads(body)["metadata"]["resourceVersion"]

            async def one() -> None:
                left = expected
                query = {"resourceVersion": start, "labelSelector": f"run={run}"}
                async for event in client.watch(query):
                    if event["type"] in ("ADDED", "MODIFIED"):
                        latencies.append(time.time() - float(event["object"]["data"]["t"]))
                    left -= 1
                    if left == 0:
                        return

            tasks = [asyncio.ensure_future(one()) for _ in range(watchers)]
            await asyncio.sleep(0.5 + watchers / 100)  # every stream open before the writes
            ready.set()
            await asyncio.wait(tasks, timeout=60)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await client.close()
        return latencies

    try:
        result = asyncio.run(main())
    except Exception as exc:  # report, never leave the parent waiting
        print(f"watcher process failed: {exc!r}", file=sys.stderr)
        result = []
    out.send(result)


async def _open_loop(client: HTTPClient, rate: int, duration: float, run: str) -> dict[str, Any]:
    creates: list[float] = []
    updates: list[float] = []
    names: list[str] = []
    failed = 0

    async def one(i: int) -> None:
        nonlocal failed
        try:
            await write(i)
        except (ConnectionError, asyncio.IncompleteReadError):
            failed += 1  # the server dropped the connection (overload: see docs/performance.md)

    async def write(i: int) -> None:
        nonlocal failed
        if i % 2 == 0 or not names:
            name = f"{run}-{i}"
            start = time.perf_counter()
            status, _ = await client.request("POST", CONFIGMAPS, _cm(name, run))
            creates.append(time.perf_counter() - start)
            names.append(name)
        else:  # each update to the object created just before, as the gRPC run
            name = names[-1]
            start = time.perf_counter()
            status, _ = await client.request("PUT", f"{CONFIGMAPS}/{name}", _cm(name, run))
            updates.append(time.perf_counter() - start)
        failed += status >= 300

    count, interval = int(rate * duration), 1.0 / rate
    tasks = []
    t0 = time.perf_counter()
    for i in range(count):
        delay = t0 + i * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(i)))
    issued = time.perf_counter() - t0
    await asyncio.gather(*tasks)
    return {"creates": creates, "updates": updates, "failed": failed, "achieved": count / issued}


async def _saturate(port: int, ctx: ssl.SSLContext, writers: int, duration: float) -> float:
    done = 0
    stop = time.perf_counter() + duration
    client = HTTPClient(port, ctx)

    async def loop(i: int) -> None:
        nonlocal done
        n = 0
        while time.perf_counter() < stop:
            await client.request("POST", CONFIGMAPS, _cm(f"sat-{i}-{n}", "sat"))
            n += 1
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(loop(i) for i in range(writers)))
    elapsed = time.perf_counter() - t0
    await client.close()
    return done / elapsed


def run_case(
    srv: ApiServerProcess, ctx: ssl.SSLContext, rate: int, watchers: int, duration: float
) -> dict[str, float]:
    run = f"h{rate}w{watchers}t{int(time.time() * 1000) % 100000}"
    count = int(rate * duration)
    spawn = mp.get_context("spawn")
    ready = spawn.Event()
    parent, child = spawn.Pipe()
    conf = str(srv.admin_kubeconfig)
    args = (srv.port, conf, watchers, run, count, ready, child)
    proc = spawn.Process(target=_watch_process, args=args)
    proc.start()
    ready.wait(60)

    async def writes() -> dict[str, Any]:
        client = HTTPClient(srv.port, ctx)
        try:
            return await _open_loop(client, rate, duration, run)
        finally:
            await client.close()

    result = asyncio.run(writes())
    latencies: list[float] = parent.recv() if parent.poll(150) else []
    proc.join(10)
    creates, updates = result["creates"], result["updates"]
    return {
        "achieved": float(result["achieved"]),
        "create_p50": pct(creates, 50) * 1000,
        "create_p99": pct(creates, 99) * 1000,
        "update_p50": pct(updates, 50) * 1000,
        "update_p99": pct(updates, 99) * 1000,
        "watch_p50": pct(latencies, 50) * 1000,
        "watch_p99": pct(latencies, 99) * 1000,
        "delivered": len(latencies) / max(1, count * watchers),
        "failed": float(result["failed"]),
    }


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per rate")
    ap.add_argument("--quick", action="store_true", help="rates 20 and 200 only, 2 s each")
    args = ap.parse_args()
    rates = [20, 200] if args.quick else [20, 200, 1000]
    duration = 2.0 if args.quick else args.duration
    with tempfile.TemporaryDirectory(prefix="tinykube-bench-") as tmp:
        srv = ApiServerProcess(Path(tmp) / "data")
        srv.start()
        try:
            assert srv.proc is not None
            time.sleep(2.0)
            ctx = tls_context(srv.admin_kubeconfig, Path(tmp))
            idle = rss_mb(srv.proc.pid)
            print(f"apiserver idle RSS: {idle:.1f} MB (HTTP API over TLS, JSON)")
            print(
                f"{'rate/s':>7} {'achieved':>9} {'watchers':>8} {'create p50':>10} {'p99':>7} "
                f"{'update p50':>10} {'p99':>7} {'watch p50':>9} {'p99':>7} "
                f"{'delivered':>9} {'failed':>6}"
            )
            rows = {}
            for watchers in (1, 100):
                for rate in rates:
                    row = run_case(srv, ctx, rate, watchers, duration)
                    rows[(rate, watchers)] = row
                    print(
                        f"{rate:>7} {row['achieved']:>9.0f} {watchers:>8} "
                        f"{row['create_p50']:>8.2f}ms {row['create_p99']:>5.2f}ms "
                        f"{row['update_p50']:>8.2f}ms {row['update_p99']:>5.2f}ms "
                        f"{row['watch_p50']:>7.2f}ms {row['watch_p99']:>5.2f}ms "
                        f"{row['delivered']:>8.0%} {row['failed']:>6.0f}"
                    )
            sat = asyncio.run(_saturate(srv.port, ctx, 32, duration))
            print(f"saturation: {sat:.0f} writes/s (32 closed-loop writers)")
            print(f"apiserver RSS after the runs: {rss_mb(srv.proc.pid):.1f} MB")
            target = rows[(200, 100)]
            worst = max(target["create_p99"], target["update_p99"])
            print(
                f"summary: HTTP mutating p99 at 200 writes/s with 100 watchers {worst:.2f} ms,"
                f" saturation {sat:.0f} writes/s, idle RSS {idle:.1f} MB"
            )
        finally:
            srv.stop()


if __name__ == "__main__":
    main()
