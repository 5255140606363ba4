"""`tinykube logs` on a real node (containerd, then Docker): the previous instance's log kept
across a restart, `-f` following a crash-looping container from one instance to the next
until its pod is deleted, `--timestamps` from the runtime's own record times, `--since`,
and `-l` with `--prefix`.

One API server process and one `tinykube kubelet` process per runtime (node.py), as the
other real-node modules start them; every pod is removed at the end, however a test ends.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from tests.integration.runtime.conftest import RuntimeEnv
from tests.integration.runtime.node import TEST_LABEL, RealNode, pod_yaml, started_node
from tests.procs import REPO, run_cli, tinykube_cmd

pytestmark = pytest.mark.root

MARK = "logs-node"
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"
# Each instance prints "boot", three ticks a second apart, then exits 1 (restartPolicy Always).
TICKER = """  terminationGracePeriodSeconds: 1
  containers:
  - name: ticker
    image: busybox:1.36
    command: ["sh", "-c", "echo boot; for i in 1 2 3; do echo tick-$i; sleep 1; done; exit 1"]
"""


@pytest.fixture(scope="module", params=["containerd", "docker"])
def node(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    runtime_env: RuntimeEnv,
) -> Iterator[RealNode]:
    docker_env = request.getfixturevalue("docker_env") if request.param == "docker" else None
    with started_node(tmp_path_factory.mktemp("logs-node"), runtime_env, MARK, docker_env) as n:
        yield n


class Follower:
    """`tinykube logs ARGS` in the background (as a user's `logs -f`); its lines as they come."""

    def __init__(self, server: str, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TINYKUBE_", "KUBE"))}
        env["TINYKUBE_SERVER"] = server
        self.proc = subprocess.Popen(
            [*tinykube_cmd(), "logs", *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def until(self, count: int, word: str, timeout: float) -> list[str]:
        """Lines read until `count` of them end with `word`."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while sum(line.endswith(word) for line in seen) < count:
            try:
                seen.append(self.lines.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"only {seen} after {timeout}s") from None
        return seen

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        assert self.proc.stderr is not None
        return self.proc.stderr.read()


def follow_across_restarts(
    node: RealNode, pod: str, first_line: str = "boot", instances: int = 2
) -> list[str]:
    """`logs POD -f --timestamps` until `instances` instances have printed `first_line`, then
    the pod is deleted and the command must end by itself, exit 0. Its lines, stamps removed."""
    follower = Follower(node.apiserver.address, pod, "-f", "--timestamps")
    try:
        seen = follower.until(instances, first_line, 60)
        node.delete(pod)
        assert follower.proc.wait(timeout=30) == 0
    finally:
        err = follower.stop()
    assert "Traceback" not in err, err
    assert all(re.match(f"{STAMP} ", line) for line in seen), seen
    return [line.split(" ", 1)[1] for line in seen]


def epoch(line: str) -> float:
    """The Unix time of a `--timestamps` line's stamp."""
    stamp = line.split(" ", 1)[0]
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    at = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return at.timestamp() + (float("0." + fraction) if fraction else 0.0)


def _restarted(node: RealNode, name: str, count: int = 1) -> Any:
    pod = node.pod(name)
    statuses = pod.status.container_statuses if pod is not None else []
    return pod if statuses and statuses[0].restart_count >= count else None


def test_follow_goes_from_one_instance_to_the_next(node: RealNode) -> None:
    node.create(pod_yaml("ticker", MARK, TICKER))
    node.wait(lambda: node.pod("ticker").status.container_statuses, "the ticker started", 45)
    lines = follow_across_restarts(node, "ticker")
    first = lines.index("boot")
    second = lines.index("boot", first + 1)
    assert lines[first:second] == ["boot", "tick-1", "tick-2", "tick-3"], lines
    node.wait(lambda: node.pod("ticker") is None, "the ticker pod gone", 30)


def test_previous_timestamps_since_and_selector(node: RealNode) -> None:
    server = node.apiserver.address
    node.create(pod_yaml("counter", MARK, TICKER.replace("name: ticker", "name: counter")))
    node.wait(lambda: _restarted(node, "counter"), "the counter restarted", 45)
    previous = run_cli(server, "logs", "counter", "--previous", "--timestamps")
    assert previous.returncode == 0, previous.stderr
    lines = previous.stdout.splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["boot", "tick-1", "tick-2", "tick-3"]
    assert all(re.match(f"{STAMP} ", line) for line in lines), lines
    # the ticks are a second apart, and the stamps say so
    stamps = [epoch(line) for line in lines]
    assert 1.5 < stamps[3] - stamps[1] < 3.0, lines

    asked = time.time()
    recent = run_cli(server, "logs", "counter", "--since=2s", "--timestamps")
    everything = run_cli(server, "logs", "counter", "--timestamps")
    assert recent.returncode == 0, recent.stderr
    kept = recent.stdout.splitlines()
    assert all(epoch(line) >= asked - 2.2 for line in kept), (asked, kept)
    older = [line for line in everything.stdout.splitlines() if epoch(line) < asked - 2.5]
    assert not set(older) & set(kept), (older, kept)
    prefixed = run_cli(server, "logs", "-l", f"{TEST_LABEL}={MARK}", "--prefix", "--tail=1")
    assert prefixed.returncode == 0, prefixed.stderr
    assert re.fullmatch(r"\[pod/counter/counter\] \S+\n", prefixed.stdout), prefixed.stdout
    missing = run_cli(server, "logs", "counter", "-c", "nope")
    assert missing.returncode == 1
    assert missing.stderr == "error: container nope is not valid for pod counter\n"
    node.delete("counter")


def test_a_finished_pod_keeps_its_log_until_it_is_deleted(node: RealNode) -> None:
    """A pod that ran to completion keeps its exited container, so `logs` reads it later (a
    `run --rm -it` that asks once the command is done, a Job's pod); deleting it removes it."""
    once = """  restartPolicy: Never
  containers:
  - name: once
    image: busybox:1.36
    command: ["sh", "-c", "echo done-once"]
"""
    node.create(pod_yaml("once", MARK, once))
    node.wait(lambda: node.pod("once").status.phase == "Succeeded", "the pod Succeeded", 45)
    time.sleep(2)  # the kubelet has stopped the finished pod meanwhile
    out = run_cli(node.apiserver.address, "logs", "once")
    assert (out.returncode, out.stdout) == (0, "done-once\n"), out.stderr
    node.delete("once")
    node.wait(lambda: node.pod("once") is None, "the finished pod gone", 30)
