"""A hollow kubelet against a real API server: restarts, backoff, probes, image pulls, adoption.

The kubelet runs with conftest.fast_config: CrashLoopBackOff 0.2 s doubling
to 1 s, probes with one "second" = 50 ms, the PLEG relisting every 0.1 s.
"""

from __future__ import annotations

import asyncio
from typing import Any

from apimachinery.client import Client
from kubelet.runtime.fake import FakeRuntime
from kubelet.runtime.interface import ExecResult
from protos import core_pb2
from tests.unit.kubelet.conftest import Harness, eventually, pod, set_pod_cidr

CIDR = "10.244.1.0/24"


async def _get(client: Client, name: str) -> Any:
    return await client.get("pods", name)


def _status(p: Any) -> Any:
    return p.status.container_statuses[0] if p.status.container_statuses else None


def _condition(p: Any, type_: str) -> str:
    return next((c.status for c in p.status.conditions if c.type == type_), "")


async def _events(client: Client, name: str) -> list[tuple[str, str]]:
    events, _ = await client.list("events", "default")
    return [(e.reason, e.message) for e in events if e.involved_object.name == name]


async def _start(client: Client, harness: Harness, runtime: FakeRuntime) -> Any:
    kubelet, _ = await harness.start("node1", runtime)
    await set_pod_cidr(client, "node1", CIDR)
    return kubelet


async def test_restart_policies(client: Client, harness: Harness) -> None:
    runtime = FakeRuntime()
    runtime.behave("fails", exit_code=1, exit_after=0.0)
    runtime.behave("done", exit_code=0, exit_after=0.0)
    await _start(client, harness, runtime)
    cases = {
        "never-fails": ("Never", "fails"),
        "onfailure-done": ("OnFailure", "done"),
        "onfailure-fails": ("OnFailure", "fails"),
        "always-done": ("Always", "done"),
    }
    for name, (policy, container) in cases.items():
        p = pod(name, "node1", container)
        p.spec.restart_policy = policy
        await client.create(p)

    async def restarted(name: str, at_least: int) -> Any:
        s = _status(await _get(client, name))
        return s is not None and s.restart_count >= at_least

    await eventually(lambda: restarted("onfailure-fails", 2))
    await eventually(lambda: restarted("always-done", 2))

    async def phase(name: str, want: str) -> bool:
        return bool((await _get(client, name)).status.phase == want)

    await eventually(lambda: phase("never-fails", "Failed"))
    await eventually(lambda: phase("onfailure-done", "Succeeded"))
    for name in ("never-fails", "onfailure-done"):
        s = _status(await _get(client, name))
        assert s.restart_count == 0 and s.state.HasField("terminated")
    last = _status(await _get(client, "onfailure-fails")).last_state.terminated
    assert (last.exit_code, last.reason) == (1, "Error")
    assert (await _get(client, "onfailure-fails")).status.phase == "Running"


async def test_crash_loop_backoff_grows(client: Client, harness: Harness) -> None:
    runtime = FakeRuntime()
    runtime.behave("web-app", exit_code=1, exit_after=0.0)
    await _start(client, harness, runtime)
    created = await client.create(pod("web-app", "node1", "web-app"))
    messages: set[str] = set()

    async def backed_off() -> bool:
        s = _status(await _get(client, "web-app"))
        if s is not None and s.state.waiting.reason == "CrashLoopBackOff":
            messages.add(s.state.waiting.message)
            assert s.last_state.terminated.exit_code == 1
        return any("back-off 1s" in m for m in messages)

    await eventually(backed_off, timeout=15, interval=0.02)
    uid = created.metadata.uid
    assert (
        f"back-off 400ms restarting failed container=web-app pod=web-app_default({uid})" in messages
    )
    starts = [c for c in runtime.calls if c[0] == "start_container"]
    assert 4 <= len(starts) <= 8  # 0.2 + 0.4 + 0.8 + 1 s of backoff: few restarts, not a storm

    async def recorded() -> bool:
        return "BackOff" in {r for r, _ in await _events(client, "web-app")}

    await eventually(recorded)
    # Exited containers are garbage collected: the newest and one before it stay.
    assert len(runtime.containers) <= 2


async def test_failing_liveness_probe_restarts_with_event(client: Client, harness: Harness) -> None:
    runtime = FakeRuntime()
    runtime.files[("web-app", "/tmp/healthy")] = b"ok"
    await _start(client, harness, runtime)
    p = pod("web-app", "node1", "web-app")
    probe = p.spec.containers[0].liveness_probe
    probe.exec.command.extend(["cat", "/tmp/healthy"])
    probe.period_seconds, probe.failure_threshold, probe.timeout_seconds = 1, 2, 1
    await client.create(p)

    async def running() -> Any:
        s = _status(await _get(client, "web-app"))
        return s is not None and s.state.HasField("running")

    await eventually(running)
    first = _status(await _get(client, "web-app")).container_id
    await asyncio.sleep(0.3)  # healthy: several probes pass, nothing happens
    assert _status(await _get(client, "web-app")).container_id == first

    del runtime.files[("web-app", "/tmp/healthy")]

    async def restarted() -> Any:
        s = _status(await _get(client, "web-app"))
        return s.restart_count == 1 and s.state.HasField("running")

    await eventually(restarted)
    s = _status(await _get(client, "web-app"))
    assert s.container_id != first
    assert s.last_state.terminated.container_id == first
    wanted = {
        ("Unhealthy", "Liveness probe failed: cat: /tmp/healthy: No such file or directory"),
        ("Killing", "Container web-app failed liveness probe, will be restarted"),
    }

    async def recorded() -> bool:  # events are written in the background
        return wanted <= set(await _events(client, "web-app"))

    await eventually(recorded)


async def test_readiness_probe_flips_ready_condition(client: Client, harness: Harness) -> None:
    runtime = FakeRuntime()
    ready = {"ok": False}

    def handler(container: Any, cmd: tuple[str, ...]) -> ExecResult | None:
        if cmd == ("check",):
            return ExecResult(0 if ready["ok"] else 1, b"", b"not yet")
        return None

    runtime.exec_handler = handler
    await _start(client, harness, runtime)
    p = pod("web", "node1", "web")
    probe = p.spec.containers[0].readiness_probe
    probe.exec.command.append("check")
    probe.period_seconds, probe.failure_threshold, probe.success_threshold = 1, 1, 1
    await client.create(p)

    async def conditions(want: str) -> bool:
        got = await _get(client, "web")
        s = _status(got)
        if s is None or not s.state.HasField("running"):
            return False
        return _condition(got, "Ready") == want and _condition(got, "ContainersReady") == want

    await eventually(lambda: conditions("False"))
    assert not _status(await _get(client, "web")).ready
    ready["ok"] = True
    await eventually(lambda: conditions("True"))
    assert _status(await _get(client, "web")).ready
    ready["ok"] = False
    await eventually(lambda: conditions("False"))
    assert _status(await _get(client, "web")).restart_count == 0  # readiness never restarts


async def test_err_image_pull_then_image_pull_backoff(client: Client, harness: Harness) -> None:
    runtime = FakeRuntime()
    runtime.image_errors["nope:1"] = 'failed to resolve reference "docker.io/library/nope:1"'
    await _start(client, harness, runtime)
    p = pod("bad", "node1", "web")
    p.spec.containers[0].image = "nope:1"
    await client.create(p)
    await client.create(pod("good", "node1", "web"))
    seen: dict[str, str] = {}
    original = client.update_status

    async def recording(obj: Any) -> Any:
        if isinstance(obj, core_pb2.Pod) and obj.metadata.name == "bad":
            w = obj.status.container_statuses[0].state.waiting
            seen.setdefault(w.reason, w.message)
        return await original(obj)

    client.update_status = recording  # type: ignore[method-assign]

    async def both() -> bool:
        return {"ErrImagePull", "ImagePullBackOff"} <= set(seen)

    await eventually(both)
    assert seen["ErrImagePull"] == 'failed to resolve reference "docker.io/library/nope:1"'
    assert seen["ImagePullBackOff"] == 'Back-off pulling image "nope:1"'
    assert (await _get(client, "good")).status.phase == "Running"  # others unaffected
    pulls = runtime.count("pull_image")
    await asyncio.sleep(0.5)
    assert runtime.count("pull_image") - pulls <= 2  # backed off, not retried in a loop

    async def recorded() -> bool:
        return {"Failed", "BackOff"} <= {r for r, _ in await _events(client, "bad")}

    await eventually(recorded)


async def test_kubelet_restart_adopts_containers(client: Client, harness: Harness) -> None:
    runtime = FakeRuntime()
    runtime.behave("flaky", exit_code=1, exit_after=0.0)
    await _start(client, harness, runtime)
    await client.create(pod("web", "node1", "web", "sidecar"))
    crash = pod("crashy", "node1", "flaky")
    await client.create(crash)

    async def running() -> Any:
        p = await _get(client, "web")
        return p if p.status.phase == "Running" else None

    await eventually(running)

    async def restarted_once() -> bool:
        s = _status(await _get(client, "crashy"))
        return s is not None and s.restart_count >= 1

    await eventually(restarted_once)
    before = {
        s.name: (s.container_id, s.restart_count)
        for s in (await _get(client, "web")).status.container_statuses
    }
    sandboxes = set(runtime.sandboxes)
    mark = len(runtime.calls)
    running_before = {c.id for c in runtime.running() if c.name != "flaky"}

    await harness.close()  # the kubelet goes away; the runtime (and its containers) stays
    harness2 = Harness(client)
    try:
        runtime.behaviours.pop("flaky")  # no crash any more, whatever runs now keeps running
        await harness2.start("node1", runtime)
        await asyncio.sleep(0.6)  # several PLEG relists and resyncs
        after = {
            s.name: (s.container_id, s.restart_count)
            for s in (await _get(client, "web")).status.container_statuses
        }
        assert after == before
        assert set(runtime.sandboxes) == sandboxes
        assert running_before <= {c.id for c in runtime.running()}
        web_starts = [
            c
            for c in runtime.calls[mark:]
            if c[0] in ("start_container", "stop_container", "run_pod_sandbox")
            and c[1] in running_before
        ]
        assert web_starts == []
        assert runtime.count("run_pod_sandbox") == 2
    finally:
        await harness2.close()
