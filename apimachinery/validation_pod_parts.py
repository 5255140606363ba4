"""PodSpec validation, part two: volumes, container resources and environment.

Split from validation_pod to keep files small; the rules are Kubernetes'
(pkg/apis/core/validation: validateVolumes, ValidateResourceRequirements,
ValidateEnv) with their wording:

    volumes[i]           exactly one source ("must specify a volume type" when none,
                         "may not specify more than 1 volume type" for each extra)
    resources.limits[r]  r is cpu, memory, ephemeral-storage, hugepages-* or a
                         domain-prefixed extended resource; the value a quantity >= 0;
                         requests[r] <= limits[r]:
        spec.containers[0].resources.requests[cpu]: Invalid value: "2":
            must be less than or equal to cpu limit of 1
    env[i]               a valid name; valueFrom exactly one source, not with value

And the container a `logs` or `exec` request means (`choose_container`), which
the API server checks before it calls the kubelet and the kubelet checks again.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from apimachinery import errors, quantity
from apimachinery.errors import FieldError
from apimachinery.validation_meta import NONNEGATIVE, check_name, has
from apimachinery.validation_names import (
    is_config_map_key,
    is_dns1123_label,
    is_env_var_name,
    is_qualified_name,
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
FIELD_REF_PATHS = [
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
]


def one_of(value: str, allowed: list[str], path: str) -> list[FieldError]:
    """Unsupported value unless `value` is empty (the default) or allowed."""
    if value and value not in allowed:
        return [errors.unsupported(path, value, allowed)]
    return []


def _volume_sources(vol: core_pb2.Volume) -> list[str]:
    return [s for s in ("emptyDir", "hostPath", "configMap", "secret") if has(vol, _attr(s))]


def _attr(json_name: str) -> str:
    return {"emptyDir": "empty_dir", "hostPath": "host_path", "configMap": "config_map"}.get(
        json_name, json_name
    )


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


def _validate_items(items: list[core_pb2.KeyToPath], path: str) -> list[FieldError]:
    out: list[FieldError] = []
    for i, item in enumerate(items):
        here = f"{path}[{i}]"
        if not item.key:
            out.append(errors.required(f"{here}.key"))
        if not item.path:
            out.append(errors.required(f"{here}.path"))
        else:
            out.extend(local_non_reserved_path(item.path, f"{here}.path"))
        if item.HasField("mode") and not 0 <= item.mode <= 0o777:
            out.append(
                errors.invalid(
                    f"{here}.mode",
                    item.mode,
                    "must be a number between 0 and 0777 (octal), both inclusive",
                )
            )
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
        if vol.HasField("host_path"):
            if not vol.host_path.path:
                out.append(errors.required(f"{here}.hostPath.path"))
            out.extend(one_of(vol.host_path.type, HOST_PATH_TYPES[1:], f"{here}.hostPath.type"))
        if vol.HasField("config_map"):
            if not vol.config_map.name:
                out.append(errors.required(f"{here}.configMap.name"))
            out.extend(_validate_items(list(vol.config_map.items), f"{here}.configMap.items"))
        if vol.HasField("secret"):
            if not vol.secret.secret_name:
                out.append(errors.required(f"{here}.secret.secretName"))
            out.extend(_validate_items(list(vol.secret.items), f"{here}.secret.items"))
        if vol.HasField("empty_dir"):
            out.extend(one_of(vol.empty_dir.medium, ["Memory"], f"{here}.emptyDir.medium"))
            if vol.empty_dir.size_limit:
                out.extend(
                    validate_quantity(vol.empty_dir.size_limit, f"{here}.emptyDir.sizeLimit")
                )
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


def validate_env(env: list[core_pb2.EnvVar], path: str) -> list[FieldError]:
    out: list[FieldError] = []
    for i, var in enumerate(env):
        here = f"{path}[{i}]"
        if not var.name:
            out.append(errors.required(f"{here}.name"))
        else:
            out.extend(
                errors.invalid(f"{here}.name", var.name, m) for m in is_env_var_name(var.name)
            )
        if not var.HasField("value_from"):
            continue
        src, vf = var.value_from, f"{here}.valueFrom"
        sources = [s for s in ("field_ref", "config_map_key_ref", "secret_key_ref") if has(src, s)]
        if src.HasField("field_ref"):
            fp = src.field_ref.field_path
            if not fp:
                out.append(errors.required(f"{vf}.fieldRef.fieldPath"))
            elif fp.split("[")[0] not in FIELD_REF_PATHS:
                out.append(errors.unsupported(f"{vf}.fieldRef.fieldPath", fp, FIELD_REF_PATHS))
        for attr, json_name in (
            ("config_map_key_ref", "configMapKeyRef"),
            ("secret_key_ref", "secretKeyRef"),
        ):
            if has(src, attr):
                ref = getattr(src, attr)
                if not ref.name:
                    out.append(errors.required(f"{vf}.{json_name}.name"))
                if not ref.key:
                    out.append(errors.required(f"{vf}.{json_name}.key"))
                else:
                    out.extend(
                        errors.invalid(f"{vf}.{json_name}.key", ref.key, m)
                        for m in is_config_map_key(ref.key)
                    )
        if not sources:
            out.append(
                errors.invalid(
                    vf,
                    "",
                    "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or "
                    "`secretKeyRef`",
                )
            )
        elif var.value:
            out.append(errors.invalid(vf, "", "may not be specified when `value` is not empty"))
        elif len(sources) > 1:
            out.append(
                errors.invalid(vf, "", "may not have more than one field specified at a time")
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
