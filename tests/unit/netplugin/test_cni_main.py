"""The tinykube-cni executable's protocol: environment, stdin, JSON on stdout, exit status."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyroute2  # noqa: F401  -- loaded for real, so main's light loader stays out of the way
import pytest

from netplugin.cni import main as cni_main
from netplugin.cni.install import install_bin_dir, system_plugin, thin_client_script
from netplugin.cni.plugin import host_veth_name
from netplugin.cni.result import Interface, add_result
from netplugin.cni.thin import FULL_PLUGIN
from netplugin.constants import CNI_PLUGIN_TYPE

BIN = Path(sys.executable).parent / "tinykube-cni"
CONF = {
    "cniVersion": "1.0.0",
    "name": "tinykube",
    "type": "tinykube-cni",
    "subnet": "10.244.1.0/24",
    "dataDir": "/nonexistent/tinykube-cni-unit",
}


def invoke(env: dict[str, str], conf: Any = CONF) -> tuple[int, dict[str, Any]]:
    stdin = io.BytesIO(conf if isinstance(conf, bytes) else json.dumps(conf).encode())
    stdout = io.StringIO()
    code = cni_main.run(env, stdin, stdout)
    out = stdout.getvalue()
    assert out.count("\n") <= 1
    return code, json.loads(out) if out else {}


def env(command: str, **extra: str) -> dict[str, str]:
    base = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": "abc123",
        "CNI_NETNS": "/run/netns/tinykube-cni-unit-missing",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/opt/cni/bin",
    }
    base.update(extra)
    return {k: v for k, v in base.items() if v}


def test_version() -> None:
    code, out = invoke({"CNI_COMMAND": "VERSION"}, b"")
    assert code == 0
    assert out == {
        "cniVersion": "1.0.0",
        "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0"],
    }


@pytest.mark.parametrize(
    ("environ", "needle"),
    [
        ({}, "CNI_COMMAND"),
        ({"CNI_COMMAND": "FROB"}, "CNI_COMMAND"),
        (env("ADD", CNI_CONTAINERID=""), "CNI_CONTAINERID"),
        (env("ADD", CNI_CONTAINERID="../x"), "CNI_CONTAINERID"),
        (env("ADD", CNI_IFNAME=""), "CNI_IFNAME"),
        (env("ADD", CNI_IFNAME="eth0-is-far-too-long"), "CNI_IFNAME"),
        (env("ADD", CNI_NETNS=""), "CNI_NETNS"),
        (env("CHECK", CNI_NETNS=""), "CNI_NETNS"),
        (env("ADD", CNI_ARGS="K8S_POD_NAME"), "CNI_ARGS"),
    ],
)
def test_bad_environment_is_code_4(environ: dict[str, str], needle: str) -> None:
    code, out = invoke(environ)
    assert code == 1
    assert out["code"] == 4 and needle in out["msg"]
    assert out["cniVersion"] == "1.0.0"


def test_bad_config_is_code_7_naming_the_field() -> None:
    code, out = invoke(env("ADD"), {**CONF, "subnet": "10.244.1.0/99"})
    assert code == 1 and out["code"] == 7 and '"subnet"' in out["msg"]


def test_check_needs_version_0_4_0() -> None:
    code, out = invoke(env("CHECK"), {**CONF, "cniVersion": "0.3.1"})
    assert code == 1 and out["code"] == 1 and "CHECK" in out["msg"]


def test_garbage_on_stdin_is_code_6() -> None:
    code, out = invoke(env("ADD"), b"{{{")
    assert code == 1 and out["code"] == 6


def test_missing_netns_is_code_3_naming_the_path() -> None:
    code, out = invoke(env("ADD"), {**CONF, "cniVersion": "0.4.0"})
    assert code == 1
    assert out["code"] == 3
    assert "/run/netns/tinykube-cni-unit-missing" in out["msg"]
    assert out["cniVersion"] == "0.4.0"  # errors answer in the config's version


def test_result_shapes_per_version() -> None:
    import ipaddress

    interfaces = [Interface("tk0", "0a:58:0a:f4:01:01"), Interface("eth0", "02:00", "/ns")]
    address = ipaddress.IPv4Interface("10.244.1.2/24")
    gateway = ipaddress.IPv4Address("10.244.1.1")
    new = add_result("1.0.0", interfaces, address, gateway, 1)
    assert new["ips"] == [{"address": "10.244.1.2/24", "gateway": "10.244.1.1", "interface": 1}]
    assert new["interfaces"][1] == {"name": "eth0", "mac": "02:00", "sandbox": "/ns"}
    assert new["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.244.1.1"}]
    old = add_result("0.4.0", interfaces, address, gateway, 1)
    assert old["ips"][0]["version"] == "4" and old["cniVersion"] == "0.4.0"


def test_host_veth_names_fit_and_are_stable() -> None:
    name = host_veth_name("4f1c" * 16, "eth0")
    assert len(name) == 15 and name.startswith("veth")
    assert name == host_veth_name("4f1c" * 16, "eth0")
    assert name != host_veth_name("4f1c" * 16, "net1")


def test_the_installed_binary_keeps_stdout_pure_json() -> None:
    """The real console script: VERSION, then an error whose log goes to stderr only."""
    version = subprocess.run(
        [str(BIN)], env={**os.environ, "CNI_COMMAND": "VERSION"}, capture_output=True, timeout=30
    )
    assert version.returncode == 0
    assert json.loads(version.stdout)["cniVersion"] == "1.0.0"
    failed = subprocess.run(
        [str(BIN)],
        env={**os.environ, **env("ADD")},
        input=json.dumps(CONF).encode(),
        capture_output=True,
        timeout=30,
    )
    assert failed.returncode != 0
    assert json.loads(failed.stdout)["code"] == 3
    assert b"failed" in failed.stderr


def test_install_bin_dir(tmp_path: Path) -> None:
    if system_plugin("loopback") is None:
        pytest.skip("the system has no CNI loopback plugin (containernetworking-plugins)")
    dest = tmp_path / "bin"
    install_bin_dir(str(dest))
    thin = dest / CNI_PLUGIN_TYPE
    before = thin.stat().st_mtime_ns
    install_bin_dir(str(dest))  # idempotent
    assert thin.stat().st_mtime_ns == before
    assert thin.read_text() == thin_client_script()
    assert thin.read_text().startswith(f"#!{sys.executable} -IS\n")
    assert os.readlink(dest / FULL_PLUGIN) == str(BIN)  # the full plugin, for the fallback
    assert (dest / "loopback").resolve() == system_plugin("loopback")
    assert os.access(thin, os.X_OK)
    names = {p.name for p in dest.iterdir()}
    assert {CNI_PLUGIN_TYPE, FULL_PLUGIN, "loopback"} <= names
    assert not any(n.startswith(".") for n in names)


def test_install_replaces_an_old_link_but_not_a_foreign_file(tmp_path: Path) -> None:
    if system_plugin("loopback") is None:
        pytest.skip("the system has no CNI loopback plugin (containernetworking-plugins)")
    dest = tmp_path / "bin"
    dest.mkdir()
    (dest / CNI_PLUGIN_TYPE).symlink_to(BIN)  # what installs before the thin client made
    install_bin_dir(str(dest))
    assert not (dest / CNI_PLUGIN_TYPE).is_symlink()
    assert (dest / CNI_PLUGIN_TYPE).read_text() == thin_client_script()
    (dest / CNI_PLUGIN_TYPE).unlink()
    (dest / CNI_PLUGIN_TYPE).write_text("#!/bin/sh\necho someone else's\n")
    with pytest.raises(FileExistsError, match="is not tinykube's"):
        install_bin_dir(str(dest))


LIGHT = """
import sys
from netplugin.cni.main import _light_pyroute2
_light_pyroute2()
from netplugin.cni import plugin
from netplugin.cni.bridge import link_index
with plugin.IPRoute() as ipr:
    print(link_index(ipr, "lo"), "pyroute2.ndb.main" in sys.modules, "pyroute2.ipdb" in sys.modules)
"""


def test_the_light_pyroute2_loader_gives_a_working_iproute_alone() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", LIGHT], capture_output=True, text=True, timeout=60, check=True
    )
    assert proc.stdout.split() == ["1", "False", "False"]
