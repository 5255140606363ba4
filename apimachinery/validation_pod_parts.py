"""PodSpec validation, part two: volumes and container resources.

Split from validation_pod to keep files small; the rules are Kubernetes'
(pkg/apis/core/validation: validateVolumes, validateDownwardAPIVolumeSource,
validateProjectedVolumeSource, ValidateResourceRequirements) with their wording:

    volumes[i]           exactly one source ("must specify a volume type" when none,
                         "may not specify more than 1 volume type" for each extra)
    items[i].path        relative, no `..` step, not starting with `..`; modes 0-0777
    downwardAPI          each file one of fieldRef / resourceFieldRef (a file's
                         resourceFieldRef names its container); Kubernetes reports a
                         file's problems at the source's path, without the index:
        spec.volumes[0].downwardAPI.path: Invalid value: "/etc/x": must be a relative path
    projected            each source one of secret / configMap / downwardAPI, and no
                         file path twice across the sources:
        spec.volumes[1].projected: Invalid value: "creds": conflicting duplicate paths
    resources.limits[r]  r is cpu, memory, ephemeral-storage, hugepages-* or a
                         domain-prefixed extended resource; the value a quantity >= 0;
                         requests[r] <= limits[r]:
        spec.containers[0].resources.requests[cpu]: Invalid value: "2":
            must be less than or equal to cpu limit of 1

The environment's rules are in validation_pod_env. And here is the container a
`logs` or `exec` request means (`choose_container`), which the API server checks
before it calls the kubelet and the kubelet checks again.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from google.protobuf.message import Message

from apimachinery import errors, quantity
from apimachinery.errors import FieldError
from apimachinery.validation_meta import NONNEGATIVE, check_name, has
from apimachinery.validation_names import is_dns1123_label, is_qualified_name
from apimachinery.validation_pod_env import (
    VOLUME_FIELD_PATHS,
    validate_object_field_selector,
    validate_resource_field_selector,
)
from protos import core_pb2

HOST_PATH_TYPES = [
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
]
STANDARD_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")


def one_of(value: str, allowed: list[str], path: str) -> list[FieldError]:
    """Unsupported value unless `value` is empty (the default) or allowed."""
    if value and value not in allowed:
        return [errors.unsupported(path, value, allowed)]
    return []


VOLUME_SOURCES = {
    "emptyDir": "empty_dir",
    "hostPath": "host_path",
    "configMap": "config_map",
    "secret": "secret",
    "downwardAPI": "downward_api",
    "projected": "projected",
}
FILE_MODE_MSG = "must be a number between 0 and 0777 (octal), both inclusive"


def _volume_sources(vol: core_pb2.Volume) -> list[str]:
    return [json_name for json_name, attr in VOLUME_SOURCES.items() if has(vol, attr)]


def _mode(msg: Message, attr: str, path: str) -> list[FieldError]:
    """A file mode (`mode`, `defaultMode`): 0 to 0777 when set."""
    if msg.HasField(attr):
        value = getattr(msg, attr)
        if not 0 <= value <= 0o777:
            return [errors.invalid(path, value, FILE_MODE_MSG)]
    return []


def local_descending_path(target: str, path: str) -> list[FieldError]:
    """A path that stays inside the directory it is joined to: relative, and no `..` step.

    Kubernetes' rule for volumeMounts[].subPath and, with local_non_reserved_path,
    for the items of configMap and secret volumes. `/etc/evil` or `a/../../x` would
    have the kubelet write or mount outside the volume, on the host, as root.
    """
    out: list[FieldError] = []
    if target.startswith("/"):
        out.append(errors.invalid(path, target, "must be a relative path"))
    if ".." in target.split("/"):
        out.append(errors.invalid(path, target, "must not contain '..'"))
    return out


def local_non_reserved_path(target: str, path: str) -> list[FieldError]:
    """local_descending_path, and no leading `..` (the kubelet's `..data` link is reserved)."""
    out = local_descending_path(target, path)
    if target.startswith("..") and not target.startswith("../"):
        out.append(errors.invalid(path, target, "must not start with '..'"))
    return out


def _validate_items(items: list[core_pb2.KeyToPath], path: str, start: int = 0) -> list[FieldError]:
    """Kubernetes' validateKeyToPath for each item (`start`: the first one's index)."""
    out: list[FieldError] = []
    for i, item in enumerate(items, start):
        here = f"{path}[{i}]"
        if not item.key:
            out.append(errors.required(f"{here}.key"))
        if not item.path:
            out.append(errors.required(f"{here}.path"))
        else:
            out.extend(local_non_reserved_path(item.path, f"{here}.path"))
        out.extend(_mode(item, "mode", f"{here}.mode"))
    return out


def _downward_file(item: core_pb2.DownwardAPIVolumeFile, path: str) -> list[FieldError]:
    """One file of a downwardAPI volume or projection. Kubernetes reports its problems at the
    source's path (`...downwardAPI.path`), not the item's; kept, so messages match."""
    out: list[FieldError] = []
    if not item.path:
        out.append(errors.required(f"{path}.path"))
    out.extend(local_non_reserved_path(item.path, f"{path}.path"))
    if item.HasField("field_ref"):
        out.extend(
            validate_object_field_selector(item.field_ref, VOLUME_FIELD_PATHS, f"{path}.fieldRef")
        )
        if item.HasField("resource_field_ref"):
            out.append(
                errors.invalid(
                    path,
                    "resource",
                    "fieldRef and resourceFieldRef can not be specified simultaneously",
                )
            )
    elif item.HasField("resource_field_ref"):
        out.extend(
            validate_resource_field_selector(
                item.resource_field_ref, f"{path}.resourceFieldRef", volume=True
            )
        )
    else:
        out.append(errors.required(path, "one of fieldRef and resourceFieldRef is required"))
    out.extend(_mode(item, "mode", f"{path}.mode"))
    return out


def _projection(
    source: core_pb2.VolumeProjection, here: str, root: str, seen: set[str]
) -> list[FieldError]:
    """One projection's errors, each item's followed by its clash with an earlier path
    (`seen`, shared across the sources), in Kubernetes' order."""
    out: list[FieldError] = []

    def claim(file_path: str, shown: str) -> None:
        if file_path in seen:
            out.append(errors.invalid(root, shown, "conflicting duplicate paths"))
        seen.add(file_path)

    for attr, json_name in (("secret", "secret"), ("config_map", "configMap")):
        if has(source, attr):
            ref = getattr(source, attr)
            if not ref.name:
                out.append(errors.required(f"{here}.{json_name}.name"))
            for i, item in enumerate(ref.items):
                out.extend(_validate_items([item], f"{here}.{json_name}.items", start=i))
                if item.path:
                    claim(item.path, ref.name)
    if source.HasField("downward_api"):
        for file in source.downward_api.items:
            out.extend(_downward_file(file, f"{here}.downwardAPI"))
            if file.path:
                claim(file.path, file.path)
    return out


def validate_projected(src: core_pb2.ProjectedVolumeSource, path: str) -> list[FieldError]:
    """Each source one kind; no file path twice across the sources (Kubernetes names the
    volume's path and the secret's or config map's name, or the doubled path)."""
    out = _mode(src, "default_mode", f"{path}.defaultMode")
    seen: set[str] = set()
    for i, source in enumerate(src.sources):
        here = f"{path}.sources[{i}]"
        out.extend(_projection(source, here, path, seen))
        kinds = [a for a in ("secret", "config_map", "downward_api") if source.HasField(a)]
        if len(kinds) > 1:
            out.append(errors.forbidden(here, "may not specify more than 1 volume type per source"))
    return out


def _volume_source(vol: core_pb2.Volume, here: str) -> list[FieldError]:
    out: list[FieldError] = []
    if vol.HasField("host_path"):
        if not vol.host_path.path:
            out.append(errors.required(f"{here}.hostPath.path"))
        out.extend(one_of(vol.host_path.type, HOST_PATH_TYPES[1:], f"{here}.hostPath.type"))
    if vol.HasField("config_map"):
        if not vol.config_map.name:
            out.append(errors.required(f"{here}.configMap.name"))
        out.extend(_validate_items(list(vol.config_map.items), f"{here}.configMap.items"))
        out.extend(_mode(vol.config_map, "default_mode", f"{here}.configMap.defaultMode"))
    if vol.HasField("secret"):
        if not vol.secret.secret_name:
            out.append(errors.required(f"{here}.secret.secretName"))
        out.extend(_validate_items(list(vol.secret.items), f"{here}.secret.items"))
        out.extend(_mode(vol.secret, "default_mode", f"{here}.secret.defaultMode"))
    if vol.HasField("empty_dir"):
        out.extend(one_of(vol.empty_dir.medium, ["Memory"], f"{here}.emptyDir.medium"))
        if vol.empty_dir.size_limit:
            out.extend(validate_quantity(vol.empty_dir.size_limit, f"{here}.emptyDir.sizeLimit"))
    if vol.HasField("downward_api"):
        dapi, dpath = vol.downward_api, f"{here}.downwardAPI"
        out.extend(_mode(dapi, "default_mode", f"{dpath}.defaultMode"))
        for item in dapi.items:
            out.extend(_downward_file(item, dpath))
    if vol.HasField("projected"):
        out.extend(validate_projected(vol.projected, f"{here}.projected"))
    return out


def validate_volumes(
    volumes: list[core_pb2.Volume], path: str
) -> tuple[set[str], list[FieldError]]:
    """The volume names (for volumeMounts) and the errors."""
    out: list[FieldError] = []
    names: set[str] = set()
    for i, vol in enumerate(volumes):
        here = f"{path}[{i}]"
        sources = _volume_sources(vol)
        if not sources:
            out.append(errors.required(here, "must specify a volume type"))
        for extra in sources[1:]:
            out.append(
                errors.forbidden(f"{here}.{extra}", "may not specify more than 1 volume type")
            )
        out.extend(_volume_source(vol, here))
        if not vol.name:
            out.append(errors.required(f"{here}.name"))
        else:
            out.extend(check_name(vol.name, f"{here}.name", is_dns1123_label))
        if vol.name in names:
            out.append(errors.duplicate(f"{here}.name", vol.name))
        names.add(vol.name)
    return names, out


def validate_quantity(text: str, path: str) -> list[FieldError]:
    try:
        value = quantity.parse_quantity(text)
    except quantity.QuantityError as exc:
        return [errors.invalid(path, text, str(exc))]
    return [errors.invalid(path, text, NONNEGATIVE)] if value < 0 else []


def _resource_name(name: str, path: str) -> list[FieldError]:
    out = [errors.invalid(path, name, m) for m in is_qualified_name(name)]
    if "/" not in name:
        if name not in STANDARD_CONTAINER_RESOURCES and not name.startswith("hugepages-"):
            out.append(errors.invalid(path, name, "must be a standard resource for containers"))
    elif name.split("/")[0].endswith("kubernetes.io") or name.startswith("requests."):
        out.append(errors.invalid(path, name, "doesn't follow extended resource name standard"))
    return out


def validate_resources(res: core_pb2.ResourceRequirements, path: str) -> list[FieldError]:
    out: list[FieldError] = []
    parsed: dict[str, dict[str, Fraction]] = {"limits": {}, "requests": {}}
    for section, values in (("limits", res.limits), ("requests", res.requests)):
        for name in sorted(values):
            here = f"{path}.{section}[{name}]"
            out.extend(_resource_name(name, here))
            problems = validate_quantity(values[name], here)
            out.extend(problems)
            if not problems:
                parsed[section][name] = quantity.parse_quantity(values[name])
    for name, request in parsed["requests"].items():
        limit = parsed["limits"].get(name)
        if limit is not None and request > limit:
            out.append(
                errors.invalid(
                    f"{path}.requests[{name}]",
                    quantity.canonical(res.requests[name]),
                    f"must be less than or equal to {name} limit of "
                    f"{quantity.canonical(res.limits[name])}",
                )
            )
    return out


def choose_container(pod: Any, container: str) -> str:
    """The container a logs/exec request names: any container or init container of the pod;
    when none is named, the pod's only (app) container. BadRequest otherwise, with kubectl's
    wording."""
    names = [c.name for c in pod.spec.containers]
    if container:
        if container not in names and container not in {c.name for c in pod.spec.init_containers}:
            raise errors.BadRequest(
                f"container {container} is not valid for pod {pod.metadata.name}"
            )
        return container
    if len(names) == 1:
        return str(names[0])
    raise errors.BadRequest(
        f"a container name must be specified for pod {pod.metadata.name}, "
        f"choose one of: [{' '.join(names)}]"
    )
