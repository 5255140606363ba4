"""Optimistic concurrency through the API: one winner per version, no lost increments."""

from __future__ import annotations

import asyncio

from apimachinery import errors
from apimachinery.client import Client, retry_on_conflict
from apiserver.server import APIServer
from protos import core_pb2

from .objects import configmap

WRITERS = 12


async def test_racing_writers_exactly_one_wins(server: APIServer, client: Client) -> None:
    base = await client.create(configmap("race", v="base"))
    clients = [Client(server.local_address) for _ in range(WRITERS)]

    async def write(i: int, c: Client) -> bool:
        mine = core_pb2.ConfigMap()
        mine.CopyFrom(base)
        mine.data["v"] = str(i)
        try:
            await c.update(mine)
            return True
        except errors.Conflict:
            return False

    try:
        outcomes = await asyncio.gather(*(write(i, c) for i, c in enumerate(clients)))
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    assert outcomes.count(True) == 1
    winner = outcomes.index(True)
    assert (await client.get("cm", "race")).data["v"] == str(winner)


async def test_counter_with_retry_on_conflict(server: APIServer, client: Client) -> None:
    n_clients, k = 8, 15
    await client.create(configmap("counter", n="0"))
    clients = [Client(server.local_address) for _ in range(n_clients)]

    async def increment(c: Client) -> None:
        async def once() -> None:
            cm = await c.get("configmaps", "counter")
            cm.data["n"] = str(int(cm.data["n"]) + 1)
            await c.update(cm)

        for _ in range(k):
            await retry_on_conflict(once, attempts=1000)

    try:
        await asyncio.gather(*(increment(c) for c in clients))
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    assert (await client.get("configmaps", "counter")).data["n"] == str(n_clients * k)
