"""A container's environment, as the kubelet computes it before CreateContainer (Kubernetes'
makeEnvironmentVariables in kubelet_pods.go, with pkg/fieldpath and the resource helpers).

Four sources, later ones overriding earlier ones of the same name:

1. the Service variables of the pod's namespace (kubelet/envvars.py), unless
   `enableServiceLinks: false`;
2. `envFrom`, in order: every key of the ConfigMap or Secret named, as
   prefix + key. A key that is not a valid variable name (`my-key!`, `1X`) is
   skipped, and the pod gets a Warning event InvalidEnvironmentVariableNames
   naming the keys (`Keys [1X, a=b] from the EnvFrom configMap shop/settings
   were skipped since they are considered invalid environment variable
   names.`). A missing object is an error (CreateContainerConfigError) unless
   the reference is `optional`. envFrom values are taken as they are: no
   `$(VAR)` expansion;
3. `env`, in order: `value` with `$(VAR)` references expanded against what
   is defined so far (`$$` is a literal `$`, unknown references stay), or
   `valueFrom`:
     fieldRef          metadata.name/namespace/uid, metadata.labels['k'],
                       metadata.annotations['k'], spec.nodeName,
                       spec.serviceAccountName, status.podIP, status.podIPs,
                       status.hostIP, status.hostIPs (the lists comma-joined)
     resourceFieldRef  a container's limits.* / requests.* (cpu, memory,
                       ephemeral-storage), divided by `divisor` (unset: 1) and
                       rounded up; the container is this one unless named
     configMapKeyRef, secretKeyRef   one key of a ConfigMap / Secret.

A limit the container does not set reads as the node's allocatable (Kubernetes'
defaultPodLimitsForDownwardAPI: the most the container could get); an unset
request reads as the explicit limit (what the API server's defaulting would have
made it), else 0. Worked example, limits {cpu: 250m}, node allocatable
{cpu: "2", memory: 4Gi}:

    limits.cpu                 1        (250m rounded up to whole CPUs)
    limits.cpu, divisor 1m     250
    limits.memory, divisor 1Mi 4096     (no memory limit: the node's 4Gi)
    requests.cpu, divisor 1m   250      (the limit)
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction

from apimachinery import quantity
from apimachinery.validation_names import is_env_var_name
from kubelet.errors import ContainerConfigError
from protos import core_pb2

# name -> data; None when the object does not exist.
Lookup = Callable[[str], Mapping[str, str | bytes] | None]
# (reason, message) -> a Warning event on the pod.
Warn = Callable[[str, str], None]

_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")
_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.*)'\]$")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: known names are replaced, `$$` is a literal `$`,
    unknown references stay as written.

    expand("http://$(HOST):$(PORT)/$(NOPE) costs $$5", {"HOST": "a", "PORT": "80"})
    == "http://a:80/$(NOPE) costs $5"
    """

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        return env.get(name, match.group(0))

    return _REF.sub(sub, text)


def field_value(
    pod: core_pb2.Pod, path: str, pod_ips: Sequence[str], host_ips: Sequence[str]
) -> str:
    """The value of an env fieldRef (podFieldSelectorRuntimeValue)."""
    meta = pod.metadata
    simple = {
        "metadata.name": meta.name,
        "metadata.namespace": meta.namespace,
        "metadata.uid": meta.uid,
        "spec.nodeName": pod.spec.node_name,
        "spec.serviceAccountName": pod.spec.service_account_name,
        "status.podIP": pod_ips[0] if pod_ips else "",
        "status.podIPs": ",".join(pod_ips),
        "status.hostIP": host_ips[0] if host_ips else "",
        "status.hostIPs": ",".join(host_ips),
    }
    if path in simple:
        return str(simple[path])
    match = _SUBSCRIPT.match(path)
    if match:
        table = meta.labels if match.group(1) == "labels" else meta.annotations
        return str(table.get(match.group(2), ""))
    raise ContainerConfigError(f"unsupported fieldRef fieldPath {path!r}")


def _container(pod: core_pb2.Pod, name: str) -> core_pb2.Container:
    for ctr in [*pod.spec.containers, *pod.spec.init_containers]:
        if ctr.name == name:
            return ctr
    raise ContainerConfigError(f"container {name} not found")


def resource_value(
    pod: core_pb2.Pod,
    spec: core_pb2.Container,
    selector: core_pb2.ResourceFieldSelector,
    allocatable: Mapping[str, str],
) -> str:
    """A resourceFieldRef's value as a decimal string (rules and example: module docstring)."""
    ctr = _container(pod, selector.container_name) if selector.container_name else spec
    kind, _, resource = selector.resource.partition(".")
    if kind not in ("limits", "requests") or resource not in ("cpu", "memory", "ephemeral-storage"):
        raise ContainerConfigError(f"unsupported container resource : {selector.resource}")
    limit = ctr.resources.limits.get(resource, "")
    if kind == "limits":
        amount = limit or allocatable.get(resource, "")
    else:
        amount = ctr.resources.requests.get(resource, "") or limit
    try:
        value = quantity.parse_quantity(amount or "0")
        divisor = quantity.parse_quantity(selector.divisor or "0") or Fraction(1)
    except quantity.QuantityError as exc:
        raise ContainerConfigError(f"resourceFieldRef {selector.resource}: {exc}") from None
    if resource == "cpu":  # in millicores, each rounded up first, as MilliValue() does
        top, bottom = math.ceil(value * 1000), math.ceil(divisor * 1000)
    else:
        top, bottom = math.ceil(value), math.ceil(divisor)
    if bottom <= 0:
        raise ContainerConfigError(f"resourceFieldRef {selector.resource}: divisor must be > 0")
    return str(math.ceil(Fraction(top, bottom)))


def _key(lookup: Lookup | None, kind: str, name: str, key: str, optional: bool) -> str | None:
    data = lookup(name) if lookup is not None else None
    if data is None or key not in data:
        if optional:
            return None
        what = f'{kind} "{name}" not found' if data is None else f'key "{key}" not in {kind} {name}'
        raise ContainerConfigError(f"couldn't find key {key}: {what}")
    value = data[key]
    return value.decode() if isinstance(value, bytes) else value


def env_from(
    pod: core_pb2.Pod,
    spec: core_pb2.Container,
    configmaps: Lookup | None,
    secrets: Lookup | None,
    warn: Warn | None,
) -> dict[str, str]:
    """Step 2 of the module docstring: the envFrom variables, in order."""
    env: dict[str, str] = {}
    for source in spec.env_from:
        ref: core_pb2.ConfigMapEnvSource | core_pb2.SecretEnvSource
        if source.HasField("config_map_ref"):
            kind, ref, lookup = "configmap", source.config_map_ref, configmaps
        elif source.HasField("secret_ref"):
            kind, ref, lookup = "secret", source.secret_ref, secrets
        else:
            continue
        data = lookup(ref.name) if lookup is not None else None
        if data is None:
            if ref.optional:
                continue
            raise ContainerConfigError(f'{kind} "{ref.name}" not found')
        invalid: list[str] = []
        for key in sorted(data):
            name = source.prefix + key
            if is_env_var_name(name):
                invalid.append(name)  # with the prefix, as Kubernetes names them
                continue
            value = data[key]
            env[name] = value.decode(errors="replace") if isinstance(value, bytes) else value
        if invalid and warn is not None:
            what = "configMap" if kind == "configmap" else "secret"
            warn(
                "InvalidEnvironmentVariableNames",
                f"Keys [{', '.join(invalid)}] from the EnvFrom {what} "
                f"{pod.metadata.namespace}/{ref.name} were skipped since they are considered "
                "invalid environment variable names.",
            )
    return env


def resolve_env(
    pod: core_pb2.Pod,
    spec: core_pb2.Container,
    *,
    pod_ip: str = "",
    host_ip: str = "",
    configmaps: Lookup | None = None,
    secrets: Lookup | None = None,
    service_env: Sequence[tuple[str, str]] = (),
    allocatable: Mapping[str, str] | None = None,
    warn: Warn | None = None,
) -> tuple[tuple[str, str], ...]:
    """The container's env as (name, value) pairs, in order, references expanded."""
    env: dict[str, str] = dict(service_env)
    env.update(env_from(pod, spec, configmaps, secrets, warn))
    pod_ips = (pod_ip,) if pod_ip else ()
    host_ips = (host_ip,) if host_ip else ()
    for var in spec.env:
        source = var.value_from if var.HasField("value_from") else None
        value: str | None
        if source is None:
            value = expand(var.value, env)
        elif source.HasField("field_ref"):
            value = field_value(pod, source.field_ref.field_path, pod_ips, host_ips)
        elif source.HasField("resource_field_ref"):
            value = resource_value(pod, spec, source.resource_field_ref, allocatable or {})
        elif source.HasField("config_map_key_ref"):
            ref = source.config_map_key_ref
            value = _key(configmaps, "configmap", ref.name, ref.key, ref.optional)
        elif source.HasField("secret_key_ref"):
            secret_ref = source.secret_key_ref
            value = _key(secrets, "secret", secret_ref.name, secret_ref.key, secret_ref.optional)
        else:
            raise ContainerConfigError(f"env {var.name}: valueFrom names no source")
        if value is not None:
            env[var.name] = value
    return tuple(env.items())
