"""cordon / uncordon / drain against a real API server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from click.testing import CliRunner

from apimachinery import errors
from apimachinery.client import Client
from cli import cmd_node
from cli.cmd_node import DrainOptions, cordon_node, drain_node
from cli.main import cli
from tests.unit.controllers.infra import api_server, get_or_none, node, pod, replicaset


@contextlib.asynccontextmanager
async def kubelet_finishing_deletions(client: Client) -> AsyncIterator[None]:
    """What a kubelet does with a pod marked for deletion: stop it, delete it for good."""

    async def run() -> None:
        async for ev in client.watch("pods"):
            meta = ev.object.metadata
            if ev.type != "DELETED" and meta.HasField("deletion_timestamp"):
                with contextlib.suppress(errors.NotFound, errors.Conflict):
                    await client.delete("pods", meta.name, meta.namespace, grace_period_seconds=0)

    task = asyncio.ensure_future(run())
    await asyncio.sleep(0.1)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _cluster(client: Client) -> None:
    for name in ("node1", "node2"):
        await client.create(node(name))
    rs = await client.create(replicaset("web-1"))
    await client.create(pod("web-1-a", {"app": "web"}, node_name="node2", owner=rs))
    cache = pod("web-1-cache", {"app": "web"}, node_name="node2", owner=rs)
    cache.spec.volumes.add(name="scratch").empty_dir.medium = ""
    await client.create(cache)
    await client.create(pod("bare", node_name="node2"))
    done = await client.create(pod("done", node_name="node2"))
    done.status.phase = "Succeeded"
    await client.update_status(done)
    await client.create(pod("web-1-b", {"app": "web"}, node_name="node1", owner=rs))


async def test_cordon_and_uncordon(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client:
        await client.create(node("node2"))
        lines: list[str] = []
        await cordon_node(client, "node2", True, lines.append)
        assert (await client.get("nodes", "node2")).spec.unschedulable
        await cordon_node(client, "node2", True, lines.append)
        await cordon_node(client, "node2", False, lines.append)
        assert not (await client.get("nodes", "node2")).spec.unschedulable
        assert lines == [
            "node/node2 cordoned",
            "node/node2 already cordoned",
            "node/node2 uncordoned",
        ]


async def test_drain_refuses_then_drains(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client:
        await _cluster(client)
        out: list[str] = []
        err: list[str] = []
        code = await drain_node(client, "node2", DrainOptions(), out.append, err.append)
        assert code == 1
        assert out == ["node/node2 cordoned"]
        assert err[0] == (
            'error: unable to drain node "node2" due to error: cannot delete Pods declare no'
            " controller (use --force to override): default/bare; cannot delete Pods with local"
            " storage (use --delete-emptydir-data to override): default/web-1-cache,"
            " continuing command..."
        )
        assert (await client.get("nodes", "node2")).spec.unschedulable
        pods, _ = await client.list("pods", "default")
        assert not any(p.metadata.HasField("deletion_timestamp") for p in pods)  # nothing yet

        out.clear()
        err.clear()
        async with kubelet_finishing_deletions(client):
            code = await drain_node(
                client,
                "node2",
                DrainOptions(force=True, delete_emptydir_data=True, timeout=10),
                out.append,
                err.append,
            )
        assert code == 0, err
        assert out[0] == "node/node2 already cordoned"
        assert out[-1] == "node/node2 drained"
        evicting = [line for line in out if line.startswith("evicting pod ")]
        assert evicting == [
            "evicting pod default/bare",
            "evicting pod default/done",
            "evicting pod default/web-1-a",
            "evicting pod default/web-1-cache",
        ]
        assert sorted(line for line in out if line.endswith(" evicted")) == [
            "pod/bare evicted",
            "pod/done evicted",
            "pod/web-1-a evicted",
            "pod/web-1-cache evicted",
        ]
        assert "Warning: deleting Pods that declare no controller: default/bare" in err
        remaining, _ = await client.list("pods", "", field_selector="spec.nodeName=node2")
        assert remaining == []
        assert await get_or_none(client, "pods", "web-1-b") is not None  # other nodes untouched


async def test_drain_timeout_when_pods_do_not_go(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client:
        await client.create(node("node2"))
        rs = await client.create(replicaset("web-1"))
        await client.create(pod("web-1-a", {"app": "web"}, node_name="node2", owner=rs))
        out: list[str] = []
        err: list[str] = []
        # No kubelet: the pod stays Terminating.
        code = await drain_node(client, "node2", DrainOptions(timeout=0.5), out.append, err.append)
        assert code == 1
        assert out == ["node/node2 cordoned", "evicting pod default/web-1-a"]
        assert "drain did not complete within 0.5s" in err[0]
        assert (await client.get("pods", "web-1-a")).metadata.HasField("deletion_timestamp")


async def test_commands_through_the_cli(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client:
        await client.create(node("node2"))
        runner = CliRunner()
        args = ["--server", client.server]
        result = await asyncio.to_thread(runner.invoke, cli, [*args, "cordon", "node2"])
        assert result.exit_code == 0, result.output
        assert result.output == "node/node2 cordoned\n"
        result = await asyncio.to_thread(runner.invoke, cli, [*args, "drain", "node2"])
        assert result.exit_code == 0, result.output
        assert result.output == "node/node2 already cordoned\nnode/node2 drained\n"
        result = await asyncio.to_thread(runner.invoke, cli, [*args, "uncordon", "node2"])
        assert result.output == "node/node2 uncordoned\n"
        result = await asyncio.to_thread(runner.invoke, cli, [*args, "cordon", "nope"])
        assert result.exit_code == 1
        assert 'nodes "nope" not found' in result.output
        assert cmd_node.POLL_SECONDS > 0
