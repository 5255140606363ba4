"""A pod's name resolution: dnsConfig and hostAliases (Kubernetes' validatePodDNSConfig and
ValidateHostAliases).

`dnsPolicy` says where the pod's /etc/resolv.conf comes from (ClusterFirst: the
cluster DNS; Default: the node's; None: nothing but `dnsConfig`); `dnsConfig` adds
to it (kubelet/network_dns.py merges the two). The limits are libc's, as Kubernetes
states them:

    nameservers    at most 3 (glibc reads no more: MAXNS), each an IP address
    searches       at most 32 domains, 2048 characters joined with spaces, each a
                   DNS subdomain (a trailing dot allowed)
    options        each with a name (`ndots`), the value optional (`"2"`)

and with dnsPolicy None there must be a dnsConfig with at least one nameserver, or
the pod would resolve nothing:

    spec.dnsConfig.nameservers: Required value: must provide at least one DNS
        nameserver when `dnsPolicy` is None

`hostAliases` become lines of the pod's /etc/hosts: each an IP address and DNS
subdomain names.

A list that breaks a limit is shown as Go prints it (`[]string{"a", "b"}`), as
Kubernetes' field errors do.
"""

from __future__ import annotations

from collections.abc import Sequence

from apimachinery import errors
from apimachinery.errors import FieldError
from apimachinery.validation_meta import Shown
from apimachinery.validation_names import is_dns1123_subdomain, is_valid_ip
from protos import core_pb2

MAX_DNS_NAMESERVERS = 3
MAX_DNS_SEARCH_PATHS = 32
MAX_DNS_SEARCH_LIST_CHARS = 2048


def go_strings(values: Sequence[str]) -> Shown:
    """A list as Go's %#v prints a []string."""
    return Shown("[]string{" + ", ".join(f'"{v}"' for v in values) + "}")


def _nameservers(nameservers: Sequence[str], path: str) -> list[FieldError]:
    out: list[FieldError] = []
    if len(nameservers) > MAX_DNS_NAMESERVERS:
        out.append(
            errors.invalid(
                path,
                go_strings(nameservers),
                f"must not have more than {MAX_DNS_NAMESERVERS} nameservers",
            )
        )
    for i, server in enumerate(nameservers):
        out.extend(errors.invalid(f"{path}[{i}]", server, m) for m in is_valid_ip(server))
    return out


def _searches(searches: Sequence[str], path: str) -> list[FieldError]:
    out: list[FieldError] = []
    if len(searches) > MAX_DNS_SEARCH_PATHS:
        out.append(
            errors.invalid(
                path,
                go_strings(searches),
                f"must not have more than {MAX_DNS_SEARCH_PATHS} search paths",
            )
        )
    if len(" ".join(searches)) > MAX_DNS_SEARCH_LIST_CHARS:
        out.append(
            errors.invalid(
                path,
                go_strings(searches),
                f"must not have more than {MAX_DNS_SEARCH_LIST_CHARS} characters (including "
                "spaces) in the search list",
            )
        )
    for i, search in enumerate(searches):
        domain = search.removesuffix(".")  # a trailing dot is fine
        out.extend(errors.invalid(f"{path}[{i}]", domain, m) for m in is_dns1123_subdomain(domain))
    return out


def validate_dns_config(spec: core_pb2.PodSpec, path: str) -> list[FieldError]:
    """spec.dnsConfig against spec.dnsPolicy (`path` is the PodSpec's)."""
    here = f"{path}.dnsConfig"
    if spec.dns_policy == "None":
        if not spec.HasField("dns_config"):
            return [errors.required(here, "must provide `dnsConfig` when `dnsPolicy` is None")]
        if not spec.dns_config.nameservers:
            return [
                errors.required(
                    f"{here}.nameservers",
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                )
            ]
    if not spec.HasField("dns_config"):
        return []
    config = spec.dns_config
    out = _nameservers(list(config.nameservers), f"{here}.nameservers")
    out.extend(_searches(list(config.searches), f"{here}.searches"))
    for i, option in enumerate(config.options):
        if not option.name:
            out.append(errors.required(f"{here}.options[{i}]", "must not be empty"))
    return out


def validate_host_aliases(aliases: Sequence[core_pb2.HostAlias], path: str) -> list[FieldError]:
    out: list[FieldError] = []
    for i, alias in enumerate(aliases):
        here = f"{path}[{i}]"
        out.extend(errors.invalid(f"{here}.ip", alias.ip, m) for m in is_valid_ip(alias.ip))
        for j, name in enumerate(alias.hostnames):
            out.extend(
                errors.invalid(f"{here}.hostnames[{j}]", name, m)
                for m in is_dns1123_subdomain(name)
            )
    return out
