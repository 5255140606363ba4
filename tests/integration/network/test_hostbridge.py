"""The runtime tests' host bridge (localcluster/hostbridge.py) recovers from a killed run.

A run killed before its teardown leaves its `tkt<pid>` bridge behind with the
subnet's gateway address. The next run's bridge would then share the subnet
with it, and the host's route to the pods could go to the dead bridge: every
pod probe of that run fails. `setup()` deletes such a leftover first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcluster.hostbridge import HostBridgeNetwork

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None, reason="needs root and iproute2"
)

SUBNET = "10.99.251.0/24"  # not the runtime tests' subnet: the two never meet
STALE = f"tkt{(os.getpid() + 1) % 100000}x"


def _bridges() -> dict[str, list[str]]:
    out = subprocess.run(
        ["ip", "-j", "addr", "show", "type", "bridge"], capture_output=True, text=True, check=True
    ).stdout
    return {
        link["ifname"]: [a["local"] for a in link.get("addr_info", [])]
        for link in json.loads(out or "[]")
    }


@pytest.fixture
def stale_bridge() -> Iterator[str]:
    subprocess.run(["ip", "link", "add", STALE, "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", "10.99.251.1/24", "dev", STALE], check=True)
        yield STALE
    finally:
        subprocess.run(["ip", "link", "del", STALE], capture_output=True, check=False)


def test_setup_deletes_a_killed_runs_bridge_with_the_same_gateway(
    stale_bridge: str, tmp_path: Path
) -> None:
    net = HostBridgeNetwork(tmp_path / "conf", tmp_path / "data", SUBNET)
    assert net.stale_bridges() == [stale_bridge]
    try:
        net.setup()
        bridges = _bridges()
        assert stale_bridge not in bridges
        assert "10.99.251.1" in bridges[net.bridge]
    finally:
        net.teardown()
    assert net.bridge not in _bridges()


def test_setup_leaves_other_bridges_alone(tmp_path: Path) -> None:
    other = f"tkt{(os.getpid() + 2) % 100000}y"
    subprocess.run(["ip", "link", "add", other, "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", "10.99.252.1/24", "dev", other], check=True)
        net = HostBridgeNetwork(tmp_path / "conf", tmp_path / "data", SUBNET)
        assert net.stale_bridges() == []
        net.setup()
        net.teardown()
        assert other in _bridges()
    finally:
        subprocess.run(["ip", "link", "del", other], capture_output=True, check=False)
