"""What a configMap, secret, downwardAPI or projected volume holds: its payload
(Kubernetes' MakePayload of pkg/volume/{configmap,secret}, CollectData of
pkg/volume/downwardapi, collectData of pkg/volume/projected, and pkg/fieldpath).

A payload maps a relative path to a FileProjection (bytes and mode); the
AtomicWriter (atomic_writer.py) makes it the volume's content. Building it
is pure: the pod, the objects' data, the node's allocatable -- no disk.

* configMap / secret (`key_payload`): every key as a file of that name, or
  only the `items` listed, each at its `path` with its own `mode`; the
  others get the volume's defaultMode, else 0644. An item naming a missing
  key is an error (`configmap references non-existent config key: k`)
  unless the source is `optional`, when it is left out;
* downwardAPI (`downward_api_payload`), one file per item:
    fieldRef         metadata.name, metadata.namespace, metadata.uid,
                     metadata.labels, metadata.annotations (all of them, one
                     `key="value"` line each, sorted by key, the value quoted
                     as Go's %q does, no final newline), or one of them:
                     metadata.labels['app'] (the bare value)
    resourceFieldRef limits.cpu, limits.memory, limits.ephemeral-storage and
                     the same requests of the container named, divided by
                     the divisor (default 1) and rounded up. A limit the
                     container does not set is the node's allocatable, as
                     in Kubernetes: the most it could get.
* projected (`projected_payload`): the secret, configMap and downwardAPI
  sources above merged into one payload, in order (a later source's path
  wins), with the projected volume's defaultMode.

Worked example. Labels {tier: web, app: 'say "hi"'}, limits cpu 500m and
memory 64Mi, and the items `labels` (metadata.labels), `cpu` (limits.cpu,
divisor 1m), `mem` (limits.memory, divisor 1Mi) and `cores` (limits.cpu)
give four files:

    labels   app="say \\"hi\\""        two lines, sorted by key
             tier="web"
    cpu      500
    mem      64
    cores    1                     (half a CPU, rounded up)
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction

from apimachinery import quantity
from kubelet.atomic_writer import FileProjection
from kubelet.errors import VolumeError
from protos import core_pb2

DEFAULT_FILE_MODE = 0o644

Data = Mapping[str, str | bytes]
# name -> data; None when the object does not exist.
Lookup = Callable[[str], Data | None]

_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")
_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}


# ---- configMap and secret ----------------------------------------------------------------------


def key_payload(
    kind: str,
    data: Data,
    items: Sequence[core_pb2.KeyToPath],
    default_mode: int,
    optional: bool,
) -> dict[str, FileProjection]:
    """MakePayload of a configMap ("configmap") or secret ("secret") source."""

    def content(value: str | bytes) -> bytes:
        return value.encode() if isinstance(value, str) else value

    if not items:
        return {key: FileProjection(content(v), default_mode) for key, v in data.items()}
    payload: dict[str, FileProjection] = {}
    for item in items:
        if item.key not in data:
            if optional:
                continue
            what = "config key" if kind == "configmap" else "secret key"
            raise VolumeError(f"{kind} references non-existent {what}: {item.key}")
        mode = item.mode if item.HasField("mode") else default_mode
        payload[item.path] = FileProjection(content(data[item.key]), mode)
    return payload


# ---- downward API ------------------------------------------------------------------------------


def go_quote(text: str) -> str:
    """Go's strconv.Quote: printable characters as they are, the rest escaped."""
    out = ['"']
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char.isprintable():  # Python's idea of printable is Go's IsPrint
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    out.append('"')
    return "".join(out)


def format_map(values: Mapping[str, str]) -> str:
    """fieldpath.FormatMap: `key="value"` lines sorted by key, no final newline."""
    return "\n".join(f"{key}={go_quote(values[key])}" for key in sorted(values))


def field_path_value(pod: core_pb2.Pod, path: str) -> str:
    """fieldpath.ExtractFieldPathAsString: the metadata fields a downwardAPI volume offers."""
    meta = pod.metadata
    match = _SUBSCRIPT.match(path)
    if match:
        table = meta.labels if match.group(1) == "labels" else meta.annotations
        return table.get(match.group(2), "")
    simple = {
        "metadata.name": meta.name,
        "metadata.namespace": meta.namespace,
        "metadata.uid": meta.uid,
    }
    if path in simple:
        return simple[path]
    if path == "metadata.labels":
        return format_map(dict(meta.labels))
    if path == "metadata.annotations":
        return format_map(dict(meta.annotations))
    raise VolumeError(f"unsupported fieldPath: {path}")


def _find_container(pod: core_pb2.Pod, name: str) -> core_pb2.Container:
    for container in [*pod.spec.containers, *pod.spec.init_containers]:
        if container.name == name:
            return container
    raise VolumeError(f'container "{name}" not found in pod')


def resource_value(
    pod: core_pb2.Pod,
    selector: core_pb2.ResourceFieldSelector,
    allocatable: Mapping[str, str],
) -> str:
    """ExtractResourceValueByContainerNameAndNodeAllocatable, as a decimal string."""
    container = _find_container(pod, selector.container_name)
    kind, _, resource = selector.resource.partition(".")
    if kind not in ("limits", "requests") or not resource:
        raise VolumeError(f"unsupported container resource : {selector.resource}")
    table = container.resources.limits if kind == "limits" else container.resources.requests
    amount = table.get(resource, "")
    if not amount and kind == "limits":
        amount = allocatable.get(resource, "")  # MergeContainerResourceLimits
    try:
        divisor = quantity.parse_quantity(selector.divisor or "0")
        value = quantity.parse_quantity(amount or "0")
    except quantity.QuantityError as err:
        raise VolumeError(f"resourceFieldRef {selector.resource}: {err}") from None
    divisor = divisor or Fraction(1)  # unset or "0": 1, as Kubernetes reads it
    if resource == "cpu":  # in millicores, both rounded up first, as MilliValue() does
        top, bottom = math.ceil(value * 1000), math.ceil(divisor * 1000)
    elif resource in ("memory", "ephemeral-storage") or resource.startswith("hugepages-"):
        top, bottom = math.ceil(value), math.ceil(divisor)
    else:
        raise VolumeError(f"unsupported container resource : {selector.resource}")
    if bottom <= 0:
        raise VolumeError(f"resourceFieldRef {selector.resource}: divisor must be positive")
    return str(math.ceil(Fraction(top, bottom)))


def downward_api_payload(
    pod: core_pb2.Pod,
    items: Sequence[core_pb2.DownwardAPIVolumeFile],
    default_mode: int,
    allocatable: Mapping[str, str],
) -> dict[str, FileProjection]:
    """CollectData: one file per item, from a fieldRef or a resourceFieldRef."""
    payload: dict[str, FileProjection] = {}
    for item in items:
        mode = item.mode if item.HasField("mode") else default_mode
        if item.HasField("field_ref"):
            text = field_path_value(pod, item.field_ref.field_path)
        elif item.HasField("resource_field_ref"):
            text = resource_value(pod, item.resource_field_ref, allocatable)
        else:
            raise VolumeError(f"downwardAPI item {item.path!r}: needs fieldRef or resourceFieldRef")
        payload[item.path] = FileProjection(text.encode(), mode)
    return payload


# ---- projected ---------------------------------------------------------------------------------


def source_data(lookup: Lookup | None, kind: str, name: str, volume: str, optional: bool) -> Data:
    """The object's data; {} for a missing optional one, VolumeError for a missing required one."""
    data = lookup(name) if lookup is not None else None
    if data is None and not optional:
        raise VolumeError(f'{kind} "{name}" not found (volume {volume})')
    return data or {}


def projected_payload(
    pod: core_pb2.Pod,
    volume: core_pb2.Volume,
    configmaps: Lookup | None,
    secrets: Lookup | None,
    allocatable: Mapping[str, str],
) -> dict[str, FileProjection]:
    """collectData of a projected volume: its sources merged, in order."""
    source = volume.projected
    mode = source.default_mode if source.HasField("default_mode") else DEFAULT_FILE_MODE
    payload: dict[str, FileProjection] = {}
    for index, projection in enumerate(source.sources):
        if projection.HasField("secret"):
            sec = projection.secret
            data = source_data(secrets, "secret", sec.name, volume.name, sec.optional)
            payload.update(key_payload("secret", data, sec.items, mode, sec.optional))
        elif projection.HasField("config_map"):
            cm = projection.config_map
            data = source_data(configmaps, "configmap", cm.name, volume.name, cm.optional)
            payload.update(key_payload("configmap", data, cm.items, mode, cm.optional))
        elif projection.HasField("downward_api"):
            items = projection.downward_api.items
            payload.update(downward_api_payload(pod, items, mode, allocatable))
        else:
            raise VolumeError(f"volume {volume.name!r}: projected source {index} names no source")
    return payload


def referenced_names(volume: core_pb2.Volume) -> tuple[set[str], set[str]]:
    """The ConfigMaps and Secrets (by name) one volume projects."""
    configmaps: set[str] = set()
    secrets: set[str] = set()
    if volume.HasField("config_map"):
        configmaps.add(volume.config_map.name)
    elif volume.HasField("secret"):
        secrets.add(volume.secret.secret_name)
    elif volume.HasField("projected"):
        for projection in volume.projected.sources:
            if projection.HasField("config_map"):
                configmaps.add(projection.config_map.name)
            elif projection.HasField("secret"):
                secrets.add(projection.secret.name)
    return configmaps, secrets
