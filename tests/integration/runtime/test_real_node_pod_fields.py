"""The Pod fields real manifests use, on one real node per runtime (containerd, then Docker),
as a user sees them inside the container through `tinykube logs` and `tinykube exec`:

* env: envFrom a ConfigMap and a Secret with prefixes (a key that is no valid
  variable name skipped, with the InvalidEnvironmentVariableNames event),
  resourceFieldRef with divisors (a limit the container does not set reads as
  the node's allocatable), and every fieldRef -- the container's `env | sort`
  in its log;
* /etc/resolv.conf with dnsPolicy None and a dnsConfig, and with dnsPolicy
  Default merged with one (the node's nameservers first);
* /etc/hosts: the kubelet-managed file with the pod's own line and the
  HostAliases section;
* shareProcessNamespace: the app container sees the pause process as PID 1 and
  the other container's process.

One API server process and one `tinykube kubelet` process (node.py); each test
deletes its pods, and the node's teardown removes whatever sandbox a failed test
left (started_node).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from apimachinery import quantity
from tests.integration.runtime.conftest import RuntimeEnv
from tests.integration.runtime.node import RealNode, pod_yaml, started_node
from tests.procs import run_cli

pytestmark = pytest.mark.root

MARK = "pod-fields"
SLEEPER = '["sh", "-c", "trap \'exit 0\' TERM; while true; do sleep 1; done"]'
ENV_PRINTER = (
    '["sh", "-c", "env | sort; echo END-OF-ENV; trap \'exit 0\' TERM; '
    'while true; do sleep 1; done"]'
)
OBJECTS = """apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {MODE: fast, LEVEL: "3", 1X: only-with-a-prefix}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {PASSWORD: s3cret}
"""
FIELD_REFS = {
    "POD_NAME": "metadata.name",
    "POD_NS": "metadata.namespace",
    "POD_UID": "metadata.uid",
    "MARK": "metadata.labels['tinykube-test']",
    "TEAM": "metadata.annotations['example.com/team']",
    "NODE": "spec.nodeName",
    "SA": "spec.serviceAccountName",
    "HOST_IP": "status.hostIP",
    "HOST_IPS": "status.hostIPs",
    "POD_IP": "status.podIP",
    "POD_IPS": "status.podIPs",
}
RESOURCE_REFS = {
    "MEM_MB": "{resource: limits.memory, divisor: 1Mi}",
    "CPU_MILLI": "{resource: limits.cpu, divisor: 1m}",
    "SIDE_CPUS": "{containerName: side, resource: limits.cpu}",
}
ENV = "".join(
    [
        *(
            f"    - name: {name}\n      valueFrom: {{resourceFieldRef: {ref}}}\n"
            for name, ref in RESOURCE_REFS.items()
        ),
        *(
            f'    - name: {name}\n      valueFrom: {{fieldRef: {{fieldPath: "{path}"}}}}\n'
            for name, path in FIELD_REFS.items()
        ),
    ]
)
ENV_POD = f"""  containers:
  - name: app
    image: busybox:1.36
    command: {ENV_PRINTER}
    resources:
      limits: {{memory: 64Mi, cpu: 250m}}
    envFrom:
    - configMapRef: {{name: settings}}
      prefix: CFG_
    - configMapRef: {{name: settings}}
    - secretRef: {{name: creds}}
      prefix: DB_
    - configMapRef: {{name: absent, optional: true}}
    env:
{ENV}  - name: side
    image: busybox:1.36
    command: {SLEEPER}
"""


@pytest.fixture(scope="module", params=["containerd", "docker"])
def node(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    runtime_env: RuntimeEnv,
) -> Iterator[RealNode]:
    docker_env = request.getfixturevalue("docker_env") if request.param == "docker" else None
    root = tmp_path_factory.mktemp("pod-fields")
    with started_node(root, runtime_env, MARK, docker_env) as real:
        yield real


def _gone(node: RealNode, *names: str) -> None:
    for name in names:
        if node.pod(name) is not None:
            node.delete(name)
    node.wait(lambda: all(node.pod(n) is None for n in names), f"pods {names} deleted", 30)


def _all_running(node: RealNode, *names: str) -> None:
    node.wait(lambda: all(node.running(n) for n in names), f"pods {names} Running", 60)


def _exec(node: RealNode, pod: str, *command: str, container: str = "app") -> str:
    done = run_cli(node.apiserver.address, "exec", pod, "-c", container, "--", *command)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _env_from_logs(node: RealNode, pod: str) -> dict[str, str] | None:
    logs = run_cli(node.apiserver.address, "logs", pod, "-c", "app")
    if logs.returncode != 0 or "END-OF-ENV" not in logs.stdout:
        return None
    lines = logs.stdout.split("END-OF-ENV")[0].splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def _allocatable_cpus(node: RealNode) -> str:
    def get(client: Any) -> Any:
        return client.get("nodes", "node1", "")

    cpu = node.api(get).status.allocatable["cpu"]
    return str(math.ceil(quantity.parse_quantity(cpu)))


def test_env_from_resource_field_refs_and_field_refs(node: RealNode) -> None:
    manifest = pod_yaml("env-fields", MARK, ENV_POD).replace(
        "  labels:\n", "  annotations: {example.com/team: blue}\n  labels:\n"
    )
    try:
        node.create(OBJECTS)
        node.create(manifest)
        pod = node.wait(lambda: node.running("env-fields"), "pod env-fields Running", 60)
        env = node.wait(lambda: _env_from_logs(node, "env-fields"), "the env in the log", 20)
        expected = {
            "CFG_MODE": "fast",
            "CFG_LEVEL": "3",
            "MODE": "fast",
            "DB_PASSWORD": "s3cret",
            "MEM_MB": "64",
            "CPU_MILLI": "250",
            "SIDE_CPUS": _allocatable_cpus(node),  # no limit: the node's allocatable
            "POD_NAME": "env-fields",
            "POD_NS": "default",
            "POD_UID": pod.metadata.uid,
            "MARK": MARK,
            "TEAM": "blue",
            "NODE": "node1",
            "SA": pod.spec.service_account_name,
            "HOST_IP": node.env.network.gateway,
            "HOST_IPS": node.env.network.gateway,
            "POD_IP": pod.status.pod_ip,
            "POD_IPS": pod.status.pod_ip,
        }
        assert {k: env.get(k) for k in expected} == expected
        assert "1X" not in env and env["CFG_1X"] == "only-with-a-prefix"
        warned = node.wait(
            lambda: [
                e
                for e in node.events("env-fields")
                if e.reason == "InvalidEnvironmentVariableNames"
            ],
            "the InvalidEnvironmentVariableNames event",
            10,
        )
        messages = {e.message for e in warned}
        assert (
            "Keys [1X] from the EnvFrom configMap default/settings were skipped since they are "
            "considered invalid environment variable names." in messages
        )
    finally:
        _gone(node, "env-fields")
        run_cli(node.apiserver.address, "delete", "configmap", "settings")
        run_cli(node.apiserver.address, "delete", "secret", "creds")


def _node_resolv_conf() -> list[str]:
    with open("/etc/resolv.conf") as f:
        return [line.split("#")[0].strip() for line in f]


def _resolv(node: RealNode, name: str) -> list[str]:
    return [line.strip() for line in _exec(node, name, "cat", "/etc/resolv.conf").splitlines()]


def test_resolv_conf_with_dns_policy_none_and_a_merged_dns_config(node: RealNode) -> None:
    none = f"""  dnsPolicy: None
  dnsConfig:
    nameservers: [10.0.0.53, 10.0.0.54]
    searches: [example.com, corp.example]
    options: [{{name: ndots, value: "2"}}, {{name: edns0}}]
  containers:
  - {{name: app, image: "busybox:1.36", command: {SLEEPER}}}
"""
    merged = f"""  dnsPolicy: Default
  dnsConfig:
    nameservers: [10.0.0.53]
    searches: [example.com]
    options: [{{name: timeout, value: "3"}}]
  containers:
  - {{name: app, image: "busybox:1.36", command: {SLEEPER}}}
"""
    try:
        node.create(pod_yaml("dns-none", MARK, none))
        node.create(pod_yaml("dns-merged", MARK, merged))
        _all_running(node, "dns-none", "dns-merged")
        lines = _resolv(node, "dns-none")
        assert [x for x in lines if x.startswith("nameserver")] == [
            "nameserver 10.0.0.53",
            "nameserver 10.0.0.54",
        ]
        assert "search example.com corp.example" in lines
        assert "options ndots:2 edns0" in lines
        # The node's nameservers (the kubelet's --resolv-conf), then the pod's, at most 3.
        node_servers = [x.split()[1] for x in _node_resolv_conf() if x.startswith("nameserver ")]
        servers = list(dict.fromkeys([*node_servers, "10.0.0.53"]))[:3]
        lines = _resolv(node, "dns-merged")
        assert [x for x in lines if x.startswith("nameserver")] == [
            f"nameserver {s}" for s in servers
        ]
        assert any(x.startswith("search") and x.endswith("example.com") for x in lines), lines
        assert any(x.startswith("options") and "timeout:3" in x for x in lines), lines
    finally:
        _gone(node, "dns-none", "dns-merged")


def test_etc_hosts_has_the_host_aliases(node: RealNode) -> None:
    body = f"""  hostAliases:
  - ip: 10.1.2.3
    hostnames: [foo.local, bar]
  - ip: 10.1.2.4
    hostnames: [baz.example]
  containers:
  - {{name: app, image: "busybox:1.36", command: {SLEEPER}}}
  - {{name: second, image: "busybox:1.36", command: {SLEEPER}}}
"""
    try:
        node.create(pod_yaml("aliased", MARK, body))
        pod = node.wait(lambda: node.running("aliased"), "pod aliased Running", 60)
        hosts = _exec(node, "aliased", "cat", "/etc/hosts")
        assert hosts.startswith("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")
        assert f"{pod.status.pod_ip}\taliased\n" in hosts
        assert hosts.endswith(
            "\n# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar\n10.1.2.4\tbaz.example\n"
        )
        assert _exec(node, "aliased", "cat", "/etc/hosts", container="second") == hosts
    finally:
        _gone(node, "aliased")


def test_share_process_namespace(node: RealNode) -> None:
    other = '["sh", "-c", "trap \'exit 0\' TERM; while true; do sleep 2; done # other-marker"]'
    body = f"""  shareProcessNamespace: true
  containers:
  - {{name: app, image: "busybox:1.36", command: {SLEEPER}}}
  - {{name: other, image: "busybox:1.36", command: {other}}}
"""
    apart = body.replace("  shareProcessNamespace: true\n", "")
    try:
        node.create(pod_yaml("shared-pid", MARK, body))
        node.create(pod_yaml("own-pid", MARK, apart))
        _all_running(node, "shared-pid", "own-pid")
        pid1 = _exec(node, "shared-pid", "cat", "/proc/1/cmdline").split("\0")[0]
        assert pid1 == "/pause"
        seen = _exec(node, "shared-pid", "ps", "-o", "pid,args")
        assert "other-marker" in seen, seen
        alone = _exec(node, "own-pid", "ps", "-o", "pid,args")
        assert "other-marker" not in alone and "/pause" not in alone, alone
    finally:
        _gone(node, "shared-pid", "own-pid")
