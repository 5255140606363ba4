"""Encryption at rest and the database's file modes.

The encrypting wrapper passes the whole storage conformance suite (it must be
invisible to everything above it); a Secret's value is not in the database
file's bytes; rotation by rewrite; secretbox and identity; bad configurations
named by field; and the data directory 0700 with its files 0600.
"""

from __future__ import annotations

import base64
import os
import re
import stat
from pathlib import Path

import pytest

from apiserver.storage.encrypted import EncryptedStorage
from apiserver.storage.encryption import DecryptError, EncryptionConfigError, load, parse
from apiserver.storage.interface import Storage
from apiserver.storage.sqlite import SQLiteStorage

from .conformance import StorageConformance

KEY1 = base64.b64encode(bytes(range(32))).decode()
KEY2 = base64.b64encode(bytes(range(1, 33))).decode()
SECRET_KEY = "/registry/secrets/default/db"
PLAIN = b"\x0a\x02db password=hunter2-very-secret"


def config(*providers: str, resources: str = "secrets") -> str:
    lines = "\n".join(f"      - {p}" for p in providers)
    return (
        "apiVersion: apiserver.config.k8s.io/v1\n"
        "kind: EncryptionConfiguration\n"
        "resources:\n"
        f"  - resources: [{resources}]\n"
        "    providers:\n"
        f"{lines}\n"
    )


def aesgcm(*keys: tuple[str, str]) -> str:
    return "aesgcm: {keys: [" + ", ".join(f"{{name: {n}, secret: '{s}'}}" for n, s in keys) + "]}"


def secretbox(name: str, secret: str) -> str:
    return f"secretbox: {{keys: [{{name: {name}, secret: '{secret}'}}]}}"


class TestEncryptedConformance(StorageConformance):
    """Every value under every key encrypted: the contract must hold unchanged."""

    async def make_storage(self, path: Path, *, watch_buffer_size: int = 1000) -> Storage:
        inner = await SQLiteStorage.open(
            str(path / "store.db"), watch_buffer_size=watch_buffer_size
        )
        return EncryptedStorage(inner, parse(config(aesgcm(("k", KEY1)), resources="'*.*'")))


async def open_encrypted(path: Path, text: str) -> EncryptedStorage:
    return EncryptedStorage(await SQLiteStorage.open(str(path / "store.db")), parse(text))


def database_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.iterdir() if p.name.startswith("store.db"))


async def test_a_secret_is_not_in_the_database_file_but_reads_back(tmp_path: Path) -> None:
    store = await open_encrypted(tmp_path, config(aesgcm(("key1", KEY1)), "identity: {}"))
    try:
        await store.create(SECRET_KEY, PLAIN)
        await store.create("/registry/configmaps/default/c", b"plain configmap")
        got = await store.get(SECRET_KEY)
        assert got is not None and got.value == PLAIN and not got.stale
    finally:
        await store.close()
    raw = database_bytes(tmp_path)
    assert b"hunter2" not in raw
    assert b"k8s:enc:aesgcm:v1:key1:" in raw
    assert b"plain configmap" in raw  # only the configured resources are encrypted


async def test_rotation_by_rewrite(tmp_path: Path) -> None:
    store = await open_encrypted(tmp_path, config(aesgcm(("key1", KEY1))))
    await store.create(SECRET_KEY, PLAIN)
    await store.close()
    # The new key goes first; the old one stays to read what is not rewritten yet.
    store = await open_encrypted(tmp_path, config(aesgcm(("key2", KEY2), ("key1", KEY1))))
    try:
        old = await store.get(SECRET_KEY)
        assert old is not None and old.value == PLAIN and old.stale
        await store.update(SECRET_KEY, PLAIN, old.mod_revision)
        new = await store.get(SECRET_KEY)
        assert new is not None and new.value == PLAIN and not new.stale
        items, _ = await store.list("/registry/secrets/")
        assert [kv.stale for kv in items] == [False]
    finally:
        await store.close()
    # Once rewritten, the old key can go.
    store = await open_encrypted(tmp_path, config(aesgcm(("key2", KEY2))))
    try:
        got = await store.get(SECRET_KEY)
        assert got is not None and got.value == PLAIN
    finally:
        await store.close()


async def test_secretbox_and_identity_first(tmp_path: Path) -> None:
    store = await open_encrypted(tmp_path, config(secretbox("box", KEY1)))
    await store.create(SECRET_KEY, PLAIN)
    await store.close()
    assert b"k8s:enc:secretbox:v1:box:" in database_bytes(tmp_path)
    # Turning encryption off: identity first, secretbox kept to read the old values.
    store = await open_encrypted(tmp_path, config("identity: {}", secretbox("box", KEY1)))
    try:
        got = await store.get(SECRET_KEY)
        assert got is not None and got.value == PLAIN and got.stale
    finally:
        await store.close()


async def test_watch_events_are_decrypted(tmp_path: Path) -> None:
    store = await open_encrypted(tmp_path, config(aesgcm(("key1", KEY1))))
    try:
        created = await store.create(SECRET_KEY, PLAIN)
        await store.update(SECRET_KEY, PLAIN + b"!", created.mod_revision)
        events = store.watch("/registry/secrets/", 0)
        first, second = await anext(events), await anext(events)
        await events.aclose()  # type: ignore[attr-defined]
        assert (first.value, second.value, second.prev_value) == (PLAIN, PLAIN + b"!", PLAIN)
    finally:
        await store.close()


def test_values_cannot_move_between_keys_or_lose_their_key() -> None:
    transformer = parse(config(aesgcm(("key1", KEY1)))).by_resource["secrets"]
    sealed = transformer.to_storage(PLAIN, SECRET_KEY.encode())
    with pytest.raises(DecryptError, match="authentication failed"):
        transformer.from_storage(sealed, b"/registry/secrets/default/other")
    other = parse(config(aesgcm(("key9", KEY2)))).by_resource["secrets"]
    with pytest.raises(DecryptError, match="no key 'key1' for provider 'aesgcm'"):
        other.from_storage(sealed, SECRET_KEY.encode())
    with pytest.raises(DecryptError, match="identity is not a provider"):
        other.from_storage(PLAIN, SECRET_KEY.encode())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (config(aesgcm(("k", "c2hvcnQ="))), "providers[0].aesgcm.keys[0].secret: Invalid value"),
        (config(secretbox("k", base64.b64encode(b"x" * 16).decode())), "must be 32 bytes"),
        (config(aesgcm(("k", "not base64!"))), "keys[0].secret: Invalid value: not base64"),
        (config("kms: {name: x}"), 'providers[0]: Unsupported value: "kms"'),
        (config("aesgcm: {keys: []}"), "providers[0].aesgcm.keys: Required value"),
        ("kind: Other\n", "expected apiVersion apiserver.config.k8s.io/v1"),
    ],
)
def test_bad_configurations_name_the_field(text: str, message: str) -> None:
    with pytest.raises(EncryptionConfigError, match=re.escape(message)):
        parse(text)


def test_load_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(EncryptionConfigError, match=r"missing\.yaml"):
        load(str(tmp_path / "missing.yaml"))


async def test_the_database_is_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    store = await SQLiteStorage.open(str(data / "store.db"))
    try:
        await store.create("/registry/secrets/default/x", b"v")
        assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
        files = [p for p in data.iterdir() if p.name.startswith("store.db")]
        assert {p.name for p in files} >= {"store.db", "store.db-wal"}
        assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o600}
    finally:
        await store.close()
