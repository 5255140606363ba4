"""The runtime manager hands the runtime a resolved config: env valueFrom, volumes, resources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from google.protobuf.message import Message

from apimachinery import errors as api_errors
from apimachinery import scheme
from kubelet.config import KubeletConfig
from kubelet.errors import ConfigError
from kubelet.kuberuntime_manager import KubeRuntimeManager
from kubelet.runtime.fake import FakeRuntime
from kubelet.runtime.interface import ContainerConfig, PodSandboxConfig
from kubelet.volume_manager import ObjectGetter, Referenced, VolumeManager, referenced_objects
from protos import core_pb2
from tests.unit.kubelet.conftest import pod


class RecordingRuntime(FakeRuntime):
    """The fake runtime, keeping every ContainerConfig it was given."""

    def __init__(self) -> None:
        super().__init__("10.244.7.0/24")
        self.configs: list[ContainerConfig] = []

    async def create_container(
        self, sandbox_id: str, config: ContainerConfig, sandbox_config: PodSandboxConfig
    ) -> str:
        self.configs.append(config)
        return await super().create_container(sandbox_id, config, sandbox_config)


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def event(self, obj: Any, type_: str, reason: str, message: str) -> None:
        self.seen.append((type_, reason, message))


def _objects() -> dict[tuple[str, str], Message]:
    cm = core_pb2.ConfigMap()
    cm.metadata.name = "cfg"
    cm.data["mode"] = "fast"
    cm.data["app.conf"] = "listen 80;\n"
    secret = core_pb2.Secret()
    secret.metadata.name = "creds"
    secret.data["password"] = b"s3cret"
    return {("configmaps", "cfg"): cm, ("secrets", "creds"): secret}


def _getter(objects: dict[tuple[str, str], Message], calls: list[str]) -> ObjectGetter:
    async def get(kind: type[Referenced], namespace: str, name: str) -> Referenced:
        resource = scheme.for_message(kind).resource
        calls.append(f"{resource}/{namespace}/{name}")
        found = objects.get((resource, name))
        if found is None:
            raise api_errors.NotFound(f"{resource} {name!r} not found")
        assert isinstance(found, kind)
        return found

    return get


def _web_pod() -> core_pb2.Pod:
    p = pod("web", "node1", "web")
    p.metadata.uid = "uid-web"
    spec = p.spec.containers[0]
    spec.env.add(name="MODE").value_from.config_map_key_ref.name = "cfg"
    spec.env[-1].value_from.config_map_key_ref.key = "mode"
    spec.env.add(name="PASS").value_from.secret_key_ref.name = "creds"
    spec.env[-1].value_from.secret_key_ref.key = "password"
    spec.env.add(name="IP").value_from.field_ref.field_path = "status.podIP"
    spec.env.add(name="HOST").value_from.field_ref.field_path = "status.hostIP"
    spec.env.add(name="URL", value="http://$(IP):80/$(MODE)")
    spec.resources.limits["cpu"] = "500m"
    spec.resources.limits["memory"] = "64Mi"
    p.spec.volumes.add(name="conf").config_map.name = "cfg"
    p.spec.volumes.add(name="scratch").empty_dir.SetInParent()
    spec.volume_mounts.add(name="conf", mount_path="/etc/app", read_only=True)
    spec.volume_mounts.add(name="scratch", mount_path="/tmp/work")
    return p


async def test_env_volumes_and_resources_reach_the_runtime(tmp_path: Path) -> None:
    runtime = RecordingRuntime()
    calls: list[str] = []
    volumes = VolumeManager(str(tmp_path), _getter(_objects(), calls))
    manager = KubeRuntimeManager(runtime, volumes=volumes, host_ip="192.168.50.10")
    p = _web_pod()
    result = await manager.sync_pod(p)
    assert result.error is None and result.sandbox is not None
    (config,) = runtime.configs
    env = dict(config.env)
    ip = result.sandbox.ip
    assert env["MODE"] == "fast" and env["PASS"] == "s3cret"
    assert env["IP"] == ip and env["HOST"] == "192.168.50.10"
    assert env["URL"] == f"http://{ip}:80/fast"
    assert sorted(calls) == ["configmaps/default/cfg", "secrets/default/creds"]
    mounts = {m.container_path: m for m in config.mounts}
    conf_dir = Path(mounts["/etc/app"].host_path)
    assert mounts["/etc/app"].read_only and (conf_dir / "app.conf").read_text() == "listen 80;\n"
    assert conf_dir.is_relative_to(tmp_path / "pods" / "uid-web" / "volumes")
    assert Path(mounts["/tmp/work"].host_path).is_dir()
    assert config.resources is not None
    assert (
        config.resources.cpu_quota == 50_000 and config.resources.memory_limit_in_bytes == 64 << 20
    )

    # Running: a second sync reads nothing (the API server may be down meanwhile).
    calls.clear()
    await manager.sync_pod(p)
    assert calls == []
    await volumes.cleanup("uid-web")
    assert not (tmp_path / "pods" / "uid-web").exists()


async def test_unknown_volume_is_a_clear_reason(tmp_path: Path) -> None:
    runtime = RecordingRuntime()
    events = Events()
    volumes = VolumeManager(str(tmp_path), _getter({}, []))
    manager = KubeRuntimeManager(runtime, events, volumes=volumes)  # type: ignore[arg-type]
    p = pod("odd", "node1", "web")
    p.metadata.uid = "uid-odd"
    p.spec.volumes.add(name="mystery")  # no source the kubelet knows
    result = await manager.sync_pod(p)
    assert result.waiting["web"].reason == "CreateContainerConfigError"
    assert "mystery" in result.waiting["web"].message
    assert result.error is not None and runtime.configs == []
    assert runtime.count("run_pod_sandbox") == 0
    assert any(reason == "FailedMount" for _, reason, _ in events.seen)


async def test_missing_configmap_key_and_object() -> None:
    runtime = RecordingRuntime()
    manager = KubeRuntimeManager(runtime, volumes=VolumeManager(on_disk=False))
    p = _web_pod()
    del p.spec.volumes[:]
    del p.spec.containers[0].volume_mounts[:]
    result = await manager.sync_pod(p)  # no getter: neither cfg nor creds exists
    assert result.waiting["web"].reason == "CreateContainerConfigError"
    assert 'configmap "cfg" not found' in result.waiting["web"].message
    assert runtime.configs == []


async def test_hollow_node_checks_volumes_without_writing(tmp_path: Path) -> None:
    runtime = RecordingRuntime()
    volumes = VolumeManager(str(tmp_path), _getter(_objects(), []), on_disk=False)
    result = await KubeRuntimeManager(runtime, volumes=volumes).sync_pod(_web_pod())
    assert result.error is None and len(runtime.configs) == 1
    assert not (tmp_path / "pods").exists()


def test_referenced_objects_and_config() -> None:
    assert referenced_objects(_web_pod()) == ({"cfg"}, {"creds"})
    config = KubeletConfig(node_name="n1", node_ip="10.0.0.1", kubelet_port=0)
    config.validate()
    assert config.root_dir == "/var/lib/kubelet"
    bad = KubeletConfig(node_name="n1", kubelet_port=70000)
    try:
        bad.validate()
    except ConfigError as exc:
        assert "port" in str(exc)
    else:
        raise AssertionError("port 70000 accepted")
