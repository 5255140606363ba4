"""A container's environment and the downward API's selectors (Kubernetes' ValidateEnv,
ValidateEnvFrom, validateObjectFieldSelector, validateContainerResourceFieldSelector).

Three ways a variable gets its value, each with its own rules:

    env[i].value                  any text
    env[i].valueFrom.fieldRef     one field of the pod: metadata.name, metadata.namespace,
                                  metadata.uid, metadata.labels['k'], metadata.annotations['k'],
                                  spec.nodeName, spec.serviceAccountName, status.hostIP(s),
                                  status.podIP(s)
    env[i].valueFrom.resourceFieldRef
                                  a container's limits/requests.cpu/memory/ephemeral-storage,
                                  divided by `divisor` (cpu: 1 or 1m; memory: 1, 1k..1E, 1Ki..1Ei)
    envFrom[i]                    every key of a ConfigMap or a Secret, named prefix + key

A downwardAPI volume file takes the same selectors with another list of fields:
whole maps (metadata.labels, metadata.annotations) are allowed in a file, one per
line, but not in a variable; the node and the IPs are not (a file is written once
at mount time, before the pod has an IP). A file's resourceFieldRef must name its
container, a variable's defaults to its own.

Kubernetes first converts the path for the selector's apiVersion (only "v1" exists;
the defaulting fills it), which knows more fields than either list; a field it knows
but the list lacks is "Unsupported value", one it does not know an "error converting
fieldPath". Worked example, `fieldPath: status.phase` and `fieldPath: spec.hostname`:

    spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value:
        "status.phase": supported values: "metadata.name", "metadata.namespace", ...
    spec.containers[0].env[1].valueFrom.fieldRef.fieldPath: Invalid value:
        "spec.hostname": error converting fieldPath: field label not supported: spec.hostname
"""

from __future__ import annotations

from apimachinery import errors, quantity
from apimachinery.errors import FieldError
from apimachinery.validation_meta import has
from apimachinery.validation_names import (
    is_config_map_key,
    is_dns1123_subdomain,
    is_env_var_name,
    is_qualified_name,
)
from protos import core_pb2

ENV_FIELD_PATHS = [
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
VOLUME_FIELD_PATHS = [
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
]
# What ConvertDownwardAPIFieldLabel knows for apiVersion v1 (a superset of both lists).
CONVERTIBLE_FIELD_PATHS = frozenset(
    [
        *ENV_FIELD_PATHS,
        *VOLUME_FIELD_PATHS,
        "spec.restartPolicy",
        "spec.schedulerName",
        "status.phase",
    ]
)
RESOURCE_FIELD_PATHS = [
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
]
_MEMORY_DIVISORS = ["1", "1k", "1M", "1G", "1T", "1P", "1E"]
_MEMORY_DIVISORS += ["1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei"]
DIVISORS = {
    "cpu": (["1m", "1"], "only divisor's values 1m and 1 are supported with the cpu resource"),
    "memory": (
        _MEMORY_DIVISORS,
        f"only divisor's values {', '.join(_MEMORY_DIVISORS)} are supported with the memory "
        "resource",
    ),
    "ephemeral-storage": (
        _MEMORY_DIVISORS,
        f"only divisor's values {', '.join(_MEMORY_DIVISORS)} are supported with the local "
        "ephemeral storage resource",
    ),
}


def split_subscript(field_path: str) -> tuple[str, str] | None:
    """`metadata.labels['app']` -> ("metadata.labels", "app"); None without a subscript."""
    if not field_path.endswith("']"):
        return None
    head, sep, key = field_path[: -len("']")].partition("['")
    if not sep or not head:
        return None
    return head, key


def validate_object_field_selector(
    ref: core_pb2.ObjectFieldSelector, allowed: list[str], path: str
) -> list[FieldError]:
    """A fieldRef: a convertible path, subscripts only on labels and annotations."""
    version = ref.api_version or "v1"
    if not ref.field_path:
        return [errors.required(f"{path}.fieldPath")]
    fp, here = ref.field_path, f"{path}.fieldPath"
    if version != "v1":
        return [
            errors.invalid(
                here, fp, f"error converting fieldPath: unsupported pod version: {version}"
            )
        ]
    sub = split_subscript(fp)
    if sub is not None:
        field, key = sub
        if field == "metadata.annotations":
            return [errors.invalid(path, key, m) for m in is_qualified_name(key.lower())]
        if field == "metadata.labels":
            return [errors.invalid(path, key, m) for m in is_qualified_name(key)]
        detail = f"error converting fieldPath: field label does not support subscript: {fp}"
        return [errors.invalid(here, fp, detail)]
    if fp not in CONVERTIBLE_FIELD_PATHS:
        detail = f"error converting fieldPath: field label not supported: {fp}"
        return [errors.invalid(here, fp, detail)]
    if fp not in allowed:
        return [errors.unsupported(here, fp, sorted(allowed))]
    return []


def validate_resource_field_selector(
    ref: core_pb2.ResourceFieldSelector, path: str, *, volume: bool
) -> list[FieldError]:
    """A resourceFieldRef: a known resource and, if given, a divisor that suits it."""
    out: list[FieldError] = []
    if volume and not ref.container_name:
        out.append(errors.required(f"{path}.containerName"))
    elif not ref.resource:
        out.append(errors.required(f"{path}.resource"))
    elif ref.resource not in RESOURCE_FIELD_PATHS:
        out.append(errors.unsupported(f"{path}.resource", ref.resource, RESOURCE_FIELD_PATHS))
    if not ref.divisor:
        return out
    try:
        divisor = quantity.parse_quantity(ref.divisor)
    except quantity.QuantityError as exc:
        return [*out, errors.invalid(f"{path}.divisor", ref.divisor, str(exc))]
    if divisor == 0:
        return out  # zero means unset: 1
    allowed = DIVISORS.get(ref.resource.partition(".")[2])
    if allowed is not None and quantity.canonical(ref.divisor) not in allowed[0]:
        out.append(errors.invalid(f"{path}.divisor", ref.resource, allowed[1]))
    return out


def _key_selector(
    ref: core_pb2.ConfigMapKeySelector | core_pb2.SecretKeySelector, path: str
) -> list[FieldError]:
    out: list[FieldError] = []
    if not ref.name:
        out.append(errors.required(f"{path}.name"))
    if not ref.key:
        out.append(errors.required(f"{path}.key"))
    else:
        out.extend(errors.invalid(f"{path}.key", ref.key, m) for m in is_config_map_key(ref.key))
    return out


def _value_from(var: core_pb2.EnvVar, path: str) -> list[FieldError]:
    src = var.value_from
    out: list[FieldError] = []
    if src.HasField("field_ref"):
        out.extend(
            validate_object_field_selector(src.field_ref, ENV_FIELD_PATHS, f"{path}.fieldRef")
        )
    if src.HasField("resource_field_ref"):
        out.extend(
            validate_resource_field_selector(
                src.resource_field_ref, f"{path}.resourceFieldRef", volume=False
            )
        )
    if src.HasField("config_map_key_ref"):
        out.extend(_key_selector(src.config_map_key_ref, f"{path}.configMapKeyRef"))
    if src.HasField("secret_key_ref"):
        out.extend(_key_selector(src.secret_key_ref, f"{path}.secretKeyRef"))
    kinds = ("field_ref", "resource_field_ref", "config_map_key_ref", "secret_key_ref")
    sources = [s for s in kinds if has(src, s)]
    if not sources:
        out.append(
            errors.invalid(
                path,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or "
                "`secretKeyRef`",
            )
        )
    elif var.value:
        out.append(errors.invalid(path, "", "may not be specified when `value` is not empty"))
    elif len(sources) > 1:
        out.append(errors.invalid(path, "", "may not have more than one field specified at a time"))
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
        if var.HasField("value_from"):
            out.extend(_value_from(var, f"{here}.valueFrom"))
    return out


def _mask_trailing_dash(name: str) -> str:
    """Kubernetes checks these names as prefixes (a generated name may follow), so a
    trailing dash is allowed."""
    return name[:-1] + "a" if len(name) > 1 and name.endswith("-") else name


def validate_env_from(sources: list[core_pb2.EnvFromSource], path: str) -> list[FieldError]:
    """Each item one of configMapRef / secretRef, a valid object name; the prefix a valid
    variable name. Kubernetes reports a missing or doubled source at the list's path."""
    out: list[FieldError] = []
    for i, src in enumerate(sources):
        here = f"{path}[{i}]"
        if src.prefix:
            out.extend(
                errors.invalid(f"{here}.prefix", src.prefix, m) for m in is_env_var_name(src.prefix)
            )
        refs = [
            (f"{here}.{json_name}", getattr(src, attr))
            for attr, json_name in (("config_map_ref", "configMapRef"), ("secret_ref", "secretRef"))
            if has(src, attr)
        ]
        for ref_path, ref in refs:
            if not ref.name:
                out.append(errors.required(f"{ref_path}.name"))
            else:
                out.extend(
                    errors.invalid(f"{ref_path}.name", ref.name, m)
                    for m in is_dns1123_subdomain(_mask_trailing_dash(ref.name))
                )
        if not refs:
            out.append(
                errors.invalid(path, "", "must specify one of: `configMapRef` or `secretRef`")
            )
        elif len(refs) > 1:
            out.append(
                errors.invalid(path, "", "may not have more than one field specified at a time")
            )
    return out
