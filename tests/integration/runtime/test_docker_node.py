"""One real node on Docker: the seed, then the faults only Docker has, in order.

One API server process and one `tinykube kubelet --runtime docker` process
(node.py) on the session's private dockerd, calling CNI with the test
bridge's config itself. The seed's nginx pods run from the first test on;
each fault is then checked against them (the faults both runtimes share --
`kill -9` of the kubelet and adoption by Docker labels, the API server down,
crash loops -- run in test_real_node.py, parametrized over the runtime):

* a pause container killed from outside: the pod's sandbox is NOTREADY, so
  the kubelet kills what is left of it, makes a new sandbox (new network
  namespace, CNI ADD) and starts the pod's containers in it;
* a container removed by hand (`docker rm -f`): the kubelet creates it again
  and counts a restart;
* dockerd stopped: the Node turns NotReady with Docker's own message, and
  Ready again once dockerd is back, with the pods running again (last: it
  stops every container on the node).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from localcluster import images
from tests.integration.runtime.conftest import DockerEnv, RuntimeEnv
from tests.integration.runtime.node import SEED, RealNode, pod_yaml, serves, started_node
from tests.integration.runtime.test_logs_real_node import follow_across_restarts
from tests.procs import run_cli

pytestmark = pytest.mark.root

MARK = "docker-node"


@pytest.fixture(scope="module")
def node(
    tmp_path_factory: pytest.TempPathFactory, runtime_env: RuntimeEnv, docker_env: DockerEnv
) -> Iterator[RealNode]:
    with started_node(
        tmp_path_factory.mktemp("docker-node"), runtime_env, MARK, docker_env
    ) as real:
        yield real


def _docker(node: RealNode) -> Any:
    assert node.docker_env is not None
    return docker.APIClient(base_url=node.docker_env.endpoint, version="1.41")


def _ready(node: RealNode) -> tuple[str, str]:
    async def get(client: Any) -> Any:
        return await client.get("nodes", "node1")

    found = node.api(get)
    for condition in found.status.conditions:
        if condition.type == "Ready":
            return condition.status, condition.message
    return "", ""


def test_seed_session_on_docker(node: RealNode) -> None:
    server = node.apiserver.address
    out = run_cli(server, "apply", "-f", SEED)
    assert out.returncode == 0, out.stderr
    pods = node.wait(lambda: node.web_running(), "two web-app pods Running", 60)
    for pod in pods:
        assert images.NGINX_WELCOME in serves(pod.status.pod_ip), pod.status.pod_ip
    name = pods[0].metadata.name
    logs = run_cli(server, "logs", name)
    assert logs.returncode == 0 and "GET / HTTP/1.1" in logs.stdout, logs.stderr
    conf = run_cli(server, "exec", name, "--", "cat", "/etc/nginx/nginx.conf")
    assert conf.returncode == 0 and "daemon off;" in conf.stdout, conf.stderr
    described = run_cli(server, "describe", "pod", name)
    assert described.returncode == 0, described.stderr
    for text in ("Running", "docker://", pods[0].status.pod_ip):
        assert text in described.stdout, (text, described.stdout)
    # dockershim's names, as `docker ps` lists them.
    client = _docker(node)
    try:
        names = [
            c["Names"][0]
            for c in client.containers(filters={"label": "io.kubernetes.pod.namespace"})
        ]
    finally:
        client.close()
    assert sum(n.startswith("/k8s_POD_web-app-") for n in names) == 2, names
    assert sum(n.startswith("/k8s_web-app_web-app-") for n in names) == 2, names


def test_logs_previous_tail_and_follow(node: RealNode) -> None:
    """`tinykube logs` on Docker: the json-file log through the kubelet server."""
    body = """  terminationGracePeriodSeconds: 1
  containers:
  - name: counter
    image: busybox:1.36
    command: ["sh", "-c", "for i in 1 2 3; do echo line-$i; done; echo err >&2; sleep 2; exit 1"]
"""
    node.create(pod_yaml("counter", MARK, body))
    server = node.apiserver.address

    def restarted() -> Any:
        pod = node.pod("counter")
        statuses = pod.status.container_statuses if pod is not None else []
        return pod if statuses and statuses[0].restart_count >= 1 else None

    node.wait(restarted, "the counter container restarted", 45)
    previous = run_cli(server, "logs", "counter", "--previous")
    assert previous.returncode == 0, previous.stderr
    # (stdout and stderr are copied separately by Docker: order is kept within each only)
    words = previous.stdout.split()
    assert [w for w in words if w != "err"] == ["line-1", "line-2", "line-3"], words
    assert words.count("err") == 1, words
    node.wait(
        lambda: "line-3" in run_cli(server, "logs", "counter").stdout, "the new instance's log", 20
    )
    tail = run_cli(server, "logs", "counter", "--tail", "1")
    assert tail.returncode == 0 and tail.stdout.split() in (["line-3"], ["err"]), tail.stdout
    # --follow goes on across the restarts (sleep 2; exit 1; again) until the pod is deleted.
    followed = follow_across_restarts(node, "counter", "line-1")
    assert "err" in followed, followed


def test_host_network_pod(node: RealNode) -> None:
    """hostNetwork: the pause container takes the host's network (no CNI), so does the pod."""
    body = """  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox:1.36
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
"""
    node.create(pod_yaml("on-host", MARK, body))
    pod = node.wait(lambda: node.running("on-host"), "the hostNetwork pod Running", 30)
    assert pod.status.pod_ip == node.env.network.gateway  # the node's own address
    links = run_cli(node.apiserver.address, "exec", "on-host", "--", "ip", "-o", "link")
    assert node.env.network.bridge in links.stdout, links.stdout  # the host's links
    node.delete("on-host")
    node.wait(lambda: node.pod("on-host") is None, "the hostNetwork pod deleted", 30)


def test_killed_pause_container_recreates_the_sandbox(node: RealNode) -> None:
    victim = node.web_pods()[0]
    uid = victim.metadata.uid
    [old] = node.cri(lambda rt: rt.list_pod_sandboxes(pod_uid=uid))
    client = _docker(node)
    try:
        pid = client.inspect_container(old.id)["State"]["Pid"]
    finally:
        client.close()
    os.kill(pid, signal.SIGKILL)

    def new_sandbox() -> Any:
        sandboxes = node.cri(lambda rt: rt.list_pod_sandboxes(pod_uid=uid))
        ready = [s for s in sandboxes if s.state.name == "READY" and s.id != old.id]
        pod = node.running(victim.metadata.name)
        if not ready or pod is None or pod.status.pod_ip != ready[0].ip:
            return None  # (the old container may still report Running at the old IP)
        return ready[0], pod

    sandbox, _ = node.wait(new_sandbox, "a new sandbox with the pod running in it", 45)
    assert sandbox.attempt == old.attempt + 1
    assert images.NGINX_WELCOME in serves(sandbox.ip)
    node.wait(
        lambda: any(e.reason == "SandboxChanged" for e in node.events(victim.metadata.name)),
        "a SandboxChanged event",
        10,
    )
    # The old sandbox and its containers are removed.
    node.wait(
        lambda: old.id not in {s.id for s in node.cri(lambda rt: rt.list_pod_sandboxes())},
        "the old sandbox removed",
        30,
    )


def test_container_removed_by_hand_is_recreated_as_a_restart(node: RealNode) -> None:
    pod = node.wait(lambda: node.web_running(), "both pods Running", 30)[1]
    name = pod.metadata.name
    before = pod.status.container_statuses[0]
    client = _docker(node)
    try:
        client.remove_container(before.container_id.split("//", 1)[1], force=True)
    finally:
        client.close()

    def recreated() -> Any:
        now = node.running(name)
        if now is None:
            return None
        status = now.status.container_statuses[0]
        return now if status.container_id not in ("", before.container_id) else None

    now = node.wait(recreated, "a new container for the removed one", 45)
    # The runtime has no trace of the old one: the count comes from the pod's last status.
    assert now.status.container_statuses[0].restart_count == before.restart_count + 1
    assert images.NGINX_WELCOME in serves(now.status.pod_ip)


def test_dockerd_down_node_not_ready_then_recovers(node: RealNode) -> None:
    assert node.docker_env is not None
    daemon = node.docker_env.dockerd
    node.wait(lambda: _ready(node)[0] == "True", "the Node Ready", 30)
    before = node.identity()
    daemon.stop_daemon()
    try:
        _, message = node.wait(
            lambda: (lambda r: r if r[0] == "False" else None)(_ready(node)),
            "the Node NotReady",
            30,
        )
        assert "Cannot connect to the Docker daemon" in message, message
        assert str(daemon.socket) in message
    finally:
        daemon.start()
    node.wait(lambda: _ready(node)[0] == "True", "the Node Ready again", 30)

    # dockerd stopped every container when it went down: the kubelet starts the pods again,
    # in new sandboxes (until then the API still shows the old, stale Running status).
    def restarted() -> list[Any] | None:
        pods = node.web_running()
        if pods is None:
            return None
        fresh = all(
            p.status.container_statuses[0].container_id != before[p.metadata.name][0] for p in pods
        )
        return pods if fresh else None

    pods = node.wait(restarted, "both pods Running again in new containers", 60)
    for pod in pods:
        assert images.NGINX_WELCOME in serves(pod.status.pod_ip)
