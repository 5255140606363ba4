"""ensure_bridge() in a node namespace: created once, corrected, idempotent, dry run.

The node agent and every CNI ADD call it; it works in the calling process's
namespace, so each step here runs a small Python program under
`nsenter --net=<node>` and prints the commands it logged.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from localcluster.netns import Machine, Underlay

PROGRAM = """
import json, sys
from netplugin.cni.bridge import ensure_bridge
from netplugin.commands import CommandLog
cmds = CommandLog(dry_run=sys.argv[4] == "dry")
ensure_bridge(sys.argv[1], sys.argv[2], int(sys.argv[3]), cmds)
print(json.dumps(cmds.commands))
"""


@pytest.fixture
def node(underlay: Underlay) -> Machine:
    return underlay.add_machine("node1", 1)


def ensure(node: Machine, cidr: str, mtu: int = 1450, dry: bool = False) -> list[str]:
    argv = [sys.executable, "-c", PROGRAM, "tk0", cidr, str(mtu), "dry" if dry else "real"]
    proc = subprocess.run(
        [*node.ns.prefix(), *argv], capture_output=True, text=True, check=True, timeout=60
    )
    commands: list[str] = json.loads(proc.stdout)
    return commands


def test_ensure_bridge_creates_corrects_and_is_idempotent(node: Machine) -> None:
    assert ensure(node, "10.244.1.1/24", dry=True) == [
        "ip link add tk0 address 0a:58:0a:f4:01:01 mtu 1450 type bridge"
    ]
    assert node.ns.ip("link", "show", "tk0", check=False).returncode != 0  # dry: nothing made

    assert ensure(node, "10.244.1.1/24") == [
        "ip link add tk0 address 0a:58:0a:f4:01:01 mtu 1450 type bridge",
        "ip addr add 10.244.1.1/24 dev tk0",
        "ip link set tk0 up",
    ]
    link = node.ns.ip("link", "show", "tk0").stdout
    assert "mtu 1450" in link and "0a:58:0a:f4:01:01" in link and ",UP" in link
    assert "10.244.1.1/24" in node.ns.ip("-o", "addr", "show", "dev", "tk0").stdout
    assert ensure(node, "10.244.1.1/24") == []  # already right: nothing to do

    # a new podCIDR and MTU: the old address goes, the new one comes
    assert ensure(node, "10.244.2.1/24", mtu=1400) == [
        "ip link set tk0 mtu 1400",
        "ip addr del 10.244.1.1/24 dev tk0",
        "ip addr add 10.244.2.1/24 dev tk0",
    ]
    addrs = node.ns.ip("-4", "-o", "addr", "show", "dev", "tk0").stdout
    assert "10.244.2.1/24" in addrs and "10.244.1.1" not in addrs


def test_ensure_bridge_refuses_a_link_that_is_no_bridge(node: Machine) -> None:
    node.ns.ip("link", "add", "tk0", "type", "veth", "peer", "name", "tk0peer")
    with pytest.raises(subprocess.CalledProcessError) as info:
        ensure(node, "10.244.1.1/24")
    assert "is a veth, not a bridge" in info.value.stderr
