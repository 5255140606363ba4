"""Conformance of `list_page`: lists read in pages, every page at the first page's revision.

Part of the shared storage suite (conformance.py mixes it in), so SQLite runs
it in tests/unit/storage and etcd in tests/integration/storage. What it pins
down is what Kubernetes' limit/continue needs of etcd's Range:

* pages come in key order, `more` and `count` say what is left, `start` is
  inclusive, and the prefix bounds the range (a sibling prefix never leaks in);
* a page read at an old revision sees the keys as they were then, after any
  writes and deletes since, so pages joined are exactly one revision's state;
* a revision older than the last compaction is `Compacted`, one at the
  compaction is still served, one in the future is a StorageError.

The model test writes a random history and reads every kept revision in
random page sizes, comparing with the state a dict replay gives.
"""

from __future__ import annotations

import random

import pytest

from apiserver.storage.interface import Compacted, KeyValue, Storage, StorageError


async def read_all(store: Storage, prefix: str, revision: int, size: int) -> list[KeyValue]:
    """Every key under `prefix` at `revision`, read `size` keys at a time."""
    items: list[KeyValue] = []
    start = ""
    while True:
        page = await store.list_page(prefix, revision=revision, start=start, limit=size)
        assert page.revision == revision
        assert len(page.items) <= size
        items.extend(page.items)
        if not page.more:
            return items
        start = page.items[-1].key + "\0"


class ListPaging:
    """Mixed into StorageConformance; `store` is its fixture."""

    async def test_pages_in_key_order_with_more_and_count(self, store: Storage) -> None:
        for name in ["e", "a", "c", "b", "d"]:
            await store.create(f"/p/{name}", name.encode())
        await store.create("/px/sibling", b"not under /p/")
        await store.create("/o/before", b"not under /p/")
        revision = await store.current_revision()
        first = await store.list_page("/p/", limit=2)
        assert [kv.key for kv in first.items] == ["/p/a", "/p/b"]
        assert (first.revision, first.more, first.count) == (revision, True, 5)
        second = await store.list_page("/p/", revision=revision, start="/p/b\0", limit=2)
        assert [kv.key for kv in second.items] == ["/p/c", "/p/d"]
        assert (second.more, second.count) == (True, 3)
        last = await store.list_page("/p/", revision=revision, start="/p/d\0", limit=2)
        assert [(kv.key, kv.value) for kv in last.items] == [("/p/e", b"e")]
        assert (last.more, last.count) == (False, 1)
        exact = await store.list_page("/p/", start="/p/c", limit=3)  # start is inclusive
        assert [kv.key for kv in exact.items] == ["/p/c", "/p/d", "/p/e"]
        assert (exact.more, exact.count) == (False, 3)
        whole = await store.list_page("/p/")  # no limit: everything, as list() does
        assert whole.items == (await store.list("/p/"))[0]
        assert (whole.more, whole.count) == (False, 5)
        assert (await store.list_page("/none/")).items == []

    async def test_an_old_revision_is_the_old_state_after_writes_and_deletes(
        self, store: Storage
    ) -> None:
        for i in range(6):
            await store.create(f"/o/{i}", b"v1")
        before, revision = await store.list("/o/")
        first = await store.list_page("/o/", limit=3)
        assert first.revision == revision
        await store.delete("/o/4")  # not read yet: the next page still has it
        await store.delete("/o/0")  # already read
        await store.update("/o/5", b"v2", None)
        await store.create("/o/3a", b"new")  # lands inside the next page's range
        await store.create("/o/9", b"new")  # after the last key
        start = first.items[-1].key + "\0"
        rest = await store.list_page("/o/", revision=revision, start=start, limit=10)
        assert first.items + rest.items == before
        assert (rest.more, rest.count) == (False, 3)
        assert await read_all(store, "/o/", revision, 1) == before
        now = await store.list_page("/o/")
        assert [kv.key for kv in now.items] == ["/o/1", "/o/2", "/o/3", "/o/3a", "/o/5", "/o/9"]
        assert now.revision == await store.current_revision() > revision

    async def test_a_compacted_revision_is_refused_and_the_compaction_point_served(
        self, store: Storage
    ) -> None:
        await store.create("/c/a", b"1")
        old = await store.current_revision()
        await store.update("/c/a", b"2", None)
        kept = await store.current_revision()
        await store.create("/c/b", b"1")
        await store.delete("/c/a")
        await store.compact(kept)
        with pytest.raises(Compacted) as info:
            await store.list_page("/c/", revision=old, limit=1)
        assert info.value.requested == old
        at_kept = await store.list_page("/c/", revision=kept)
        assert [(kv.key, kv.value) for kv in at_kept.items] == [("/c/a", b"2")]
        current = await store.current_revision()
        with pytest.raises(StorageError, match="future revision"):
            await store.list_page("/c/", revision=current + 5)

    async def test_pages_at_every_kept_revision_match_a_model(self, store: Storage) -> None:
        rng = random.Random(18)
        names = [f"/m/{c}" for c in "abcdefgh"]
        model: dict[str, bytes] = {}
        states: dict[int, dict[str, bytes]] = {0: {}}
        for step in range(60):
            key = rng.choice(names)
            if key in model and rng.random() < 0.4:
                revision = (await store.delete(key)).mod_revision
                del model[key]
            elif key in model:
                model[key] = b"%d" % step
                revision = (await store.update(key, model[key], None)).mod_revision
            else:
                model[key] = b"%d" % step
                revision = (await store.create(key, model[key])).mod_revision
            states[revision] = dict(model)
        compacted = max(states) // 2
        await store.compact(compacted)
        for revision, state in states.items():
            if revision < compacted:
                if revision:
                    with pytest.raises(Compacted):
                        await store.list_page("/m/", revision=revision, limit=2)
                continue
            items = await read_all(store, "/m/", revision, rng.randint(1, 4))
            assert [(kv.key, kv.value) for kv in items] == sorted(state.items()), revision
