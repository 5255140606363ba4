"""The token cleaner deletes bootstrap-token Secrets once their expiration has passed."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path

from apimachinery import clusterbootstrap as bt
from apimachinery.client import Client
from protos import core_pb2
from tests.unit.controllers.infra import api_server, controllers, eventually, get_or_none

UTC = datetime.timezone.utc


def token_secret(token_id: str, expiration: str | None) -> core_pb2.Secret:
    secret = bt.new_token_secret(bt.Token(token_id, "0123456789abcdef"), ttl=None)
    if expiration is not None:
        secret.data[bt.EXPIRATION_KEY] = expiration.encode()
    return secret


def in_seconds(seconds: float) -> str:
    return bt.format_rfc3339(datetime.datetime.now(UTC) + datetime.timedelta(seconds=seconds))


async def exists(client: Client, token_id: str) -> bool:
    found = await get_or_none(client, "secrets", bt.secret_name(token_id), bt.NAMESPACE)
    return found is not None


async def test_expired_tokens_are_deleted_and_live_ones_kept(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client:
        await client.create(token_secret("expird", in_seconds(-60)))
        await client.create(token_secret("unread", "tomorrow"))  # unreadable: treated as expired
        await client.create(token_secret("forevr", None))  # no expiration: never expires
        await client.create(token_secret("soonxx", in_seconds(1.5)))
        await client.create(token_secret("latera", in_seconds(3600)))
        # Not a bootstrap token, whatever its data says.
        other = token_secret("opaque", in_seconds(-60))
        other.type = "Opaque"
        await client.create(other)
        async with controllers(client, ["tokencleaner"]):

            async def first_two_gone() -> bool:
                return not await exists(client, "expird") and not await exists(client, "unread")

            await eventually(first_two_gone)
            assert await exists(client, "soonxx")

            async def soon_gone() -> bool:
                return not await exists(client, "soonxx")

            await eventually(soon_gone, timeout=10)
            await asyncio.sleep(0.2)
        for kept in ("forevr", "latera", "opaque"):
            assert await exists(client, kept), kept


async def test_a_token_created_while_running_expires_too(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client, controllers(client, ["tokencleaner"]):
        await client.create(token_secret("fresha", in_seconds(1)))

        async def gone() -> bool:
            return not await exists(client, "fresha")

        await eventually(gone, timeout=10)
