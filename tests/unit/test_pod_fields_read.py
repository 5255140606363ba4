"""Every field of PodSpec and Container is honoured or refused, never silently ignored.

A Kubernetes manifest decodes strictly (an unknown field is an error), so each field
the API accepts is a promise: the kubelet or the scheduler acts on it, or a validation
rule refuses the values it cannot honour. This test walks the proto descriptors of
PodSpec and Container, recursively through their message fields, and fails on any
field whose name appears in none of the sources that would keep that promise:

    kubelet/**/*.py  scheduler/**/*.py  apimachinery/validation*.py

as an attribute (`.stdin_once`) or a string (`HasField("dns_config")`, `("tty", ...)`).
The grep is coarse - a common name such as `name` or `value` is found for every
message that has one - but it catches what matters: a new field added to the proto
and forgotten everywhere else. The exceptions, fields honoured elsewhere (the API
server, the controllers) or on purpose not at all, are listed in ALLOWED with why.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from google.protobuf.descriptor import Descriptor

from protos import core_pb2

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("kubelet/**/*.py", "scheduler/**/*.py", "apimachinery/validation*.py")
# Values, not structures: their inner fields are the codec's business.
LEAVES = {"tinykube.meta.IntOrString", "google.protobuf.Timestamp"}

ALLOWED: dict[str, str] = {
    "PodSpec.priority_class_name": "no PriorityClass kind and no Priority admission here: the "
    "name is kept for the reader; the scheduler's queue orders by `priority` itself",
    "PodSpec.preemption_policy": "the scheduler does not preempt (an unschedulable pod waits), "
    "so PreemptLowerPriority and Never behave alike",
}


def _names_in_sources() -> set[str]:
    pattern = re.compile(r"""[."']([a-z][a-z0-9_]*)\b""")
    found: set[str] = set()
    for glob in SOURCES:
        for path in REPO.glob(glob):
            found.update(pattern.findall(path.read_text()))
    return found


@cache
def names_in_sources() -> frozenset[str]:
    return frozenset(_names_in_sources())


def walk(message: Descriptor, seen: set[str]) -> Iterator[tuple[str, str]]:
    """(path, snake_case name) of every field below `message`, each message type once."""
    if message.full_name in seen:
        return
    seen.add(message.full_name)
    for fd in message.fields:
        path = f"{message.name}.{fd.name}"
        yield path, fd.name
        sub = fd.message_type
        if sub is None or sub.full_name in LEAVES or sub.GetOptions().map_entry:
            continue
        yield from walk(sub, seen)


def fields() -> list[tuple[str, str]]:
    seen: set[str] = set()
    out = list(walk(core_pb2.PodSpec.DESCRIPTOR, seen))
    out += list(walk(core_pb2.Container.DESCRIPTOR, seen))
    return out


def test_every_pod_spec_and_container_field_is_read_or_validated() -> None:
    found = names_in_sources()
    ignored = [path for path, name in fields() if name not in found and path not in ALLOWED]
    assert ignored == [], (
        "fields neither the kubelet/scheduler read nor validation refuses; honour them, "
        "refuse them, or explain them in ALLOWED"
    )


def test_the_walk_reaches_nested_and_new_fields() -> None:
    paths = {path for path, _ in fields()}
    for expected in (
        "PodSpec.dns_config",
        "PodDNSConfigOption.value",
        "HostAlias.hostnames",
        "Container.env_from",
        "ConfigMapEnvSource.optional",
        "ResourceFieldSelector.divisor",
        "Volume.projected",
        "VolumeProjection.downward_api",
        "DownwardAPIVolumeFile.mode",
        "LifecycleHandler.sleep",
        "Container.stdin_once",
        "Container.restart_policy",
    ):
        assert expected in paths, expected
    assert not any(p.startswith("IntOrString.") for p in paths)


def test_allowed_entries_are_real_and_still_needed() -> None:
    paths = {path for path, _ in fields()}
    found = names_in_sources()
    for path, why in ALLOWED.items():
        assert path in paths, f"{path} is no field of PodSpec or Container any more"
        assert why, path
        assert path.split(".")[-1] not in found, f"{path} is read now: drop it from ALLOWED"


def test_a_forgotten_field_would_be_caught() -> None:
    assert "no_such_field_anywhere" not in names_in_sources()
    assert "stdin_once" in names_in_sources()
