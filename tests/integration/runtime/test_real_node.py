"""The user's session on one real node, then bad input and node faults, in one module.

One API server process and one `tinykube kubelet --runtime containerd`
process (node.py) serve every test here -- and then, the module being
parametrized over the runtime, one `tinykube kubelet --runtime docker` on the
session's dockerd: the same session and faults give the same results on
both (the containerd restart is containerd's own; test_docker_node.py has
Docker's daemon fault). In order: the session first (apply
the seed, get/logs/exec/describe, curl each pod IP), then the pod inputs
(env valueFrom, configMap and emptyDir volumes, init containers preparing
a volume), then the bad input (a
missing configMap volume, a crashing command, a failing liveness probe, an
image that does not exist), and last the faults that disturb the node
itself: `kill -9` of the kubelet, a containerd restart, the API server down
for ~10 s. The seed's nginx pods stay up from the first test to the last,
so each fault is checked against the same running containers: same
container ids, same restart counts, and the page still served at each pod
IP.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcluster import images
from tests.integration.runtime.conftest import RuntimeEnv
from tests.integration.runtime.node import SEED, RealNode, pod_yaml, serves, started_node
from tests.procs import run_cli

pytestmark = pytest.mark.root

MARK = "real-node"
# A busybox container that stops at once on SIGTERM (PID 1 ignores it otherwise).
SLEEPER = '["sh", "-c", "trap \'exit 0\' TERM; while true; do sleep 1; done"]'


@pytest.fixture(scope="module", params=["containerd", "docker"])
def node(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    runtime_env: RuntimeEnv,
) -> Iterator[RealNode]:
    docker_env = request.getfixturevalue("docker_env") if request.param == "docker" else None
    with started_node(tmp_path_factory.mktemp("real-node"), runtime_env, MARK, docker_env) as real:
        yield real


def test_user_session(node: RealNode) -> None:
    server = node.apiserver.address
    out = run_cli(server, "apply", "-f", SEED)
    assert out.returncode == 0, out.stderr
    pods = node.wait(lambda: node.web_running(), "two web-app pods Running", 45)
    ips = sorted(p.status.pod_ip for p in pods)
    for ip in ips:
        assert images.NGINX_WELCOME in serves(ip), ip

    table = run_cli(server, "get", "pods", "-o", "wide")
    assert table.returncode == 0, table.stderr
    assert table.stdout.count("Running") == 2 and "node1" in table.stdout
    assert all(ip in table.stdout for ip in ips)

    name = pods[0].metadata.name
    logs = run_cli(server, "logs", name)
    assert logs.returncode == 0, logs.stderr
    assert "GET / HTTP/1.1" in logs.stdout  # nginx's access log of the curl above

    conf = run_cli(server, "exec", name, "--", "cat", "/etc/nginx/nginx.conf")
    assert conf.returncode == 0, conf.stderr
    assert "daemon off;" in conf.stdout

    described = run_cli(server, "describe", "pod", name)
    assert described.returncode == 0, described.stderr
    scheme = f"{node.runtime_name}://"
    for text in ("Running", "Restart Count:", scheme, "Started", pods[0].status.pod_ip):
        assert text in described.stdout, (text, described.stdout)


def test_env_and_volumes_reach_the_container(node: RealNode) -> None:
    node.create(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config\n"
        "data:\n  mode: fast\n  greeting: hello from a configMap\n"
    )
    body = f"""  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: busybox:1.36
    command: {SLEEPER}
    env:
    - name: MY_IP
      valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}
    - name: MY_NAME
      valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
    - name: MODE
      valueFrom: {{configMapKeyRef: {{name: app-config, key: mode}}}}
    resources:
      limits: {{cpu: 500m, memory: 64Mi}}
    volumeMounts:
    - {{name: cfg, mountPath: /etc/cfg, readOnly: true}}
    - {{name: scratch, mountPath: /scratch}}
  volumes:
  - name: cfg
    configMap: {{name: app-config}}
  - name: scratch
    emptyDir: {{}}
"""
    node.create(pod_yaml("inputs", MARK, body))
    pod = node.wait(lambda: node.running("inputs"), "pod inputs Running", 30)
    server = node.apiserver.address
    env = run_cli(server, "exec", "inputs", "--", "sh", "-c", "echo $MY_IP $MY_NAME $MODE")
    assert env.stdout.split() == [pod.status.pod_ip, "inputs", "fast"], env.stderr
    cat = run_cli(server, "exec", "inputs", "--", "cat", "/etc/cfg/greeting")
    assert cat.stdout == "hello from a configMap", cat.stderr
    touch = run_cli(server, "exec", "inputs", "--", "sh", "-c", "echo x > /scratch/f")
    assert touch.returncode == 0, touch.stderr

    uid = pod.metadata.uid
    volumes = node.kubelet_root / "pods" / uid / "volumes"
    assert (volumes / "kubernetes.io~empty-dir" / "scratch" / "f").read_text() == "x\n"
    assert list(node.pod_logs.glob(f"*_{uid}"))
    node.delete("inputs")
    node.wait(lambda: node.pod("inputs") is None, "pod inputs deleted", 30)
    node.wait(
        lambda: (
            not (node.kubelet_root / "pods" / uid).exists()
            and not list(node.pod_logs.glob(f"*_{uid}"))
        ),
        "the pod's volume and log directories removed",
        10,
    )


def test_init_containers_run_in_order_before_the_app(node: RealNode) -> None:
    body = f"""  terminationGracePeriodSeconds: 2
  initContainers:
  - name: first
    image: busybox:1.36
    command: ["sh", "-c", "echo first > /work/order; echo first ran"]
    volumeMounts: [{{name: work, mountPath: /work}}]
  - name: second
    image: busybox:1.36
    command: ["sh", "-c", "test -f /work/order && echo second >> /work/order"]
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
    node.create(pod_yaml("initialized", MARK, body))
    pod = node.wait(lambda: node.running("initialized"), "pod initialized Running", 45)
    assert [s.state.terminated.reason for s in pod.status.init_container_statuses] == [
        "Completed",
        "Completed",
    ]
    assert any(c.type == "Initialized" and c.status == "True" for c in pod.status.conditions)
    server = node.apiserver.address
    order = run_cli(server, "exec", "initialized", "--", "cat", "/work/order")
    assert order.stdout.split() == ["first", "second"], order.stderr
    logs = run_cli(server, "logs", "initialized", "-c", "first")
    assert logs.stdout.strip() == "first ran", logs.stderr
    node.delete("initialized")
    node.wait(lambda: node.pod("initialized") is None, "pod initialized deleted", 30)


def _reasons(pod: Any) -> dict[str, tuple[str, str]]:
    out = {}
    for status in pod.status.container_statuses:
        if status.state.HasField("waiting"):
            out[status.name] = (status.state.waiting.reason, status.state.waiting.message)
    return out


def test_missing_configmap_volume_is_a_clear_reason(node: RealNode) -> None:
    body = f"""  containers:
  - name: app
    image: busybox:1.36
    command: {SLEEPER}
    volumeMounts: [{{name: cfg, mountPath: /etc/cfg}}]
  volumes:
  - name: cfg
    configMap: {{name: no-such-config}}
"""
    node.create(pod_yaml("no-volume", MARK, body))

    def waiting() -> tuple[str, str] | None:
        pod = node.pod("no-volume")
        return _reasons(pod).get("app") if pod is not None else None

    reason, message = node.wait(waiting, "a waiting reason", 20)
    assert reason == "CreateContainerConfigError" and "no-such-config" in message
    node.wait(
        lambda: any(e.reason == "FailedMount" for e in node.events("no-volume")),
        "a FailedMount event",
        10,
    )
    node.delete("no-volume")


def test_crash_loop_backoff_grows(node: RealNode) -> None:
    body = """  terminationGracePeriodSeconds: 2
  containers:
  - name: crash
    image: busybox:1.36
    command: ["sh", "-c", "exit 1"]
"""
    node.create(pod_yaml("crash", MARK, body))
    restarts: dict[int, float] = {}
    backoffs: list[str] = []
    deadline = time.monotonic() + 30
    # The first restart is at once; then 1 s, 2 s, 4 s of CrashLoopBackOff before the next.
    while time.monotonic() < deadline and (len(restarts) < 5 or len(backoffs) < 3):
        pod = node.pod("crash")
        statuses = pod.status.container_statuses if pod is not None else []
        if statuses:
            restarts.setdefault(statuses[0].restart_count, time.monotonic())
            reason, message = _reasons(pod).get("crash", ("", ""))
            if reason == "CrashLoopBackOff" and message.split()[1] not in backoffs:
                backoffs.append(message.split()[1])  # "back-off 2s restarting failed ..."
                assert statuses[0].last_state.terminated.exit_code == 1
        time.sleep(0.1)
    assert len(restarts) >= 5, (restarts, node.logs())
    # --crash-backoff 1,8: each wait doubles, and the gaps between restarts grow with it.
    assert backoffs[:3] == ["1s", "2s", "4s"], backoffs
    times = [restarts[k] for k in sorted(restarts)]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[-1] > gaps[0] + 1.0, gaps
    assert any(e.reason == "BackOff" for e in node.events("crash"))
    node.delete("crash")


def test_failing_liveness_probe_restarts(node: RealNode) -> None:
    body = """  terminationGracePeriodSeconds: 2
  containers:
  - name: web
    image: nginx:1.25
    livenessProbe:
      httpGet: {path: /healthz, port: 80}
      periodSeconds: 1
      failureThreshold: 2
"""
    node.create(pod_yaml("unhealthy", MARK, body))

    def restarted() -> Any:
        pod = node.pod("unhealthy")
        statuses = pod.status.container_statuses if pod is not None else []
        return pod if statuses and statuses[0].restart_count >= 1 else None

    node.wait(restarted, "a restart after the liveness probe failed", 30)
    killing = [e for e in node.events("unhealthy") if e.reason == "Killing"]
    assert any("failed liveness probe, will be restarted" in e.message for e in killing)
    assert any(e.reason == "Unhealthy" for e in node.events("unhealthy"))
    node.delete("unhealthy")


def test_missing_image_backs_off_others_run(node: RealNode) -> None:
    body = f"""  terminationGracePeriodSeconds: 2
  containers:
  - name: ok
    image: busybox:1.36
    command: {SLEEPER}
  - name: missing
    image: docker.io/library/no-such-image:0.0.1
"""
    node.create(pod_yaml("bad-image", MARK, body))

    def backing_off() -> bool:
        pod = node.pod("bad-image")
        reason, message = _reasons(pod).get("missing", ("", "")) if pod is not None else ("", "")
        return reason == "ImagePullBackOff" and "no-such-image" in message

    node.wait(backing_off, "ImagePullBackOff", 30)
    # Each failed pull is reported with the runtime's message (the status shows ErrImagePull
    # only until the next sync turns it into ImagePullBackOff).
    failed = [e.message for e in node.events("bad-image") if e.reason == "Failed"]
    assert "Error: ErrImagePull" in failed
    assert any("Failed to pull image" in m and "no-such-image" in m for m in failed)
    pod = node.pod("bad-image")
    ok = next(s for s in pod.status.container_statuses if s.name == "ok")
    assert ok.state.HasField("running")
    node.delete("bad-image")


def test_kill9_kubelet_adopts_without_restarts(node: RealNode) -> None:
    before = node.identity()
    assert len(before) == 2 and all(cid for cid, _ in before.values())
    starts = node.kubelet_starts()
    node.kubelet.kill9()
    node.kubelet.start()
    node.wait(lambda: node.kubelet_starts() > starts, "the new kubelet to start", 30)
    time.sleep(3)  # several PLEG relists and syncs of the adopted pods
    assert node.identity() == before
    for pod in node.web_pods():
        assert images.NGINX_WELCOME in serves(pod.status.pod_ip)
    # The runtime holds one container per pod: nothing was started again.
    containers = node.cri(lambda rt: rt.list_containers())
    ids = {f"{node.runtime_name}://{c.id}" for c in containers}
    assert {cid for cid, _ in before.values()} <= ids


def test_containerd_restart_pods_keep_running(node: RealNode) -> None:
    before = node.identity()
    if node.runtime_name != "containerd":
        pytest.skip("containerd's own restart (dockerd's: test_docker_node.py)")
    node.env.containerd.restart()
    for pod in node.web_pods():
        assert images.NGINX_WELCOME in serves(pod.status.pod_ip)
    # The kubelet reconnects: a new pod starts, the old ones are untouched.
    body = f"""  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: busybox:1.36
    command: {SLEEPER}
"""
    node.create(pod_yaml("after-restart", MARK, body))
    node.wait(lambda: node.running("after-restart"), "a new pod after the restart", 30)
    assert node.identity() == before
    node.delete("after-restart")


def test_apiserver_down_containers_keep_serving(node: RealNode) -> None:
    pods = node.web_pods()
    before = node.identity()
    victim = pods[0]
    node.apiserver.stop()
    down_until = time.monotonic() + 10
    # Meanwhile nginx keeps serving, and a container that dies is restarted by the kubelet.
    node.cri(lambda rt: rt.stop_container(before[victim.metadata.name][0].split("//")[1], 2))
    while time.monotonic() < down_until:
        for pod in pods:
            assert images.NGINX_WELCOME in serves(pod.status.pod_ip, attempts=30)
        time.sleep(1)
    node.apiserver.start()

    def converged() -> bool:
        now = node.identity()
        cid, restarts = now.get(victim.metadata.name, ("", 0))
        return (
            restarts == before[victim.metadata.name][1] + 1
            and cid != before[victim.metadata.name][0]
        )

    node.wait(converged, "the restart reported once the API server is back", 30)
    node.wait(lambda: node.web_running(), "both pods Running", 20)
    other = pods[1].metadata.name
    assert node.identity()[other] == before[other]


def test_logs_dir_under_test_root(node: RealNode) -> None:
    """Nothing of the session's pods is written outside the test's directory."""
    uids = {p.metadata.uid for p in node.web_pods()}
    assert all(list(node.pod_logs.glob(f"*_{uid}")) for uid in uids)
    assert Path(node.kubelet_root).is_relative_to(node.root)
