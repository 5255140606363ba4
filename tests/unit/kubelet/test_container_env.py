"""A container's environment (container_env.py): envFrom, every fieldRef, resourceFieldRef with
divisors and the node's allocatable, the order of the sources; and stdin/tty on both runtimes."""

from __future__ import annotations

from typing import Any

import pytest

from apimachinery import codec
from kubelet.runtime.container_env import field_value, resolve_env, resource_value
from kubelet.runtime.cri_convert import ContainerConfigError, container_config
from kubelet.runtime.cri_messages import to_cri_container_config
from kubelet.runtime.docker_convert import container_create
from kubelet.runtime.interface import PodSandboxConfig
from protos import core_pb2

ALLOCATABLE = {"cpu": "2", "memory": "4Gi", "ephemeral-storage": "10Gi"}


def make_pod(**container: Any) -> core_pb2.Pod:
    data = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-1",
            "namespace": "shop",
            "uid": "uid-1",
            "labels": {"app": "web"},
            "annotations": {"example.com/team": "blue"},
        },
        "spec": {
            "nodeName": "node1",
            "serviceAccountName": "builder",
            "containers": [{"name": "app", "image": "busybox", **container}],
        },
    }
    return codec.from_dict(data)  # type: ignore[return-value]


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, reason: str, message: str) -> None:
        self.seen.append((reason, message))


def env_of(pod: core_pb2.Pod, **kw: Any) -> dict[str, str]:
    return dict(resolve_env(pod, pod.spec.containers[0], **kw))


# ---------------------------------------------------------------- fieldRef


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("metadata.name", "web-1"),
        ("metadata.namespace", "shop"),
        ("metadata.uid", "uid-1"),
        ("metadata.labels['app']", "web"),
        ("metadata.labels['missing']", ""),
        ("metadata.annotations['example.com/team']", "blue"),
        ("spec.nodeName", "node1"),
        ("spec.serviceAccountName", "builder"),
        ("status.hostIP", "192.0.2.1"),
        ("status.hostIPs", "192.0.2.1"),
        ("status.podIP", "10.244.0.7"),
        ("status.podIPs", "10.244.0.7"),
    ],
)
def test_every_field_ref(path: str, value: str) -> None:
    pod = make_pod(env=[{"name": "V", "valueFrom": {"fieldRef": {"fieldPath": path}}}])
    assert env_of(pod, pod_ip="10.244.0.7", host_ip="192.0.2.1") == {"V": value}


def test_ip_lists_are_comma_joined_and_unknown_paths_refused() -> None:
    pod = make_pod()
    assert field_value(pod, "status.podIPs", ["10.0.0.1", "fd00::1"], []) == "10.0.0.1,fd00::1"
    with pytest.raises(ContainerConfigError, match=r"status\.phase"):
        field_value(pod, "status.phase", [], [])


# ---------------------------------------------------------------- resourceFieldRef


def res(resource: str, divisor: str = "", container: str = "") -> core_pb2.ResourceFieldSelector:
    return core_pb2.ResourceFieldSelector(
        resource=resource, divisor=divisor, container_name=container
    )


def test_resource_values_with_divisors_round_up() -> None:
    pod = make_pod(resources={"limits": {"cpu": "250m", "memory": "100Mi"}})
    ctr = pod.spec.containers[0]
    cases = {
        ("limits.cpu", ""): "1",  # a quarter CPU, rounded up
        ("limits.cpu", "1m"): "250",
        ("limits.cpu", "1"): "1",
        ("limits.memory", ""): str(100 * 1024 * 1024),
        ("limits.memory", "1Mi"): "100",
        ("limits.memory", "1Gi"): "1",
        ("limits.memory", "1M"): "105",  # 104.8576, rounded up
        ("requests.cpu", "1m"): "250",  # no request: the limit, as defaulting makes it
        ("requests.memory", "1Mi"): "100",
    }
    for (resource, divisor), want in cases.items():
        assert resource_value(pod, ctr, res(resource, divisor), ALLOCATABLE) == want, resource


def test_unset_limits_read_as_the_node_allocatable() -> None:
    pod = make_pod(resources={"requests": {"cpu": "100m"}})
    ctr = pod.spec.containers[0]
    assert resource_value(pod, ctr, res("limits.cpu", "1m"), ALLOCATABLE) == "2000"
    assert resource_value(pod, ctr, res("limits.memory", "1Mi"), ALLOCATABLE) == "4096"
    assert resource_value(pod, ctr, res("limits.ephemeral-storage", "1Gi"), ALLOCATABLE) == "10"
    assert resource_value(pod, ctr, res("requests.cpu", "1m"), ALLOCATABLE) == "100"
    assert resource_value(pod, ctr, res("requests.memory"), ALLOCATABLE) == "0"


def test_resource_of_another_container_by_name() -> None:
    pod = make_pod()
    pod.spec.init_containers.add(name="side", image="busybox").resources.limits["cpu"] = "3"
    ctr = pod.spec.containers[0]
    assert resource_value(pod, ctr, res("limits.cpu", "", "side"), ALLOCATABLE) == "3"
    with pytest.raises(ContainerConfigError, match="container nope not found"):
        resource_value(pod, ctr, res("limits.cpu", "", "nope"), ALLOCATABLE)


def test_resource_field_ref_in_env() -> None:
    pod = make_pod(
        resources={"limits": {"memory": "64Mi"}},
        env=[
            {
                "name": "MEM_MB",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
            },
            {"name": "CPUS", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        ],
    )
    assert env_of(pod, allocatable=ALLOCATABLE) == {"MEM_MB": "64", "CPUS": "2"}


# ---------------------------------------------------------------- envFrom and the order


def test_env_from_prefix_optional_and_invalid_names() -> None:
    pod = make_pod(
        envFrom=[
            {"configMapRef": {"name": "settings"}},
            {"prefix": "DB_", "secretRef": {"name": "db"}},
            {"configMapRef": {"name": "absent", "optional": True}},
            {"prefix": "S_", "secretRef": {"name": "gone", "optional": True}},
        ],
        env=[
            {"name": "COLOR", "value": "red"},  # env wins over envFrom
            {"name": "URL", "value": "http://$(DB_HOST)/$(MODE)"},
        ],
    )
    configmaps = {"settings": {"COLOR": "blue", "MODE": "fast", "1X": "no", "a=b": "no"}}
    secrets = {"db": {"HOST": b"db.shop", "PASS": b"s3cret"}}
    events = Events()
    env = env_of(
        pod,
        configmaps=configmaps.get,
        secrets=secrets.get,
        service_env=[("MODE", "from-service"), ("WEB_SERVICE_HOST", "10.96.0.9")],
        warn=events,
    )
    assert env == {
        "MODE": "fast",  # envFrom overrides the Service variables
        "WEB_SERVICE_HOST": "10.96.0.9",
        "COLOR": "red",
        "DB_HOST": "db.shop",
        "DB_PASS": "s3cret",
        "URL": "http://db.shop/fast",
    }
    assert events.seen == [
        (
            "InvalidEnvironmentVariableNames",
            "Keys [1X, a=b] from the EnvFrom configMap shop/settings were skipped since they "
            "are considered invalid environment variable names.",
        )
    ]


def test_env_from_values_are_not_expanded_and_prefix_makes_invalid_names_valid() -> None:
    pod = make_pod(envFrom=[{"prefix": "P_", "configMapRef": {"name": "c"}}])
    env = env_of(pod, configmaps={"c": {"1X": "$(HOME)"}}.get, warn=Events())
    assert env == {"P_1X": "$(HOME)"}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"configMapRef": {"name": "missing"}}, 'configmap "missing" not found'),
        ({"secretRef": {"name": "missing"}}, 'secret "missing" not found'),
    ],
)
def test_a_missing_env_from_object_is_a_config_error(source: dict[str, Any], message: str) -> None:
    pod = make_pod(envFrom=[source])
    with pytest.raises(ContainerConfigError, match=message):
        env_of(pod, configmaps=lambda n: None, secrets=lambda n: None)


# ---------------------------------------------------------------- stdin, tty


def test_stdin_and_tty_reach_both_runtimes() -> None:
    pod = make_pod(stdin=True, stdinOnce=True, tty=True)
    config = container_config(pod, pod.spec.containers[0])
    assert (config.stdin, config.stdin_once, config.tty) == (True, True, True)
    sandbox = PodSandboxConfig("web-1", "shop", "uid-1")
    cri = to_cri_container_config(config, sandbox)
    assert (cri.stdin, cri.stdin_once, cri.tty) == (True, True, True)
    docker = container_create(config, "pause-id", sandbox)
    assert (docker["stdin_open"], docker["detach"], docker["tty"]) == (True, False, True)
    plain = container_config(make_pod(stdin=True), make_pod(stdin=True).spec.containers[0])
    docker = container_create(plain, "pause-id", sandbox)
    assert (docker["stdin_open"], docker["detach"], "tty" in docker) == (True, True, False)
    none = container_create(
        container_config(make_pod(), make_pod().spec.containers[0]), "p", sandbox
    )
    assert not {"stdin_open", "detach", "tty"} & none.keys()
    assert not to_cri_container_config(
        container_config(make_pod(), make_pod().spec.containers[0]), sandbox
    ).tty
