"""The VXLAN device: reuse or replace, and in-place fixes (netplugin/overlay/device.py)."""

from __future__ import annotations

import dataclasses

import pytest

from netplugin.overlay.device import VxlanLink, VxlanSpec, device_action, device_fixes

SPEC = VxlanSpec.for_node("10.201.0.11", "eth1", 1500, "10.244.0.0")
GOOD = VxlanLink(
    name="tinykube.1",
    index=7,
    kind="vxlan",
    mac="02:00:00:00:00:01",
    mtu=1450,
    up=True,
    ipv4=("10.244.0.0/32",),
    vni=1,
    port=8472,
    local="10.201.0.11",
    link="eth1",
    learning=False,
)


def test_spec_follows_flannel() -> None:
    assert SPEC.mtu == 1450 and SPEC.vni == 1 and SPEC.port == 8472
    assert " ".join(SPEC.create_argv()) == (
        "ip link add tinykube.1 mtu 1450 type vxlan id 1 local 10.201.0.11 dev eth1 "
        "dstport 8472 nolearning"
    )


def test_absent_is_created_with_address_and_up() -> None:
    assert device_action(SPEC, None) == "create"
    assert device_fixes(SPEC, None).argv("tinykube.1") == [
        ["ip", "addr", "add", "10.244.0.0/32", "dev", "tinykube.1"],
        ["ip", "link", "set", "tinykube.1", "up"],
    ]


def test_right_device_is_reused_untouched() -> None:
    assert device_action(SPEC, GOOD) == "reuse"
    assert device_fixes(SPEC, GOOD).argv("tinykube.1") == []


@pytest.mark.parametrize(
    "change",
    [
        {"local": "10.201.0.22"},
        {"link": "eth0"},
        {"vni": 2},
        {"port": 4789},
        {"learning": True},
        {"kind": "bridge"},
    ],
)
def test_a_wrong_fixed_parameter_replaces(change: dict[str, object]) -> None:
    assert device_action(SPEC, dataclasses.replace(GOOD, **change)) == "replace"  # type: ignore[arg-type]


def test_mtu_address_and_state_are_fixed_in_place() -> None:
    drifted = dataclasses.replace(GOOD, mtu=1400, up=False, ipv4=("10.244.9.0/32",))
    assert device_action(SPEC, drifted) == "reuse"
    assert device_fixes(SPEC, drifted).argv("tinykube.1") == [
        ["ip", "link", "set", "tinykube.1", "mtu", "1450"],
        ["ip", "addr", "del", "10.244.9.0/32", "dev", "tinykube.1"],
        ["ip", "addr", "add", "10.244.0.0/32", "dev", "tinykube.1"],
        ["ip", "link", "set", "tinykube.1", "up"],
    ]
