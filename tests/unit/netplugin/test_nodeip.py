"""Choosing the node IP and underlay interface (netplugin/nodeip.py): explicit, never guessed."""

from __future__ import annotations

import pytest

from netplugin.nodeip import Interface, NodeAddress, NodeIPError, choose, resolve

LINKS = [
    Interface("lo", 65536, ("127.0.0.1",)),
    Interface("eth0", 1500, ("10.0.2.15",)),  # Vagrant's NAT address, the same on every VM
    Interface("eth1", 9000, ("192.168.56.11", "192.168.56.100")),
    Interface("eth2", 1500, ()),
]


def test_node_ip_finds_its_interface_and_mtu() -> None:
    assert choose(LINKS, node_ip="192.168.56.11") == NodeAddress("192.168.56.11", "eth1", 9000)
    assert choose(LINKS, node_ip=" 192.168.56.100 ").iface == "eth1"


def test_iface_takes_its_first_ipv4() -> None:
    assert choose(LINKS, iface="eth1") == NodeAddress("192.168.56.11", "eth1", 9000)


def test_both_must_agree() -> None:
    assert choose(LINKS, "192.168.56.100", "eth1").ip == "192.168.56.100"
    with pytest.raises(NodeIPError, match=r"^interface eth0 does not hold 192\.168\.56\.11$"):
        choose(LINKS, "192.168.56.11", "eth0")


@pytest.mark.parametrize(
    ("node_ip", "iface", "message"),
    [
        ("192.168.56.11x", "", "--node-ip: '192.168.56.11x' is not an IPv4 address"),
        ("192.168.56.99", "", "no interface holds 192.168.56.99"),
        ("", "eth9", "interface eth9 not found"),
        ("", "eth2", "interface eth2 has no IPv4 address"),
        ("", "", "give --node-ip or --iface"),
    ],
)
def test_clear_errors(node_ip: str, iface: str, message: str) -> None:
    with pytest.raises(NodeIPError) as err:
        choose(LINKS, node_ip, iface)
    assert str(err.value).startswith(message)


def test_resolve_without_either_never_reads_the_default_route() -> None:
    with pytest.raises(NodeIPError, match="never guessed"):
        resolve()


def test_resolve_reads_this_namespace() -> None:
    """Loopback is in every namespace: 127.0.0.1 is on lo (read with netlink, no root needed)."""
    assert resolve(node_ip="127.0.0.1").iface == "lo"
    with pytest.raises(NodeIPError, match=r"^interface nosuch0 not found$"):
        resolve(iface="nosuch0")
