"""Pod spec -> runtime config (cri_convert) and CRI log parsing (cri_logs): no runtime needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubelet.runtime import cri_logs
from kubelet.runtime.cri_convert import (
    ContainerConfigError,
    LinuxResources,
    Mount,
    VolumeError,
    container_config,
    expand,
    linux_resources,
)
from kubelet.runtime.cri_messages import to_cri_container_config, to_cri_sandbox_config
from kubelet.runtime.interface import LogLine, PodSandboxConfig, PortMapping
from kubelet.volume_plugins import prepare_volumes
from protos import core_pb2
from protos import cri_pb2 as cri


def make_pod() -> core_pb2.Pod:
    pod = core_pb2.Pod()
    pod.metadata.name = "web-1"
    pod.metadata.namespace = "shop"
    pod.metadata.uid = "uid-1"
    pod.metadata.labels["app"] = "web"
    pod.spec.node_name = "node1"
    return pod


def test_expand_follows_kubernetes_rules() -> None:
    env = {"HOST": "a", "PORT": "80"}
    assert expand("http://$(HOST):$(PORT)/$(NOPE) costs $$5", env) == (
        "http://a:80/$(NOPE) costs $5"
    )


def test_env_with_field_refs_and_configmap_keys() -> None:
    pod = make_pod()
    spec = pod.spec.containers.add(name="web", image="nginx")
    spec.env.add(name="POD_IP").value_from.field_ref.field_path = "status.podIP"
    spec.env.add(name="NAME").value_from.field_ref.field_path = "metadata.name"
    spec.env.add(name="NS").value_from.field_ref.field_path = "metadata.namespace"
    spec.env.add(name="NODE").value_from.field_ref.field_path = "spec.nodeName"
    spec.env.add(name="APP").value_from.field_ref.field_path = "metadata.labels['app']"
    ref = spec.env.add(name="COLOR").value_from.config_map_key_ref
    ref.name, ref.key = "settings", "color"
    spec.env.add(name="URL", value="http://$(POD_IP):80/$(COLOR)")
    spec.command.extend(["echo", "$(NAME)"])
    config = container_config(
        pod, spec, 2, pod_ip="10.99.0.7", configmaps=lambda n: {"color": "blue"}
    )
    assert config.env == (
        ("POD_IP", "10.99.0.7"),
        ("NAME", "web-1"),
        ("NS", "shop"),
        ("NODE", "node1"),
        ("APP", "web"),
        ("COLOR", "blue"),
        ("URL", "http://10.99.0.7:80/blue"),
    )
    assert config.command == ("echo", "web-1")
    assert config.attempt == 2
    assert config.labels["io.kubernetes.pod.uid"] == "uid-1"
    with pytest.raises(ContainerConfigError, match="settings"):
        container_config(pod, spec, configmaps=lambda n: None)


def test_resources_worked_example() -> None:
    spec = core_pb2.Container(name="c", image="i")
    spec.resources.requests["cpu"] = "250m"
    spec.resources.limits["cpu"] = "500m"
    spec.resources.limits["memory"] = "128Mi"
    assert linux_resources(spec) == LinuxResources(100000, 50000, 256, 134217728)
    assert linux_resources(core_pb2.Container()) == LinuxResources(0, 0, 2, 0)
    only_limit = core_pb2.Container()
    only_limit.resources.limits["cpu"] = "1"
    assert linux_resources(only_limit).cpu_shares == 1024  # the request defaults to the limit


def test_volumes_prepared_and_mounted(tmp_path: Path) -> None:
    pod = make_pod()
    pod.spec.volumes.add(name="scratch").empty_dir.SetInParent()
    host = pod.spec.volumes.add(name="host").host_path
    host.path, host.type = str(tmp_path / "made"), "DirectoryOrCreate"
    pod.spec.volumes.add(name="conf").config_map.name = "settings"
    spec = pod.spec.containers.add(name="web", image="nginx")
    spec.volume_mounts.add(name="conf", mount_path="/etc/app", read_only=True)
    spec.volume_mounts.add(name="scratch", mount_path="/tmp/s")
    paths = prepare_volumes(pod, tmp_path / "kubelet", configmaps=lambda n: {"a.conf": "x=1"})
    conf = Path(paths["conf"])
    assert conf == tmp_path / "kubelet/pods/uid-1/volumes/kubernetes.io~configmap/conf"
    assert (conf / "a.conf").read_text() == "x=1"
    assert (tmp_path / "made").is_dir()
    config = container_config(pod, spec, volume_paths=paths)
    assert config.mounts == (
        Mount("/etc/app", str(conf), True),
        Mount("/tmp/s", paths["scratch"], False),
    )
    cri_config = to_cri_container_config(config, PodSandboxConfig("web-1", "shop", "uid-1"))
    assert [(m.container_path, m.readonly) for m in cri_config.mounts] == [
        ("/etc/app", True),
        ("/tmp/s", False),
    ]
    assert cri_config.log_path == "web/0.log"


def test_unknown_volume_type_and_missing_configmap_are_clear(tmp_path: Path) -> None:
    pod = make_pod()
    pod.spec.volumes.add(name="mystery")
    with pytest.raises(VolumeError, match="mystery") as caught:
        prepare_volumes(pod, tmp_path)
    assert caught.value.reason == "FailedMount"
    pod = make_pod()
    pod.spec.volumes.add(name="conf").config_map.name = "absent"
    with pytest.raises(VolumeError, match="absent"):
        prepare_volumes(pod, tmp_path, configmaps=lambda n: None)


def test_sandbox_config_to_cri() -> None:
    config = PodSandboxConfig(
        name="web-1",
        namespace="shop",
        uid="uid-1",
        attempt=1,
        port_mappings=(PortMapping(80), PortMapping(53, "UDP")),
        labels={"app": "web"},
    )
    out = to_cri_sandbox_config(config, "/var/log/pods")
    assert out.log_directory == "/var/log/pods/shop_web-1_uid-1"
    assert out.hostname == "web-1"
    assert out.metadata.attempt == 1
    assert [p.protocol for p in out.port_mappings] == [cri.TCP, cri.UDP]
    assert out.labels["io.kubernetes.pod.uid"] == "uid-1"
    assert out.linux.security_context.namespace_options.network == cri.POD
    host = to_cri_sandbox_config(
        PodSandboxConfig("h", "ns", "u", host_network=True), "/var/log/pods"
    )
    assert host.linux.security_context.namespace_options.network == cri.NODE
    assert host.hostname == ""


def test_cri_log_records_joined_and_timed() -> None:
    partial: dict[str, str] = {}
    data = (
        b"2024-05-01T10:00:00.5Z stdout F hello world\n"
        b"2024-05-01T10:00:01Z stderr P a long line \n"
        b"2024-05-01T10:00:01.25+00:00 stderr F split in two\n"
    )
    lines = cri_logs.parse_records(data, partial)
    assert [(ln.stream, ln.text) for ln in lines] == [
        ("stdout", "hello world"),
        ("stderr", "a long line split in two"),
    ]
    assert lines[0].time == pytest.approx(1714557600.5)
    assert lines[1].time == pytest.approx(1714557601.25)
    assert cri_logs.parse_time("2024-05-01T12:00:00+02:00") == 1714557600


async def test_read_log_tail_and_follow_until_exit(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_bytes(
        b"".join(f"2024-05-01T10:00:0{i}Z stdout F line {i}\n".encode() for i in range(5))
    )
    done = {"exited": False}

    async def exited() -> bool:
        if not done["exited"]:
            with path.open("ab") as f:
                f.write(b"2024-05-01T10:00:09Z stdout F last\n")
            done["exited"] = True
            return False
        return True

    tail: list[LogLine] = [
        ln async for ln in cri_logs.read_log(path, follow=False, tail=2, exited=exited)
    ]
    assert [ln.text for ln in tail] == ["line 3", "line 4"]
    followed = [ln.text async for ln in cri_logs.read_log(path, follow=True, tail=1, exited=exited)]
    assert followed == ["line 4", "last"]
