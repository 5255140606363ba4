"""The control plane inside `tinykube apiserver` under leader election.

It campaigns for both Leases (kube-scheduler, kube-controller-manager) and,
when one is taken from it, stops those loops and campaigns again instead of
taking the API server down with it. The flags: --leader-elect defaults to
true for the separate components and, in the API server, to true on etcd and
false on SQLite.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from apimachinery.client import Client
from apimachinery.leaderelection import LeaderElectionConfig
from apimachinery.resourcelock import micros
from apiserver.server import APIServer
from cli.main import cli
from controlplane import default_leader_elect, run_control_plane
from protos import coordination_pb2

FAST = LeaderElectionConfig(
    "kube-scheduler", identity="cp-1", lease_duration=2.0, renew_deadline=1.0, retry_period=0.3
)


async def lease(client: Client, name: str) -> coordination_pb2.Lease:
    return await client.get(coordination_pb2.Lease, name, "kube-system")


async def eventually(check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_the_in_process_control_plane_leads_loses_and_campaigns_again(
    server: APIServer, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="controlplane")
    task = asyncio.ensure_future(run_control_plane(server.local_address, leader_election=FAST))
    try:

        async def both_held() -> bool:
            try:
                held = [
                    await lease(client, n) for n in ("kube-scheduler", "kube-controller-manager")
                ]
            except Exception:
                return False
            return all(x.spec.holder_identity == "cp-1" for x in held)

        await eventually(both_held, 10)
        # Another candidate takes the scheduler's Lease (as one whose clock says it expired).
        stolen = await lease(client, "kube-scheduler")
        stolen.spec.holder_identity = "cp-2"
        stolen.spec.renew_time.FromMicroseconds(micros(time.time()))
        stolen.spec.lease_transitions += 1
        await client.update(stolen)

        async def lost() -> bool:
            return "leadership lost, campaigning again" in caplog.text

        await eventually(lost, 5)
        assert not task.done(), "losing a Lease must not stop the control plane"

        async def back() -> bool:  # cp-2 never renews: cp-1 takes it over again
            again = await lease(client, "kube-scheduler")
            return again.spec.holder_identity == "cp-1" and again.spec.lease_transitions == 2

        await eventually(back, 10)
        manager = await lease(client, "kube-controller-manager")
        assert manager.spec.holder_identity == "cp-1" and manager.spec.lease_transitions == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    released = await lease(client, "kube-scheduler")
    assert released.spec.holder_identity == ""  # a stop on purpose releases the Lease


def test_the_api_server_elects_by_default_only_on_etcd() -> None:
    assert default_leader_elect("etcd://10.0.0.1:2379,10.0.0.2:2379")
    assert not default_leader_elect("sqlite")
    assert not default_leader_elect("sqlite:/var/lib/tinykube/db")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [((), None), (("--leader-elect",), True), (("--leader-elect=false",), False)],
)
def test_the_api_servers_leader_elect_flag(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, flags: tuple[str, ...], expected: bool | None
) -> None:
    import controlplane

    seen: list[dict[str, Any]] = []

    async def fake(data_dir: str, listen: str, **kwargs: Any) -> None:
        seen.append(kwargs)

    monkeypatch.setattr(controlplane, "serve_control_plane", fake)
    args = ["apiserver", "--data-dir", str(tmp_path), "--listen", f"unix:{tmp_path}/a.sock"]
    result = CliRunner().invoke(cli, [*args, *flags, "--leader-elect-retry-period", "1s"])
    assert result.exit_code == 0, result.output
    [kwargs] = seen
    assert kwargs["leader_elect"] is expected
    assert kwargs["leader_election"].retry_period == 1.0
    assert kwargs["leader_election"].lease_duration == 15.0


def test_the_components_elect_by_default_and_refuse_bad_timings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import controllers.manager

    seen: list[Any] = []

    async def fake(client: Any, options: Any, only: Any = None) -> None:
        seen.append(options.leader_election)

    monkeypatch.setattr(controllers.manager, "run_controller_manager", fake)
    base = ["--server", "unix:/nonexistent/api.sock", "controller-manager"]
    assert CliRunner().invoke(cli, base).exit_code == 0
    assert CliRunner().invoke(cli, [*base, "--leader-elect=false"]).exit_code == 0
    on, off = seen
    assert on.resource_name == "kube-controller-manager" and on.resource_namespace == "kube-system"
    assert (on.lease_duration, on.renew_deadline, on.retry_period) == (15.0, 10.0, 2.0)
    assert off is None
    bad = CliRunner().invoke(cli, [*base, "--leader-elect-renew-deadline", "20s"])
    assert bad.exit_code == 2
    assert "leaseDuration must be greater than renewDeadline" in bad.output
