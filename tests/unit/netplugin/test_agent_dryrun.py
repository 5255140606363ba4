"""`tinykube netplugin --dry-run` (NetPluginAgent.dry_run): the commands, and nothing changed.

No root needed: the node IP is 127.0.0.1 on lo (present in every namespace, read
with netlink), the API server is the unit tests' in-process one, and a dry run
only reads the kernel. The proxy and masquerade are off here because both would
run `nft` against this machine's own ruleset; the integration tests cover them
inside node namespaces.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from apimachinery.client import Client
from netplugin.agent import AgentConfig, AgentError, NetPluginAgent
from netplugin.commands import CommandLog
from netplugin.constants import ANNOTATION_NODE_IP, ANNOTATION_VTEP_MAC, CNI_CONF_FILE
from netplugin.overlay import kernel
from protos import core_pb2, meta_pb2

MAC2 = "02:00:00:00:00:02"


def node(name: str, cidr: str, annotations: dict[str, str] | None = None) -> core_pb2.Node:
    obj = core_pb2.Node(metadata=meta_pb2.ObjectMeta(name=name, annotations=annotations or {}))
    obj.spec.pod_cidr = cidr
    return obj


def config(tmp_path: Path, **kw: object) -> AgentConfig:
    base: dict[str, object] = {
        "node_name": "node1",
        "node_ip": "127.0.0.1",
        "cni_conf_dir": str(tmp_path / "net.d"),
        "cni_data_dir": str(tmp_path / "cni"),
        "masquerade": False,
        "proxy": False,
        "pod_cidr_timeout": 2.0,
    }
    base.update(kw)
    return AgentConfig(**base)  # type: ignore[arg-type]


@pytest.mark.skipif(kernel.read_device("tinykube.1") is not None, reason="tinykube.1 exists here")
async def test_dry_run_prints_every_command_and_changes_nothing(
    client: Client, tmp_path: Path
) -> None:
    await client.create(node("node1", "10.244.0.0/24"))
    await client.create(
        node("node2", "10.244.1.0/24", {ANNOTATION_VTEP_MAC: MAC2, ANNOTATION_NODE_IP: "10.9.9.2"})
    )
    cmds = CommandLog(dry_run=True)
    commands = await NetPluginAgent(config(tmp_path), client, cmds).dry_run()
    text = "\n".join(commands)
    assert (
        "ip link add tinykube.1 mtu 65486 type vxlan id 1 local 127.0.0.1 dev lo "
        "dstport 8472 nolearning"
    ) in commands
    assert "ip addr add 10.244.0.0/32 dev tinykube.1" in commands
    assert f"ip neigh add 10.244.1.0 lladdr {MAC2} dev tinykube.1 nud permanent" in commands
    assert f"bridge fdb add {MAC2} dev tinykube.1 dst 10.9.9.2 self permanent" in commands
    assert "ip route add 10.244.1.0/24 via 10.244.1.0 dev tinykube.1 onlink" in commands
    conf = tmp_path / "net.d" / CNI_CONF_FILE
    assert f"cat > {conf} <<'EOF'" in text and '"subnet": "10.244.0.0/24"' in text
    # nothing changed: no device, no file, no annotations on the Node
    # (pyroute2's blocking API runs its own loop: not on this thread's running one)
    assert await asyncio.to_thread(kernel.read_device, "tinykube.1") is None
    assert not conf.exists()
    own = await client.get("nodes", "node1")
    assert ANNOTATION_VTEP_MAC not in own.metadata.annotations


async def test_dry_run_without_a_pod_cidr_is_a_clear_error(client: Client, tmp_path: Path) -> None:
    await client.create(node("node1", ""))
    agent = NetPluginAgent(config(tmp_path, pod_cidr_timeout=0.3), client, CommandLog(True))
    with pytest.raises(AgentError, match=r"^node node1 has no podCIDR \(waited 0.3 s\)$"):
        await agent.dry_run()


async def test_dry_run_for_a_missing_node(client: Client, tmp_path: Path) -> None:
    agent = NetPluginAgent(config(tmp_path, pod_cidr_timeout=0.3), client, CommandLog(True))
    with pytest.raises(AgentError, match=r"^node node1 does not exist"):
        await agent.dry_run()


async def test_dry_run_without_an_api_server_is_a_clear_error(tmp_path: Path) -> None:
    client = Client(f"unix:{tmp_path}/nothing.sock", timeout=1)
    agent = NetPluginAgent(config(tmp_path, pod_cidr_timeout=0.5), client, CommandLog(True))
    try:
        with pytest.raises(AgentError, match=r"^cannot list from the API server at unix:"):
            await agent.dry_run()
    finally:
        await client.close()
