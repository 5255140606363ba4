"""Daemons that share one process: `first_to_end`, and the kubelet's in-process network agent.

`tinykube kubelet --network-agent` runs the kubelet's loops and the netplugin
agent's in one event loop. Whichever ends first ends the process: a network
agent that cannot start takes the kubelet down with it and says why, rather
than leaving a node whose pods get no network.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.context import first_to_end
from cli.main import cli


async def _forever(cancelled: list[str], name: str) -> None:
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        cancelled.append(name)
        raise


async def _fails(after: float) -> None:
    await asyncio.sleep(after)
    raise RuntimeError("agent: no interface holds 203.0.113.9")


async def test_a_failing_daemon_stops_the_others_and_its_error_is_raised() -> None:
    cancelled: list[str] = []
    with pytest.raises(RuntimeError, match="no interface holds"):
        await first_to_end(_forever(cancelled, "kubelet"), _fails(0.01))
    assert cancelled == ["kubelet"]


async def test_cancelling_from_outside_cancels_every_daemon() -> None:
    cancelled: list[str] = []
    task = asyncio.ensure_future(
        first_to_end(_forever(cancelled, "kubelet"), _forever(cancelled, "agent"))
    )
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(cancelled) == ["agent", "kubelet"]


async def test_a_daemon_that_returns_ends_the_rest_without_error() -> None:
    cancelled: list[str] = []
    await first_to_end(_forever(cancelled, "kubelet"), asyncio.sleep(0.01))
    assert cancelled == ["kubelet"]


def test_network_agent_without_node_ip_or_iface_is_a_usage_error(tmp_path: Path) -> None:
    args = ["kubelet", "--node-name", "n1", "--network-agent", "--root-dir", str(tmp_path)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "--network-agent needs --node-ip or --iface" in result.output


def test_an_agent_that_cannot_start_stops_the_kubelet_with_exit_1(tmp_path: Path) -> None:
    """No interface holds the node IP: the agent fails at once, the kubelet with it."""
    args = [
        "kubelet",
        "--node-name",
        "n1",
        "--runtime",
        "fake",
        "--node-ip",
        "203.0.113.9",  # TEST-NET-3: on no interface of this machine
        "--network-agent",
        "--server",
        "127.0.0.1:1",  # nothing listens: the kubelet would retry for ever
        "--kubelet-port",
        "0",
        "--address",
        "127.0.0.1",
        "--root-dir",
        str(tmp_path),
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert "error: network agent: no interface holds 203.0.113.9" in result.output


def test_a_kubelet_without_the_agent_loads_neither_it_nor_pyroute2(tmp_path: Path) -> None:
    """Hollow nodes run by the dozen: they must not pay for the network agent's imports."""
    script = f"""
import json, os, signal, sys, threading
from cli.main import cli
threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
cli(["kubelet", "--node-name", "h1", "--runtime", "fake", "--server", "127.0.0.1:1",
     "--kubelet-port", "0", "--address", "127.0.0.1", "--root-dir", {str(tmp_path)!r}],
    standalone_mode=False)
print(json.dumps(sorted(sys.modules)))
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert "kubelet.kubelet" in loaded  # it did run
    assert not {m for m in loaded if m.startswith("pyroute2") or m == "netplugin.agent"}
