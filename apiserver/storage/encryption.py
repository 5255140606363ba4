"""Encryption at rest: Kubernetes' EncryptionConfiguration, read and applied to stored values.

A Secret's value would otherwise sit in the database as plain protobuf, and
anyone who can read the file (a backup, a copied disk) can read every
password in the cluster. Kubernetes answers with `--encryption-provider-config`:
a file that names, per resource, an ordered list of providers:

    apiVersion: apiserver.config.k8s.io/v1
    kind: EncryptionConfiguration
    resources:
      - resources: [secrets]
        providers:
          - aesgcm:
              keys:
                - name: key2
                  secret: <base64 of 32 random bytes>
                - name: key1
                  secret: <base64 of the previous key>
          - identity: {}

The FIRST provider's FIRST key encrypts every new write; every provider and
key is tried on read, chosen by the value's prefix. A value written by
`aesgcm` with key `key2` is stored as

    k8s:enc:aesgcm:v1:key2:<12-byte nonce><ciphertext and 16-byte tag>

and by `secretbox` (XSalsa20-Poly1305) as `k8s:enc:secretbox:v1:NAME:` with a
24-byte nonce. `identity` stores plain bytes; listed last it lets a server
read what was written before encryption was turned on. AES-GCM also
authenticates the storage key (`/registry/secrets/default/db`), so a value
copied under another key fails to decrypt instead of turning into another
Secret.

Key rotation is rotation by rewrite, as in Kubernetes: put the new key first,
restart the API server, then rewrite every Secret (`tinykube get secrets -A
-o yaml | tinykube replace -f -`). A value read with any key but the primary
one is *stale*: the registry writes it again even when nothing in the object
changed, so after the rewrite every value is under the new key and the old
one can be dropped.

Failure modes: a config that does not parse, names an unknown provider or
has a key of the wrong size stops the server at start with the field's path
(`resources[0].providers[0].aesgcm.keys[0].secret: ...`). A stored value
whose prefix names a key the config no longer has cannot be read: the read
fails with an error naming the provider and key, never with garbage.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
import nacl.secret
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from apimachinery import yamlio

API_VERSION = "apiserver.config.k8s.io/v1"
KIND = "EncryptionConfiguration"
PREFIX = b"k8s:enc:"


class EncryptionConfigError(ValueError):
    """The configuration file is unusable; the message names the field."""


class DecryptError(Exception):
    """A stored value cannot be turned back into plain bytes."""


@dataclass(frozen=True)
class Key:
    name: str
    secret: bytes


class Provider:
    """One entry of a resource's provider list: identity, aesgcm or secretbox."""

    name = "identity"
    keys: tuple[Key, ...] = ()

    def prefix(self, key: Key) -> bytes:
        return PREFIX + f"{self.name}:v1:{key.name}:".encode()

    def seal(self, key: Key, data: bytes, context: bytes) -> bytes:
        return data

    def open(self, key: Key, sealed: bytes, context: bytes) -> bytes:
        return sealed


class AESGCMProvider(Provider):
    """AES-GCM with a random 96-bit nonce; the storage key is authenticated data."""

    name = "aesgcm"
    key_sizes = (16, 24, 32)

    def __init__(self, keys: Sequence[Key]) -> None:
        self.keys = tuple(keys)

    def seal(self, key: Key, data: bytes, context: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + AESGCM(key.secret).encrypt(nonce, data, context)

    def open(self, key: Key, sealed: bytes, context: bytes) -> bytes:
        try:
            return AESGCM(key.secret).decrypt(sealed[:12], sealed[12:], context)
        except InvalidTag:
            raise DecryptError(f"aesgcm key {key.name!r}: authentication failed") from None


class SecretboxProvider(Provider):
    """NaCl's secretbox (XSalsa20-Poly1305) with a random 192-bit nonce."""

    name = "secretbox"
    key_sizes = (32,)

    def __init__(self, keys: Sequence[Key]) -> None:
        self.keys = tuple(keys)

    def seal(self, key: Key, data: bytes, context: bytes) -> bytes:
        return bytes(nacl.secret.SecretBox(key.secret).encrypt(data))

    def open(self, key: Key, sealed: bytes, context: bytes) -> bytes:
        try:
            return bytes(nacl.secret.SecretBox(key.secret).decrypt(sealed))
        except nacl.exceptions.CryptoError:
            raise DecryptError(f"secretbox key {key.name!r}: authentication failed") from None


PROVIDERS: dict[str, Callable[[Sequence[Key]], Provider]] = {
    "aesgcm": AESGCMProvider,
    "secretbox": SecretboxProvider,
}


class Transformer:
    """The provider list of one resource: encrypt with the first, decrypt with any."""

    def __init__(self, providers: Sequence[Provider]) -> None:
        self.providers = tuple(providers)

    def to_storage(self, data: bytes, context: bytes) -> bytes:
        first = self.providers[0]
        if not first.keys:  # identity
            return data
        key = first.keys[0]
        return first.prefix(key) + first.seal(key, data, context)

    def from_storage(self, stored: bytes, context: bytes) -> tuple[bytes, bool]:
        """The plain value, and whether it is stale (not under the primary provider and key)."""
        for p_index, provider in enumerate(self.providers):
            for k_index, key in enumerate(provider.keys):
                prefix = provider.prefix(key)
                if stored.startswith(prefix):
                    plain = provider.open(key, stored[len(prefix) :], context)
                    return plain, (p_index, k_index) != (0, 0)
        if stored.startswith(PREFIX):
            kind, _, rest = stored[len(PREFIX) :].partition(b":v1:")
            name = rest.partition(b":")[0]
            raise DecryptError(
                f"no key {str(name, 'utf-8', 'replace')!r} for provider "
                f"{str(kind, 'utf-8', 'replace')!r} in the encryption configuration"
            )
        for p_index, provider in enumerate(self.providers):
            if not provider.keys:  # identity reads plain values
                return stored, p_index != 0
        raise DecryptError("the value is not encrypted and identity is not a provider")


@dataclass(frozen=True)
class EncryptionConfig:
    """resource (`secrets`, `configmaps`, ...) -> its transformer."""

    by_resource: dict[str, Transformer]

    def for_key(self, key: str) -> Transformer | None:
        """The transformer for a storage key (`/registry/<resource>/...`), if it has one."""
        parts = key.split("/")
        resource = parts[2].split(".", 1)[0] if len(parts) > 2 else ""
        return self.by_resource.get(resource) or self.by_resource.get("*")


def _keys(spec: Any, path: str, sizes: tuple[int, ...]) -> list[Key]:
    if not isinstance(spec, dict) or not isinstance(spec.get("keys"), list) or not spec["keys"]:
        raise EncryptionConfigError(f"{path}.keys: Required value: at least one key")
    keys = []
    for i, item in enumerate(spec["keys"]):
        where = f"{path}.keys[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise EncryptionConfigError(f"{where}.name: Required value")
        try:
            secret = base64.b64decode(str(item.get("secret", "")), validate=True)
        except binascii.Error:
            raise EncryptionConfigError(f"{where}.secret: Invalid value: not base64") from None
        if len(secret) not in sizes:
            wanted = ", ".join(str(n) for n in sizes)
            raise EncryptionConfigError(
                f"{where}.secret: Invalid value: the key is {len(secret)} bytes, "
                f"must be {wanted} bytes"
            )
        keys.append(Key(item["name"], secret))
    return keys


def _provider(entry: Any, path: str) -> Provider:
    if not isinstance(entry, dict) or len(entry) != 1:
        raise EncryptionConfigError(f"{path}: Invalid value: exactly one provider per entry")
    ((name, spec),) = entry.items()
    if name == "identity":
        return Provider()
    factory = PROVIDERS.get(name)
    if factory is None:
        known = ", ".join(["identity", *sorted(PROVIDERS)])
        raise EncryptionConfigError(f'{path}: Unsupported value: "{name}" (known: {known})')
    sizes = AESGCMProvider.key_sizes if name == "aesgcm" else SecretboxProvider.key_sizes
    return factory(_keys(spec, f"{path}.{name}", sizes))


def parse(text: str) -> EncryptionConfig:
    """An EncryptionConfiguration document, checked field by field."""
    docs = [doc for _, doc in yamlio.iter_documents(text) if doc is not None]
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise EncryptionConfigError("expected one EncryptionConfiguration document")
    doc = docs[0]
    if doc.get("kind") != KIND or doc.get("apiVersion") != API_VERSION:
        raise EncryptionConfigError(f"expected apiVersion {API_VERSION}, kind {KIND}")
    by_resource: dict[str, Transformer] = {}
    for i, rule in enumerate(doc.get("resources") or []):
        path = f"resources[{i}]"
        names = rule.get("resources") if isinstance(rule, dict) else None
        if not isinstance(names, list) or not names:
            raise EncryptionConfigError(f"{path}.resources: Required value")
        entries = rule.get("providers")
        if not isinstance(entries, list) or not entries:
            raise EncryptionConfigError(f"{path}.providers: Required value")
        transformer = Transformer(
            [_provider(e, f"{path}.providers[{j}]") for j, e in enumerate(entries)]
        )
        for name in names:
            by_resource.setdefault(str(name).split(".", 1)[0], transformer)
    if not by_resource:
        raise EncryptionConfigError("resources: Required value: at least one resource")
    return EncryptionConfig(by_resource)


def load(path: str) -> EncryptionConfig:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as err:
        raise EncryptionConfigError(f"{path}: {err.strerror}") from None
    try:
        return parse(text)
    except EncryptionConfigError as err:
        raise EncryptionConfigError(f"{path}: {err}") from None
