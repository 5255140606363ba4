"""A pod's resolv.conf by dnsPolicy, and what reaches CRI."""

from __future__ import annotations

import pytest

from kubelet.kuberuntime_manager import sandbox_config
from kubelet.network_dns import pod_dns
from kubelet.runtime.cri_messages import to_cri_sandbox_config
from kubelet.runtime.interface import DNSConfig
from protos import core_pb2

CLUSTER_DNS = ("169.254.20.10",)


def _pod(policy: str = "", host_network: bool = False) -> core_pb2.Pod:
    pod = core_pb2.Pod()
    pod.metadata.name, pod.metadata.namespace, pod.metadata.uid = "web", "shop", "u1"
    pod.spec.dns_policy = policy
    pod.spec.host_network = host_network
    return pod


def test_cluster_first_gives_the_search_path_of_the_namespace() -> None:
    assert pod_dns(_pod(), CLUSTER_DNS, "cluster.local.") == DNSConfig(
        servers=CLUSTER_DNS,
        searches=("shop.svc.cluster.local", "svc.cluster.local", "cluster.local"),
        options=("ndots:5",),
    )


@pytest.mark.parametrize(
    ("policy", "host_network", "cluster"),
    [
        ("ClusterFirst", True, False),
        ("ClusterFirstWithHostNet", True, True),
        ("ClusterFirstWithHostNet", False, True),
        ("Default", False, False),
        ("", False, True),
    ],
)
def test_policy_table(policy: str, host_network: bool, cluster: bool) -> None:
    got = pod_dns(_pod(policy, host_network), CLUSTER_DNS, "cluster.local")
    assert (got is not None) == cluster


def test_without_cluster_dns_the_node_resolv_conf_is_used() -> None:
    assert pod_dns(_pod(), (), "cluster.local") is None


def test_dns_reaches_the_cri_sandbox_config() -> None:
    dns = pod_dns(_pod(), CLUSTER_DNS, "cluster.local")
    cri = to_cri_sandbox_config(sandbox_config(_pod(), 0, dns), "/var/log/pods")
    assert list(cri.dns_config.servers) == ["169.254.20.10"]
    assert cri.dns_config.searches[0] == "shop.svc.cluster.local"
    assert list(cri.dns_config.options) == ["ndots:5"]
    plain = to_cri_sandbox_config(sandbox_config(_pod(), 0), "/var/log/pods")
    assert not plain.HasField("dns_config")
