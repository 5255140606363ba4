"""Property test of the watch contract, part of the storage conformance suite.

For a random history of puts and deletes over a few keys (some of them
sharing a prefix, like "/r/" and "/rr/"), an optional compaction, and a
random prefix, check against a plain-Python model that:

* a watch resumed from ANY revision R >= the compaction point delivers
  exactly the model's events after R under the prefix (type, key, value,
  revision and prev_value), once each, in order
  (the end is marked by a sentinel write, so "nothing extra" is checked too);
* a watch from any R below the compaction point raises Compacted;
* a watch that starts while more writes are being made joins history to the
  live stream without a gap or a duplicate.

Each example gets its own store in a fresh temporary directory, so examples
do not share state; the example count is bounded to keep the suite fast.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apiserver.storage.interface import Compacted, Event, Storage

KEYS = ["/r/a", "/r/b", "/rr/c", "/s/d"]
PREFIXES = ["", "/r/", "/rr/", "/s/"]
TIMEOUT = 5.0

Op = tuple[str, str, bytes]  # ("put" | "delete", key, value)
ops_strategy = st.lists(
    st.tuples(
        st.sampled_from(["put", "put", "delete"]), st.sampled_from(KEYS), st.binary(max_size=3)
    ),
    max_size=20,
)


@dataclass(frozen=True)
class Change:
    type: str
    key: str
    value: bytes
    revision: int
    prev_value: bytes | None


class Model:
    """What the store should hold and what a watch should say."""

    def __init__(self) -> None:
        self.state: dict[str, bytes] = {}
        self.history: list[Change] = []

    async def apply(self, store: Storage, op: Op) -> None:
        kind, key, value = op
        if kind == "put" and key in self.state:
            kv = await store.update(key, value, None)
            self.history.append(Change("MODIFIED", key, value, kv.mod_revision, self.state[key]))
            self.state[key] = value
        elif kind == "put":
            kv = await store.create(key, value)
            self.history.append(Change("ADDED", key, value, kv.mod_revision, None))
            self.state[key] = value
        elif key in self.state:
            kv = await store.delete(key)
            last = self.state.pop(key)
            self.history.append(Change("DELETED", key, last, kv.mod_revision, last))

    async def sentinel(self, store: Storage, prefix: str) -> int:
        """A write under `prefix` that marks the end of what a watch must deliver."""
        key = f"{prefix or '/'}~sentinel{len(self.history)}"
        await self.apply(store, ("put", key, b"end"))
        return self.history[-1].revision

    def after(self, revision: int, prefix: str) -> list[Change]:
        return [c for c in self.history if c.revision > revision and c.key.startswith(prefix)]


async def collect_through(events: AsyncIterator[Event], last: int) -> list[Change]:
    """Events up to and including revision `last` (which must be delivered)."""
    out: list[Change] = []
    while not out or out[-1].revision < last:
        e = await asyncio.wait_for(events.__anext__(), TIMEOUT)
        out.append(Change(e.type.value, e.key, e.value, e.revision, e.prev_value))
    return out


class WatchProperties:
    """Mixed into StorageConformance; needs its `make_storage`."""

    async def make_storage(self, path: Path, *, watch_buffer_size: int = 1000) -> Storage:
        raise NotImplementedError

    @settings(
        max_examples=30,
        deadline=None,
        # Each backend's conformance class runs this one method (differing_executors): the
        # property is the interface's, and every backend must hold it.
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.differing_executors,
        ],
    )
    @given(
        before=ops_strategy,
        during=ops_strategy,
        prefix=st.sampled_from(PREFIXES),
        compact_choice=st.floats(min_value=0.0, max_value=1.0) | st.none(),
        live_choice=st.floats(min_value=0.0, max_value=1.0),
    )
    async def test_resumed_watch_delivers_exactly_the_history_after_it(
        self,
        before: list[Op],
        during: list[Op],
        prefix: str,
        compact_choice: float | None,
        live_choice: float,
    ) -> None:
        with tempfile.TemporaryDirectory() as directory:
            store = await self.make_storage(Path(directory))
            try:
                await self._check(store, before, during, prefix, compact_choice, live_choice)
            finally:
                await store.close()

    async def _check(
        self,
        store: Storage,
        before: list[Op],
        during: list[Op],
        prefix: str,
        compact_choice: float | None,
        live_choice: float,
    ) -> None:
        model = Model()
        for op in before:
            await model.apply(store, op)
        compacted = 0
        if compact_choice is not None:
            compacted = int(compact_choice * await store.current_revision())
            await store.compact(compacted)
        end = await model.sentinel(store, prefix)

        # Replay from every revision.
        for revision in range(end + 1):
            watch = store.watch(prefix, revision)
            if revision < compacted:
                with pytest.raises(Compacted):
                    await asyncio.wait_for(watch.__anext__(), TIMEOUT)
            elif revision < end:
                assert await collect_through(watch, end) == model.after(revision, prefix)

        # Join history to live writes made while the watch starts.
        resume = compacted + int(live_choice * (end - compacted))
        watch = store.watch(prefix, resume)
        first = asyncio.ensure_future(watch.__anext__())

        async def write_more() -> int:
            for op in during:
                await model.apply(store, op)
            return await model.sentinel(store, prefix)

        last = await write_more()
        head = await asyncio.wait_for(first, TIMEOUT)
        rest = [] if head.revision == last else await collect_through(watch, last)
        head_change = Change(head.type.value, head.key, head.value, head.revision, head.prev_value)
        got = [head_change, *rest]
        assert got == model.after(resume, prefix)
