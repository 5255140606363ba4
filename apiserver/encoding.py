"""How objects are laid in storage, and how a resourceVersion gets onto them.

Objects are stored as their protobuf encoding with `metadata.resourceVersion`
left empty: the revision of a write is only known once the store has committed
it, so, as Kubernetes' etcd3 store does, the version is stamped on when an
object is *read*, from the key's mod_revision.

Stamping is cheap because of a property of the protobuf wire format: when two
encodings of a message are concatenated, parsing the result merges them, and
for a singular scalar field the last value wins. Every kind keeps its
ObjectMeta at field 3 and ObjectMeta keeps resourceVersion at field 5, so

    stored bytes  +  encode(Kind{metadata: {resourceVersion: "42"}})

is a valid encoding of the object at version 42, made without decoding it.
A watch with no selector forwards objects to a hundred watchers this way
without parsing any of them.

Worked example (a Pod named "x" at revision 77):

    stored   = 1a 03 0a 01 78            field 3 (metadata) { field 1 (name) "x" }
    fragment = 1a 04 2a 02 37 37         field 3 { field 5 (resourceVersion) "77" }
    parse(stored + fragment).metadata == {name: "x", resourceVersion: "77"}
"""

from __future__ import annotations

from typing import Any

from google.protobuf import any_pb2

from apimachinery import errors, scheme

_METADATA_FIELD = 3
_RESOURCE_VERSION_FIELD = 5


def varint(n: int) -> bytes:
    """Protobuf's base-128 varint of `n` (a length, a field tag)."""
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def version_fragment(revision: int) -> bytes:
    """The wire bytes of `{metadata: {resourceVersion: str(revision)}}`."""
    text = str(revision).encode()
    inner = bytes([(_RESOURCE_VERSION_FIELD << 3) | 2]) + varint(len(text)) + text
    return bytes([(_METADATA_FIELD << 3) | 2]) + varint(len(inner)) + inner


# etcd refuses a value above its --max-request-bytes (1.5 MiB by default) with
# "etcdserver: request is too large", and Kubernetes answers the write 413.
# The SQLite store has no such limit of its own; the registry keeps etcd's, so
# an object that fits one backend fits the other, and one huge object cannot
# make every list and watch of its kind carry megabytes.
MAX_STORED_BYTES = 1_572_864
TOO_LARGE = "etcdserver: request is too large"


def encode_for_storage(obj: Any) -> bytes:
    """The bytes to store: the object without its resourceVersion (413 over MAX_STORED_BYTES)."""
    rv = obj.metadata.resource_version
    obj.metadata.resource_version = ""
    try:
        value = bytes(obj.SerializeToString(deterministic=True))
    finally:
        obj.metadata.resource_version = rv
    if len(value) > MAX_STORED_BYTES:
        raise errors.RequestEntityTooLarge(TOO_LARGE)
    return value


def decode(info: scheme.KindInfo, value: bytes, revision: int) -> Any:
    """A typed object from stored bytes, stamped with its resourceVersion."""
    obj: Any = info.message()
    obj.ParseFromString(value)
    obj.metadata.resource_version = str(revision)
    return obj


def packed(info: scheme.KindInfo, value: bytes, revision: int) -> any_pb2.Any:
    """An Any carrying the stored object at `revision`, built without decoding it."""
    return any_pb2.Any(
        type_url=scheme.TYPE_URL_PREFIX + info.message.DESCRIPTOR.full_name,
        value=value + version_fragment(revision),
    )
