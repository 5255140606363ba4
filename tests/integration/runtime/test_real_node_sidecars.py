"""Native sidecars, lifecycle hooks and termination messages on one real node, per runtime.

One API server process and one `tinykube kubelet` process (node.py) on the
session's containerd, then on its dockerd (the module is parametrized), as
a user would see them through `tinykube get/logs/exec`:

* a sidecar (an init container with restartPolicy Always) starts first; the
  regular init container after it runs only once the sidecar's startupProbe
  has passed (it checks the sidecar's file); the sidecar's log keeps growing
  while the app runs; made to exit, it is restarted and the app is not;
  `get pods` shows READY 2/2, STATUS Running;
* a restartPolicy Never pod whose app finishes ends Succeeded, its sidecar
  stopped;
* a postStart hook's side effect (a file) is there once the container runs;
  a failing one gives the Warning FailedPostStartHook event and a restart;
* termination messages: from /dev/termination-log, and from the log's end
  under FallbackToLogsOnError.

Each test deletes its pods; the node's teardown removes whatever sandbox a
failed test left (started_node).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.runtime.conftest import RuntimeEnv
from tests.integration.runtime.node import RealNode, pod_yaml, started_node
from tests.procs import run_cli

pytestmark = pytest.mark.root

MARK = "sidecars"
SLEEPER = '["sh", "-c", "trap \'exit 0\' TERM; while true; do sleep 1; done"]'
# Ticks into its log and /work/ticks; exits 1 once /work/stop appears (and removes it).
TICKER = (
    '["sh", "-c", "trap \'exit 0\' TERM; while true; do echo tick; echo tick >> /work/ticks; '
    'if [ -f /work/stop ]; then rm /work/stop; exit 1; fi; sleep 0.2; done"]'
)


@pytest.fixture(scope="module", params=["containerd", "docker"])
def node(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    runtime_env: RuntimeEnv,
) -> Iterator[RealNode]:
    docker_env = request.getfixturevalue("docker_env") if request.param == "docker" else None
    with started_node(tmp_path_factory.mktemp("sidecars"), runtime_env, MARK, docker_env) as real:
        yield real


def _gone(node: RealNode, *names: str) -> None:
    for name in names:
        if node.pod(name) is not None:
            node.delete(name)
    node.wait(lambda: all(node.pod(n) is None for n in names), f"pods {names} deleted", 30)


def _init(pod: Any, name: str) -> Any:
    return next(s for s in pod.status.init_container_statuses if s.name == name)


def _row(node: RealNode, name: str) -> list[str]:
    table = run_cli(node.apiserver.address, "get", "pod", name)
    assert table.returncode == 0, table.stderr
    return table.stdout.splitlines()[1].split()


def _ticks(node: RealNode, pod: str) -> int:
    logs = run_cli(node.apiserver.address, "logs", pod, "-c", "ticker")
    assert logs.returncode == 0, logs.stderr
    return logs.stdout.count("tick")


def test_a_sidecar_runs_beside_the_app_and_is_restarted(node: RealNode) -> None:
    body = f"""  terminationGracePeriodSeconds: 2
  initContainers:
  - name: ticker
    image: busybox:1.36
    restartPolicy: Always
    command: {TICKER}
    startupProbe:
      exec: {{command: ["test", "-f", "/work/ticks"]}}
      periodSeconds: 1
    volumeMounts: [{{name: work, mountPath: /work}}]
  - name: setup
    image: busybox:1.36
    command: ["sh", "-c", "test -f /work/ticks && echo after-sidecar > /work/order"]
    volumeMounts: [{{name: work, mountPath: /work}}]
  containers:
  - name: app
    image: busybox:1.36
    command: {SLEEPER}
    volumeMounts: [{{name: work, mountPath: /work}}]
  volumes:
  - name: work
    emptyDir: {{}}
"""
    try:
        node.create(pod_yaml("with-sidecar", MARK, body))
        pod = node.wait(lambda: node.running("with-sidecar"), "pod with-sidecar Running", 60)
        ticker, setup = _init(pod, "ticker"), _init(pod, "setup")
        assert ticker.state.HasField("running") and ticker.started, ticker
        assert setup.state.terminated.reason == "Completed", setup
        assert any(c.type == "Initialized" and c.status == "True" for c in pod.status.conditions)
        node.wait(lambda: _row(node, "with-sidecar")[1] == "2/2", "READY 2/2", 20)
        assert _row(node, "with-sidecar")[1:3] == ["2/2", "Running"]

        server = node.apiserver.address
        order = run_cli(server, "exec", "with-sidecar", "-c", "app", "--", "cat", "/work/order")
        assert order.stdout.strip() == "after-sidecar", order.stderr
        first = _ticks(node, "with-sidecar")
        node.wait(lambda: _ticks(node, "with-sidecar") > first + 3, "the sidecar's log grows", 10)

        app_id = pod.status.container_statuses[0].container_id
        stop = run_cli(server, "exec", "with-sidecar", "-c", "app", "--", "touch", "/work/stop")
        assert stop.returncode == 0, stop.stderr

        def restarted() -> Any:
            p = node.pod("with-sidecar")
            s = _init(p, "ticker")
            return p if s.restart_count >= 1 and s.state.HasField("running") else None

        pod = node.wait(restarted, "the sidecar restarted", 30)
        assert _init(pod, "ticker").last_state.terminated.exit_code == 1
        app = pod.status.container_statuses[0]
        assert (app.container_id, app.restart_count) == (app_id, 0)  # the app untouched
        assert pod.status.phase == "Running"
    finally:
        _gone(node, "with-sidecar")


def test_a_finished_pod_stops_its_sidecar_and_succeeds(node: RealNode) -> None:
    body = f"""  terminationGracePeriodSeconds: 2
  restartPolicy: Never
  initContainers:
  - name: helper
    image: busybox:1.36
    restartPolicy: Always
    command: {SLEEPER}
  containers:
  - name: job
    image: busybox:1.36
    command: ["sh", "-c", "sleep 1; echo done"]
"""
    try:
        node.create(pod_yaml("job-with-sidecar", MARK, body))

        def succeeded() -> Any:
            p = node.pod("job-with-sidecar")
            return p if p is not None and p.status.phase == "Succeeded" else None

        pod = node.wait(succeeded, "pod job-with-sidecar Succeeded", 60)
        assert pod.status.container_statuses[0].state.terminated.reason == "Completed"
        helper = _init(pod, "helper")
        assert helper.state.HasField("terminated") and helper.restart_count == 0, helper
        assert not helper.ready
    finally:
        _gone(node, "job-with-sidecar")


def _failed_hook_events(node: RealNode, name: str) -> list[Any]:
    return [e for e in node.events(name) if e.reason == "FailedPostStartHook"]


def test_post_start_hooks_run_and_a_failing_one_kills_the_container(node: RealNode) -> None:
    hooked = f"""  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: busybox:1.36
    command: {SLEEPER}
    lifecycle:
      postStart:
        exec: {{command: ["sh", "-c", "echo hooked > /tmp/post-start"]}}
"""
    failing = f"""  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: busybox:1.36
    command: {SLEEPER}
    lifecycle:
      postStart:
        exec: {{command: ["sh", "-c", "echo no config >&2; exit 3"]}}
"""
    try:
        node.create(pod_yaml("hooked", MARK, hooked))
        node.create(pod_yaml("bad-hook", MARK, failing))
        node.wait(lambda: node.running("hooked"), "pod hooked Running", 45)
        cat = run_cli(node.apiserver.address, "exec", "hooked", "--", "cat", "/tmp/post-start")
        assert cat.stdout.strip() == "hooked", cat.stderr

        events = node.wait(lambda: _failed_hook_events(node, "bad-hook"), "FailedPostStartHook", 45)
        assert events[0].type == "Warning"
        assert events[0].message.startswith(
            'Exec lifecycle hook ([sh -c echo no config >&2; exit 3]) for Container "app" in Pod '
            '"bad-hook_default('
        ), events[0].message
        assert "exited with 3: no config" in events[0].message
        killing = [e for e in node.events("bad-hook") if e.reason == "Killing"]
        assert killing and killing[0].message == "FailedPostStartHook"

        def restarted() -> Any:
            p = node.pod("bad-hook")
            statuses = p.status.container_statuses
            return p if statuses and statuses[0].restart_count >= 1 else None

        pod = node.wait(restarted, "the container restarted after its failed hook", 45)
        app = pod.status.container_statuses[0]
        assert app.state.waiting.reason in ("PostStartHookError", "CrashLoopBackOff"), app
        assert pod.status.phase != "Succeeded"
    finally:
        _gone(node, "hooked", "bad-hook")


def test_termination_messages_from_the_file_and_from_the_log(node: RealNode) -> None:
    from_file = """  restartPolicy: Never
  containers:
  - name: app
    image: busybox:1.36
    command: ["sh", "-c", "echo config missing > /dev/termination-log; exit 3"]
"""
    from_logs = """  restartPolicy: Never
  containers:
  - name: app
    image: busybox:1.36
    terminationMessagePolicy: FallbackToLogsOnError
    command: ["sh", "-c", "for i in $(seq 1 100); do echo line $i; done; exit 2"]
"""
    try:
        node.create(pod_yaml("message-file", MARK, from_file))
        node.create(pod_yaml("message-logs", MARK, from_logs))

        def failed(name: str) -> Any:
            p = node.pod(name)
            return p if p is not None and p.status.phase == "Failed" else None

        pod = node.wait(lambda: failed("message-file"), "pod message-file Failed", 45)
        terminated = pod.status.container_statuses[0].state.terminated
        assert (terminated.exit_code, terminated.message) == (3, "config missing\n"), terminated

        pod = node.wait(lambda: failed("message-logs"), "pod message-logs Failed", 45)
        terminated = pod.status.container_statuses[0].state.terminated
        lines = terminated.message.splitlines()
        assert terminated.exit_code == 2
        assert lines == [f"line {i}" for i in range(21, 101)], terminated.message
        described = run_cli(node.apiserver.address, "describe", "pod", "message-file")
        assert "config missing" in described.stdout, described.stdout
    finally:
        _gone(node, "message-file", "message-logs")
