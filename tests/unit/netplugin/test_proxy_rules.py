"""The proxy's ruleset (rules.render) on fixed inputs; nft's own check mode when root.

Most tests read the rendered text: which map elements, chains and rules a
given set of service ports produces. The `nft -c` tests then hand the same
text to the real nft, in a throwaway network namespace, which parses it and
validates it against the kernel without committing anything (skipped without
root or nft).
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import time
from collections.abc import Iterator

import pytest

from localcluster.netcluster_objects import endpoints
from localcluster.netns import NetNS
from netplugin.commands import CommandLog
from netplugin.proxy.model import Endpoint, ServicePort, build
from netplugin.proxy.nft import Nft
from netplugin.proxy.rules import RenderError, RulesConfig, delete_script, render
from tests.unit.netplugin.test_proxy_model import WEB, WEB_EP

CONFIG = RulesConfig(cluster_cidr="10.244.0.0/16")
A = Endpoint("10.244.1.5", 8080)
B = Endpoint("10.244.2.7", 8080)
C = Endpoint("10.244.1.6", 8080)


def port(name: str = "web", *eps: Endpoint, **kw: object) -> ServicePort:
    fields: dict[str, object] = {
        "namespace": "default",
        "name": name,
        "port_name": "http",
        "protocol": "tcp",
        "cluster_ip": "10.96.0.10",
        "port": 80,
        "endpoints": eps,
    }
    fields.update(kw)
    return ServicePort(**fields)  # type: ignore[arg-type]


def chain(script: str, name: str) -> list[str]:
    """The rules of chain `name` in a rendered script."""
    match = re.search(rf"\tchain {re.escape(name)} {{\n(.*?)\n\t}}", script, re.S)
    assert match, f"no chain {name}"
    return [line.strip() for line in match.group(1).splitlines()]


def elements(script: str, name: str) -> list[str]:
    match = re.search(rf"add element ip tinykube {re.escape(name)} {{\n(.*?)\n}}", script, re.S)
    return [] if match is None else [e.strip().rstrip(",") for e in match.group(1).splitlines()]


def test_cluster_ip_multi_port_tcp_udp_with_named_target_ports() -> None:
    script = render(build([WEB], {"default/web": WEB_EP}), CONFIG).script
    assert elements(script, "service-ips") == [
        "10.96.0.10 . tcp . 80 : goto service-default/web/tcp/80",
        "10.96.0.10 . udp . 53 : goto service-default/web/udp/53",
    ]
    # The named targetPort "web" arrives resolved (8080) in the Endpoints.
    assert chain(script, "endpoint-default/web/tcp/80__10.244.1.5/8080") == [
        "ip saddr 10.244.1.5 jump mark-for-masquerade",
        "meta l4proto tcp dnat to 10.244.1.5:8080",
    ]
    assert chain(script, "endpoint-default/web/udp/53__10.244.2.7/5353")[-1] == (
        "meta l4proto udp dnat to 10.244.2.7:5353"
    )
    assert elements(script, "cluster-ips") == ["10.96.0.10"]


def test_random_balancing_gives_each_endpoint_one_nth() -> None:
    script = render([port("web", A, B, C)], CONFIG).script
    assert chain(script, "service-default/web/tcp/80") == [
        "numgen random mod 3 == 0 goto endpoint-default/web/tcp/80__10.244.1.5/8080",
        "numgen random mod 2 == 0 goto endpoint-default/web/tcp/80__10.244.2.7/8080",
        "goto endpoint-default/web/tcp/80__10.244.1.6/8080",
    ]


def test_unready_endpoints_get_no_chain() -> None:
    ep = endpoints("web", [(["10.244.1.5"], ["10.244.1.9"], [("http", 8080, "TCP")])])
    script = render(build([WEB], {"default/web": ep}), CONFIG).script
    assert "10.244.1.5" in script and "10.244.1.9" not in script


def test_node_port_jumps_to_an_external_chain_that_marks_for_masquerade() -> None:
    script = render([port("web", A, node_port=30080)], CONFIG).script
    assert elements(script, "service-nodeports") == [
        "tcp . 30080 : goto external-default/web/tcp/80"
    ]
    assert chain(script, "external-default/web/tcp/80") == [
        "jump mark-for-masquerade",
        "goto service-default/web/tcp/80",
    ]
    assert (
        "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport"
        " vmap @service-nodeports" in chain(script, "services")
    )
    assert chain(script, "masquerading")[-1] == "masquerade fully-random"


def test_no_endpoints_is_a_reject_entry_and_no_service_chain() -> None:
    script = render([port("web", node_port=30080, protocol="udp")], CONFIG).script
    assert elements(script, "no-endpoint-services") == ["10.96.0.10 . udp . 80 : goto reject-chain"]
    assert elements(script, "no-endpoint-nodeports") == ["udp . 30080 : goto reject-chain"]
    assert elements(script, "service-ips") == []
    assert "chain service-default" not in script
    assert chain(script, "reject-chain") == ["meta l4proto tcp reject with tcp reset", "reject"]
    assert "ct state new jump service-endpoints-check" in chain(script, "filter-forward")
    assert "ct state new jump nodeport-endpoints-check" in chain(script, "filter-input")


def test_client_ip_affinity_remembers_the_client_per_endpoint() -> None:
    ruleset = render([port("web", A, B, affinity_timeout=600)], CONFIG)
    script = ruleset.script
    aff_a = "affinity-default/web/tcp/80__10.244.1.5/8080"
    assert f"\tset {aff_a} {{ type ipv4_addr; flags dynamic,timeout; timeout 600s; }}" in script
    rules = chain(script, "service-default/web/tcp/80")
    assert rules[0] == f"ip saddr @{aff_a} goto endpoint-default/web/tcp/80__10.244.1.5/8080"
    assert rules[2].startswith("numgen random mod 2")
    assert f"update @{aff_a} {{ ip saddr }}" in chain(
        script, "endpoint-default/web/tcp/80__10.244.1.5/8080"
    )
    assert len(ruleset.sets) == 2
    assert "flush set ip tinykube affinity" not in script  # clients keep their endpoint


def test_masquerade_from_outside_the_cluster_cidr_and_without_br_netfilter() -> None:
    script = render([port("web", A)], CONFIG).script
    assert chain(script, "services")[0] == (
        "ip daddr @cluster-ips ip saddr != 10.244.0.0/16 jump mark-for-masquerade"
    )
    assert "oifname" not in script
    bridged = RulesConfig(cluster_cidr="10.244.0.0/16", masquerade_bridged=True)
    assert chain(render([], bridged).script, "nat-postrouting")[1] == (
        'oifname "tk0" ct status dnat ip saddr 10.244.0.0/16 jump mark-for-masquerade'
    )


def test_the_script_replaces_the_table_and_deletes_what_is_gone() -> None:
    first = render([port("web", A, B, affinity_timeout=60), port("db", A, cluster_ip="10.96.0.11")])
    after = render([port("web", A)], existing_chains=first.chains, existing_sets=first.sets)
    second = after.script
    # The fingerprint names the resulting table, whatever was deleted to get there.
    assert after.fingerprint == render([port("web", A)]).fingerprint != first.fingerprint
    head = second.splitlines()[1:3]
    assert head == ["add table ip tinykube", "flush table ip tinykube"]
    assert "flush map ip tinykube service-ips" in second
    assert "delete chain ip tinykube service-default/db/tcp/80" in second
    assert "delete chain ip tinykube endpoint-default/web/tcp/80__10.244.2.7/8080" in second
    assert "delete set ip tinykube affinity-default/web/tcp/80__10.244.1.5/8080" in second
    assert "delete chain ip tinykube service-default/web/tcp/80\n" not in second
    assert "delete chain ip tinykube nat-prerouting" not in second


def test_same_input_same_bytes() -> None:
    ports = build([WEB], {"default/web": WEB_EP})
    assert render(ports, CONFIG).script == render(list(ports), CONFIG).script


def test_1000_services_render_one_script_quickly() -> None:
    base = ipaddress.IPv4Address("10.96.1.0")
    ports = [
        port(f"s{i}", A, B, cluster_ip=str(base + i), node_port=30000 + i) for i in range(1000)
    ]
    started = time.perf_counter()
    ruleset = render(ports, CONFIG)
    assert time.perf_counter() - started < 2.0
    assert ruleset.script.count("add table ip tinykube") == 1
    assert len(elements(ruleset.script, "service-ips")) == 1000
    assert len(ruleset.chains) == 4000 + len(render([]).chains)


def test_bad_input_is_named() -> None:
    with pytest.raises(RenderError, match=re.escape("cluster_cidr: '10.244.0.0/33'")):
        RulesConfig(cluster_cidr="10.244.0.0/33")
    with pytest.raises(RenderError, match="nft name too long"):
        render([port("x" * 250, A)])


# ---- nft's check mode, in a throwaway namespace --------------------------------------------


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("nsenter"):
        pytest.skip("needs root, nft and nsenter")
    ns = NetNS(f"tkrules{os.getpid()}")
    ns.create()
    try:
        yield ns.name
    finally:
        ns.delete()


def test_nft_accepts_the_rendered_ruleset(netns: str) -> None:
    nft = Nft(CommandLog(), netns)
    ports = [
        *build([WEB], {"default/web": WEB_EP}),
        port("aff", A, B, C, cluster_ip="10.96.0.12", affinity_timeout=60),
        port("empty", cluster_ip="10.96.0.13", node_port=30013),
    ]
    config = RulesConfig(cluster_cidr="10.244.0.0/16", masquerade_bridged=True)
    ruleset = render(ports, config)
    nft.check(ruleset.script)  # parsed and validated, nothing committed
    assert not nft.has_table("tinykube")
    nft.apply(ruleset.script)
    listed = nft.list_ruleset("tinykube")
    assert "numgen random mod 3 0 goto endpoint-default/aff/tcp/80__10.244.1.5/8080" in listed
    found = nft.list_table("tinykube")
    assert found is not None and found[0] == set(ruleset.chains)
    # A second sync with less deletes what went away, in one transaction.
    again = render(ports[:1], config, existing_chains=found[0], existing_sets=found[1])
    nft.apply(again.script)
    assert nft.list_table("tinykube") == (set(again.chains), {"cluster-ips"})  # no affinity
    nft.apply(delete_script())
    nft.apply(delete_script())  # idempotent
    assert not nft.has_table("tinykube")
