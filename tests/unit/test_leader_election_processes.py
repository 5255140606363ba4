"""Two `tinykube scheduler`s and two `tinykube controller-manager`s: one of each leads.

Real processes against a real API server, each with the kubeconfig `tinykube
pki init` made for its component (so RBAC must let system:kube-scheduler and
system:kube-controller-manager take their Leases), with short timings (lease
3 s, renew deadline 2 s, retry 0.5 s). One of each pair acquires its Lease in
kube-system and the other waits; kill -9 of the leaders hands both Leases over
(leaseTransitions 1); an API server that stops answering (SIGSTOP) makes the
new leaders give up within the renew deadline and exit with status 1, as
Kubernetes' components do.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from apimachinery import errors
from apimachinery.client import Client
from localcluster.processes import ApiServerProcess, ChildProcess
from protos import coordination_pb2

pytestmark = pytest.mark.timeout(120)
FAST = (
    "--leader-elect-lease-duration",
    "3s",
    "--leader-elect-renew-deadline",
    "2s",
    "--leader-elect-retry-period",
    "0.5s",
)
COMPONENTS = {"scheduler": "kube-scheduler", "controller-manager": "kube-controller-manager"}


@pytest.fixture
def apiserver(tmp_path: Path) -> Iterator[ApiServerProcess]:
    server = ApiServerProcess(
        tmp_path / "apiserver", extra_args=("--no-scheduler", "--no-controllers")
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()


def component(server: ApiServerProcess, name: str, n: int, root: Path) -> ChildProcess:
    kubeconfig = str(server.kubeconfig(name))
    return ChildProcess(["--kubeconfig", kubeconfig, name, *FAST], root / f"{name}-{n}.log")


def acquired_identity(process: ChildProcess) -> str:
    """The identity a process logged when it acquired its Lease ("" if it did not)."""
    text = process.log.read_text() if process.log.exists() else ""
    found = re.search(r"successfully acquired lease.*identity=(\S+)", text)
    return found.group(1).strip("\"'") if found else ""


async def holder(client: Client, lease: str) -> coordination_pb2.Lease | None:
    try:
        return await client.get(coordination_pb2.Lease, lease, "kube-system")
    except errors.NotFound:
        return None


async def wait_for(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert callable(check)
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_one_leads_the_other_takes_over_and_a_cut_off_leader_exits(
    apiserver: ApiServerProcess, tmp_path: Path
) -> None:
    pairs = {
        name: [component(apiserver, name, n, tmp_path / "logs") for n in (1, 2)]
        for name in COMPONENTS
    }
    stopped = False
    try:
        for processes in pairs.values():
            for process in processes:
                process.spawn()
        async with Client(apiserver.address, timeout=5) as client:
            leaders: dict[str, ChildProcess] = {}

            async def both_lead() -> bool:
                for name, processes in pairs.items():
                    lease = await holder(client, COMPONENTS[name])
                    winners = [p for p in processes if acquired_identity(p)]
                    if lease is None or len(winners) != 1:
                        return False
                    assert lease.spec.holder_identity == acquired_identity(winners[0])
                    leaders[name] = winners[0]
                return True

            await wait_for(both_lead, 30, "one leader of each")
            await asyncio.sleep(3.5)  # longer than the lease: the others still wait
            for name, processes in pairs.items():
                assert sum(1 for p in processes if acquired_identity(p)) == 1, name
                lease = await holder(client, COMPONENTS[name])
                assert lease is not None and lease.spec.lease_transitions == 0
                assert lease.spec.lease_duration_seconds == 3

            for leader in leaders.values():
                leader.kill9()
            survivors = {
                name: next(p for p in processes if p is not leaders[name])
                for name, processes in pairs.items()
            }

            async def handed_over() -> bool:
                for name, survivor in survivors.items():
                    lease = await holder(client, COMPONENTS[name])
                    identity = acquired_identity(survivor)
                    if lease is None or not identity or lease.spec.holder_identity != identity:
                        return False
                return True

            await wait_for(handed_over, 15, "the survivors to take over")
            for name in COMPONENTS:
                lease = await holder(client, COMPONENTS[name])
                assert lease is not None and lease.spec.lease_transitions == 1

        # The API server stops answering: each leader exits within the renew deadline.
        assert apiserver.proc is not None
        os.kill(apiserver.proc.pid, signal.SIGSTOP)
        stopped = True
        deadline = time.monotonic() + 10
        for survivor in survivors.values():
            assert survivor.proc is not None
            code = survivor.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            assert code == 1, survivor.log.read_text()[-2000:]
            assert "leaderelection lost" in survivor.log.read_text()
    finally:
        if stopped and apiserver.proc is not None:
            os.kill(apiserver.proc.pid, signal.SIGCONT)
        for processes in pairs.values():
            for process in processes:
                process.kill9()
