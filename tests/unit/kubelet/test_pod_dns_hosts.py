"""dnsPolicy None and dnsConfig merged as Kubernetes' dns.go does (network_dns.py), the managed
/etc/hosts with hostAliases, and envFrom's objects read (kubelet_pods.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from apimachinery import codec
from apimachinery import errors as api_errors
from kubelet.errors import ContainerConfigError
from kubelet.kubelet_pods import hosts_file_content, hosts_mount, read_env_from
from kubelet.network_dns import fit_limits, parse_resolv_conf, pod_dns
from kubelet.runtime.interface import DNSConfig, Mount
from kubelet.volume_manager import PodInputs
from protos import core_pb2

CLUSTER_DNS = ("169.254.20.10",)
CLUSTER_SEARCH = ("shop.svc.cluster.local", "svc.cluster.local", "cluster.local")
NODE = DNSConfig(("10.255.255.53", "10.255.255.54"), ("corp.example",), ("timeout:2",))
DNS_CONFIG = {
    "nameservers": ["10.0.0.53", "169.254.20.10"],
    "searches": ["example.com", "cluster.local"],
    "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
}


def make_pod(**spec: Any) -> core_pb2.Pod:
    base: dict[str, Any] = {"containers": [{"name": "app", "image": "busybox"}], **spec}
    data = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "shop", "uid": "u1"},
        "spec": base,
    }
    return codec.from_dict(data)  # type: ignore[return-value]


def dns(pod: core_pb2.Pod, warn: Any = None) -> DNSConfig | None:
    return pod_dns(pod, CLUSTER_DNS, "cluster.local", lambda: NODE, warn)


# ---------------------------------------------------------------- resolv.conf


def test_policy_none_is_the_dns_config_alone() -> None:
    pod = make_pod(dnsPolicy="None", dnsConfig=DNS_CONFIG)
    assert dns(pod) == DNSConfig(
        ("10.0.0.53", "169.254.20.10"), ("example.com", "cluster.local"), ("ndots:2", "edns0")
    )


def test_cluster_first_merges_the_dns_config() -> None:
    assert dns(make_pod(dnsConfig=DNS_CONFIG)) == DNSConfig(
        servers=("169.254.20.10", "10.0.0.53"),  # appended, the repeat left out
        searches=(*CLUSTER_SEARCH, "corp.example", "example.com"),
        options=("ndots:2", "edns0"),  # merged by name, the pod's value winning
    )


def test_cluster_first_without_dns_config_has_the_node_searches_after_the_cluster() -> None:
    assert dns(make_pod()) == DNSConfig(
        CLUSTER_DNS, (*CLUSTER_SEARCH, "corp.example"), ("ndots:5",)
    )


def test_default_merges_into_the_node_config_or_leaves_it_to_the_runtime() -> None:
    assert dns(make_pod(dnsPolicy="Default")) is None
    assert dns(make_pod(dnsPolicy="Default", dnsConfig={"searches": ["a.example"]})) == DNSConfig(
        NODE.servers, ("corp.example", "a.example"), ("timeout:2",)
    )
    host_net = make_pod(
        hostNetwork=True, dnsConfig={"options": [{"name": "timeout", "value": "5"}]}
    )
    assert dns(host_net) == DNSConfig(NODE.servers, NODE.searches, ("timeout:5",))
    with_host_net = make_pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet")
    assert dns(with_host_net) == DNSConfig(
        CLUSTER_DNS, (*CLUSTER_SEARCH, "corp.example"), ("ndots:5",)
    )


def test_limits_cut_with_a_warning() -> None:
    seen: list[tuple[str, str]] = []
    pod = make_pod(dnsConfig={"nameservers": ["1.1.1.1", "2.2.2.2", "3.3.3.3"]})
    got = dns(pod, lambda r, m: seen.append((r, m)))
    assert got is not None and got.servers == ("169.254.20.10", "1.1.1.1", "2.2.2.2")
    assert seen == [
        (
            "DNSConfigForming",
            "Nameserver limits were exceeded, some nameservers have been omitted, the applied "
            "nameserver line is: 169.254.20.10 1.1.1.1 2.2.2.2",
        )
    ]
    seen.clear()
    many = DNSConfig(searches=tuple(f"d{i}.example" for i in range(40)))
    assert len(fit_limits(many, lambda r, m: seen.append((r, m))).searches) == 32
    assert seen[0][1].startswith("Search Line limits were exceeded")
    long = DNSConfig(searches=tuple("x" * 200 + str(i) for i in range(12)))
    kept = fit_limits(long).searches
    assert len(" ".join(kept)) <= 2048 and kept == long.searches[: len(kept)]


def test_parse_resolv_conf() -> None:
    text = "# comment\nnameserver 1.1.1.1\nsearch a.example b.example.\nsearch c.example\n"
    text += "options ndots:3 edns0\nnameserver 2.2.2.2 # second\n"
    assert parse_resolv_conf(text) == DNSConfig(
        ("1.1.1.1", "2.2.2.2"), ("c.example",), ("ndots:3", "edns0")
    )


# ---------------------------------------------------------------- /etc/hosts

ALIASES = [
    {"ip": "10.1.2.3", "hostnames": ["foo.local", "bar"]},
    {"ip": "fd00::9", "hostnames": ["v6"]},
]


def test_hosts_file_with_host_aliases() -> None:
    pod = make_pod(hostAliases=ALIASES, hostname="db", subdomain="web")
    assert hosts_file_content(pod, ["10.244.1.7"], "cluster.local") == (
        "# Kubernetes-managed hosts file.\n"
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "fe00::0\tip6-localnet\n"
        "fe00::0\tip6-mcastprefix\n"
        "fe00::1\tip6-allnodes\n"
        "fe00::2\tip6-allrouters\n"
        "10.244.1.7\tdb.web.shop.svc.cluster.local\tdb\n"
        "\n"
        "# Entries added by HostAliases.\n"
        "10.1.2.3\tfoo.local\tbar\n"
        "fd00::9\tv6\n"
    )
    plain = hosts_file_content(make_pod(), ["10.244.1.7"], "cluster.local")
    assert plain.endswith("fe00::2\tip6-allrouters\n10.244.1.7\tweb-0\n")


def test_host_network_hosts_file_is_the_node_file_plus_aliases() -> None:
    pod = make_pod(hostNetwork=True, hostAliases=ALIASES[:1])
    assert hosts_file_content(pod, [], "cluster.local", "127.0.0.1 localhost\n") == (
        "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n"
        "\n# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar\n"
    )


def test_hosts_mount_is_written_in_place_and_skipped_when_not_wanted(tmp_path: Path) -> None:
    pod = make_pod(hostAliases=ALIASES[:1])
    spec = pod.spec.containers[0]
    mount = asyncio.run(hosts_mount(pod, spec, tmp_path, ["10.244.1.7"], "cluster.local"))
    path = tmp_path / "etc-hosts"
    assert mount == Mount("/etc/hosts", str(path), False)
    inode = path.stat().st_ino
    assert "10.1.2.3\tfoo.local\tbar" in path.read_text()
    pod.spec.host_aliases[0].ip = "10.9.9.9"
    asyncio.run(hosts_mount(pod, spec, tmp_path, ["10.244.1.7"], "cluster.local"))
    assert path.stat().st_ino == inode and "10.9.9.9\tfoo.local" in path.read_text()
    assert asyncio.run(hosts_mount(pod, spec, tmp_path, [""], "cluster.local")) is None
    spec.volume_mounts.add(name="h", mount_path="/etc/hosts")
    assert asyncio.run(hosts_mount(pod, spec, tmp_path, ["10.244.1.7"], "c")) is None


# ---------------------------------------------------------------- envFrom's objects


def test_read_env_from_adds_what_the_volume_manager_did_not_read() -> None:
    pod = make_pod(
        containers=[
            {
                "name": "app",
                "image": "busybox",
                "envFrom": [
                    {"configMapRef": {"name": "settings"}},
                    {"secretRef": {"name": "db"}},
                    {"configMapRef": {"name": "absent", "optional": True}},
                    {"configMapRef": {"name": "known"}},
                ],
            }
        ]
    )
    asked: list[str] = []

    async def get(kind: Any, namespace: str, name: str) -> Any:
        asked.append(f"{kind.__name__}/{namespace}/{name}")
        if name == "settings":
            return core_pb2.ConfigMap(data={"A": "1"}, binary_data={"B": b"2"})
        if name == "db":
            return core_pb2.Secret(data={"PASS": b"x"})
        raise api_errors.NotFound("not found")

    inputs = PodInputs(configmaps={"known": {"K": "v"}})
    asyncio.run(read_env_from(pod, get, inputs))
    assert inputs.configmaps == {"known": {"K": "v"}, "settings": {"A": "1", "B": b"2"}}
    assert inputs.secrets == {"db": {"PASS": b"x"}}
    assert sorted(asked) == ["ConfigMap/shop/absent", "ConfigMap/shop/settings", "Secret/shop/db"]

    async def broken(kind: Any, namespace: str, name: str) -> Any:
        raise api_errors.StatusError("etcdserver: request timed out")

    with pytest.raises(ContainerConfigError, match="cannot read configmaps shop/absent"):
        asyncio.run(read_env_from(pod, broken, PodInputs()))
