"""The CNI network configuration: rendering, writing and validating (each bad field named)."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from netplugin.cni.config import parse_netconf, render_conflist, write_conflist
from netplugin.cni.errors import DecodeFailure, IncompatibleVersion, InvalidConfig
from netplugin.constants import CNI_CONF_FILE


def plugin_conf(**overrides: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "cniVersion": "1.0.0",
        "name": "tinykube",
        "type": "tinykube-cni",
        "bridge": "tk0",
        "subnet": "10.244.1.0/24",
        "mtu": 1450,
        "dataDir": "/var/lib/tinykube/cni",
    }
    conf.update(overrides)
    return {k: v for k, v in conf.items() if v is not None}


def test_render_conflist_is_the_contract_shape() -> None:
    assert render_conflist("10.244.1.0/24") == {
        "cniVersion": "1.0.0",
        "name": "tinykube",
        "plugins": [
            {
                "type": "tinykube-cni",
                "bridge": "tk0",
                "subnet": "10.244.1.0/24",
                "gateway": "10.244.1.1",
                "mtu": 1450,
                "hairpinMode": True,
                "dataDir": "/var/lib/tinykube/cni",
            }
        ],
    }


def test_render_conflist_options_and_bad_subnet() -> None:
    conflist = render_conflist("10.244.7.0/24", mtu=1400, data_dir="/tmp/d", bridge="br9")
    plugin = conflist["plugins"][0]
    assert (plugin["mtu"], plugin["dataDir"], plugin["bridge"]) == (1400, "/tmp/d", "br9")
    with pytest.raises(ValueError, match='"subnet"'):
        render_conflist("10.244.7.1/24")  # host bits set


def test_parse_the_rendered_conflist_and_a_single_plugin() -> None:
    from_list = parse_netconf(json.dumps(render_conflist("10.244.1.0/24")).encode())
    single = parse_netconf(json.dumps(plugin_conf()).encode())
    for conf in (from_list, single):
        assert conf.name == "tinykube"
        assert conf.subnet == ipaddress.IPv4Network("10.244.1.0/24")
        assert conf.gateway == ipaddress.IPv4Address("10.244.1.1")
        assert conf.gateway_cidr == "10.244.1.1/24"
        assert conf.bridge == "tk0" and conf.mtu == 1450 and conf.hairpin_mode


def test_defaults_and_old_versions() -> None:
    conf = parse_netconf(plugin_conf(bridge=None, mtu=None, dataDir=None, cniVersion="0.4.0"))
    assert (conf.bridge, conf.mtu, conf.data_dir) == ("tk0", 1500, "/var/lib/tinykube/cni")
    assert conf.cni_version == "0.4.0"
    assert parse_netconf(plugin_conf(gateway="10.244.1.254")).gateway_cidr == "10.244.1.254/24"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"cniVersion": None}, '"cniVersion"'),
        ({"name": ""}, '"name"'),
        ({"name": "a/b"}, '"name"'),
        ({"type": 3}, '"type"'),
        ({"subnet": None}, '"subnet"'),
        ({"subnet": "10.244.1.0/33"}, '"subnet"'),
        ({"subnet": "fd00::/64"}, '"subnet"'),
        ({"subnet": "10.244.1.0/31"}, '"subnet"'),
        ({"gateway": "10.244.2.1"}, '"gateway"'),
        ({"gateway": "10.244.1.255"}, '"gateway"'),
        ({"gateway": "nope"}, '"gateway"'),
        ({"bridge": "a-very-long-bridge-name"}, '"bridge"'),
        ({"bridge": "tk 0"}, '"bridge"'),
        ({"mtu": 100}, '"mtu"'),
        ({"mtu": "1450"}, '"mtu"'),
        ({"mtu": True}, '"mtu"'),
        ({"hairpinMode": "yes"}, '"hairpinMode"'),
        ({"dataDir": "relative/dir"}, '"dataDir"'),
        ({"prevResult": []}, '"prevResult"'),
    ],
)
def test_each_bad_field_is_named(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidConfig) as info:
        parse_netconf(plugin_conf(**overrides))
    assert field in info.value.msg
    assert info.value.code == 7


def test_unsupported_version_is_code_1() -> None:
    with pytest.raises(IncompatibleVersion) as info:
        parse_netconf(plugin_conf(cniVersion="9.9.9"))
    assert info.value.code == 1 and "9.9.9" in info.value.msg


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_undecodable_stdin_is_code_6(raw: bytes) -> None:
    with pytest.raises(DecodeFailure) as info:
        parse_netconf(raw)
    assert info.value.code == 6


def test_a_conflist_without_our_plugin() -> None:
    with pytest.raises(InvalidConfig, match='"plugins"'):
        parse_netconf({"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "bridge"}]})


def test_write_conflist_atomic_and_reports_changes(tmp_path: Path) -> None:
    conf_dir = tmp_path / "net.d"
    conflist = render_conflist("10.244.1.0/24")
    assert write_conflist(str(conf_dir), conflist) is True
    target = conf_dir / CNI_CONF_FILE
    assert json.loads(target.read_text()) == conflist
    assert write_conflist(str(conf_dir), conflist) is False  # unchanged
    assert write_conflist(str(conf_dir), render_conflist("10.244.2.0/24")) is True
    assert json.loads(target.read_text())["plugins"][0]["subnet"] == "10.244.2.0/24"
    assert sorted(p.name for p in conf_dir.iterdir()) == [CNI_CONF_FILE]  # no temporary left
