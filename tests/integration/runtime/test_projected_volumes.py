"""downwardAPI and projected volumes on a real node, and API-data volumes following their
sources under a running pod -- on containerd, then on Docker.

One API server process and one `tinykube kubelet` process (node.py, with
`--sync-frequency 5`) per runtime. The pods are busybox containers that
`cat` their files at start (read back with `tinykube logs`) and stay up, so
`tinykube exec` can read them again later:

* the files: name, namespace, uid, labels and annotations as Kubernetes
  writes them, cpu and memory limits with divisors (a container without a
  limit sees the node's allocatable), a projected volume merging a Secret,
  a ConfigMap and downward-API items, and the modes asked for;
* the updates: `tinykube apply` of a changed ConfigMap and `tinykube label`
  of the pod reach the running container's volumes within the resync
  period, without a restart -- while a subPath mount of the same ConfigMap
  key keeps the content it had when the container started, as in
  Kubernetes.

Cleanup: each test deletes its objects; the module's node removes every
sandbox it made and unmounts the volumes' tmpfs (node.started_node).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import pytest

from apimachinery import quantity
from apimachinery.client import Client
from tests.integration.runtime.conftest import RuntimeEnv
from tests.integration.runtime.node import RealNode, pod_yaml, started_node
from tests.procs import run_cli

pytestmark = pytest.mark.root

MARK = "projected-volumes"
SYNC_FREQUENCY = 5.0  # node.py's --sync-frequency
SLEEPER = "trap 'exit 0' TERM; while true; do sleep 1; done"
# Each file of /etc/podinfo, as `== name` and its content, in the app's log.
LISTING = 'cd /etc/podinfo && for f in *; do echo \\"== $f\\"; cat $f; echo; done;'

CONFIG = """apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}}}
data: {{greeting: {greeting}, mode: fast}}
"""
SECRET = """apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {token: s3cret}
"""


@pytest.fixture(scope="module", params=["containerd", "docker"])
def node(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    runtime_env: RuntimeEnv,
) -> Iterator[RealNode]:
    docker_env = request.getfixturevalue("docker_env") if request.param == "docker" else None
    with started_node(tmp_path_factory.mktemp("volumes"), runtime_env, MARK, docker_env) as real:
        yield real


def cli(node: RealNode, *args: str, stdin: str | None = None) -> str:
    out = run_cli(node.apiserver.address, *args, stdin=stdin)
    assert out.returncode == 0, (args, out.stderr)
    return out.stdout


def sh(node: RealNode, pod: str, script: str) -> str:
    """`sh -c script` in the pod's app container: its output without the last newline."""
    return cli(node, "exec", pod, "-c", "app", "--", "sh", "-c", script).rstrip("\n")


def remove(node: RealNode, pod: str, *objects: str) -> None:
    node.delete(pod)
    node.wait(lambda: node.pod(pod) is None, f"pod {pod} deleted", 30)
    for kind_name in objects:
        run_cli(node.apiserver.address, "delete", *kind_name.split("/"))


def node_allocatable_mib(node: RealNode) -> int:
    async def read(client: Client) -> Any:
        return await client.get("nodes", "node1")

    found = node.api(read)
    return math.ceil(quantity.parse_quantity(found.status.allocatable["memory"]) / (1 << 20))


FILES_POD = f"""  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: busybox:1.36
    command: ["sh", "-c", "{LISTING} {SLEEPER}"]
    resources:
      limits: {{cpu: 500m, memory: 64Mi}}
    volumeMounts:
    - {{name: podinfo, mountPath: /etc/podinfo}}
    - {{name: all, mountPath: /etc/all}}
  - name: unlimited
    image: busybox:1.36
    command: ["sh", "-c", "{SLEEPER}"]
  volumes:
  - name: podinfo
    downwardAPI:
      items:
      - {{path: name, fieldRef: {{fieldPath: metadata.name}}}}
      - {{path: namespace, fieldRef: {{fieldPath: metadata.namespace}}}}
      - {{path: uid, fieldRef: {{fieldPath: metadata.uid}}}}
      - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}
      - {{path: annotations, fieldRef: {{fieldPath: metadata.annotations}}}}
      - path: cpu_millis
        resourceFieldRef: {{containerName: app, resource: limits.cpu, divisor: 1m}}
      - path: mem_mib
        resourceFieldRef: {{containerName: app, resource: limits.memory, divisor: 1Mi}}
      - path: free_mem_mib
        resourceFieldRef: {{containerName: unlimited, resource: limits.memory, divisor: 1Mi}}
  - name: all
    projected:
      defaultMode: 0440
      sources:
      - secret: {{name: creds, items: [{{key: token, path: secret/token, mode: 0400}}]}}
      - configMap: {{name: files-config}}
      - configMap: {{name: not-there, optional: true}}
      - downwardAPI:
          items: [{{path: pod-name, fieldRef: {{fieldPath: metadata.name}}}}]
"""


def shown_files(logs: str) -> dict[str, str]:
    """The app's start-up listing (`== name` then the file's content) as name -> content."""
    parts = [part.split("\n", 1) for part in logs.split("== ")[1:]]
    return {name: content.rstrip("\n") for name, content in parts}


def app_listing(node: RealNode) -> str | None:
    out = cli(node, "logs", "files", "-c", "app")
    return out if "== uid" in out else None


def test_downward_api_and_projected_files_in_the_container(node: RealNode) -> None:
    cli(node, "apply", "-f", "-", stdin=CONFIG.format(name="files-config", greeting="hello"))
    cli(node, "apply", "-f", "-", stdin=SECRET)
    manifest = pod_yaml("files", MARK, FILES_POD).replace(
        "  labels:\n",
        "  annotations:\n    build: '42'\n    note: 'say \"hi\"'\n  labels:\n    tier: web\n",
    )
    node.create(manifest)
    pod = node.wait(lambda: node.running("files"), "pod files Running", 45)
    try:
        logs = node.wait(lambda: app_listing(node), "the files in the app's log", 15)
        shown = shown_files(logs)
        # The scheduler annotates the pod too (its placement record): sorted among ours.
        annotations = shown.pop("annotations").split("\n")
        assert annotations == sorted(annotations)
        assert len(annotations) == len(pod.metadata.annotations)
        assert {'build="42"', 'note="say \\"hi\\""'} <= set(annotations)
        assert shown == {
            "name": "files",
            "namespace": "default",
            "uid": pod.metadata.uid,
            "labels": f'tier="web"\ntinykube-test="{MARK}"',
            "cpu_millis": "500",
            "mem_mib": "64",
            "free_mem_mib": str(node_allocatable_mib(node)),  # no limit: the node's allocatable
        }
        # The projected volume: a Secret, a ConfigMap and the downward API in one directory.
        assert sh(node, "files", "cd /etc/all && ls").split() == [
            "greeting",
            "mode",
            "pod-name",
            "secret",
        ]
        read = sh(node, "files", "cd /etc/all && cat secret/token; echo; cat greeting pod-name")
        assert read.split() == ["s3cret", "hellofiles"]
        modes = sh(node, "files", "cd /etc/all && stat -L -c '%n %a' secret/token mode pod-name")
        assert modes.split() == ["secret/token", "400", "mode", "440", "pod-name", "440"]
        # Read-only whatever the volumeMount says, and in memory (a tmpfs of its own).
        refused = run_cli(
            node.apiserver.address, "exec", "files", "-c", "app", "--", "touch", "/etc/all/x"
        )
        assert refused.returncode != 0
        assert "tmpfs" in sh(node, "files", "grep ' /etc/all ' /proc/mounts")
    finally:
        remove(node, "files", "configmap/files-config", "secret/creds")


LIVE_POD = f"""  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: busybox:1.36
    command: ["sh", "-c", "{SLEEPER}"]
    volumeMounts:
    - {{name: config, mountPath: /etc/live}}
    - {{name: config, mountPath: /etc/pinned/greeting, subPath: greeting}}
    - {{name: podinfo, mountPath: /etc/podinfo}}
  volumes:
  - name: config
    configMap: {{name: live-config}}
  - name: podinfo
    downwardAPI:
      items: [{{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}]
"""


def test_updates_reach_a_running_pod_but_not_a_subpath(node: RealNode) -> None:
    cli(node, "apply", "-f", "-", stdin=CONFIG.format(name="live-config", greeting="v1"))
    node.create(pod_yaml("live", MARK, LIVE_POD))
    node.wait(lambda: node.running("live"), "pod live Running", 45)
    try:
        read = (
            "cat /etc/live/greeting; echo; cat /etc/pinned/greeting; echo; cat /etc/podinfo/labels"
        )
        assert sh(node, "live", read).split("\n") == ["v1", "v1", f'tinykube-test="{MARK}"']
        before = node.pod("live").status.container_statuses[0].container_id

        cli(node, "apply", "-f", "-", stdin=CONFIG.format(name="live-config", greeting="v2"))
        cli(node, "label", "pod", "live", "tier=front")
        changed = time.monotonic()
        node.wait(
            lambda: sh(node, "live", "cat /etc/live/greeting") == "v2",
            "the ConfigMap's new content in the running pod",
            SYNC_FREQUENCY * 3,
        )
        node.wait(
            lambda: "tier" in sh(node, "live", "cat /etc/podinfo/labels"),
            "the new label in the running pod",
            SYNC_FREQUENCY * 3,
        )
        assert time.monotonic() - changed < SYNC_FREQUENCY * 3
        assert sh(node, "live", "cat /etc/podinfo/labels").split("\n") == [
            'tier="front"',
            f'tinykube-test="{MARK}"',
        ]
        # The subPath bound the file of the version current at the start: it stays as it was.
        assert sh(node, "live", "cat /etc/pinned/greeting") == "v1"
        # What the container sees: the links through ..data, one version directory (the new).
        assert sh(node, "live", "readlink /etc/live/greeting") == "..data/greeting"
        entries = sh(node, "live", "ls -a /etc/live").split()
        versions = [e for e in entries if e.startswith("..2")]
        assert sorted(set(entries) - {".", ".."} - set(versions)) == ["..data", "greeting", "mode"]
        assert len(versions) == 1 and sh(node, "live", "readlink /etc/live/..data") == versions[0]
        status = node.pod("live").status.container_statuses[0]
        assert (status.container_id, status.restart_count) == (before, 0)  # no restart needed
    finally:
        remove(node, "live", "configmap/live-config")
