"""downwardAPI and projected volumes: their content (fieldRef, resourceFieldRef, keys, modes),
their layout and tmpfs, and how a running pod's API-data volumes follow their sources."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from apimachinery import codec
from apimachinery import errors as api_errors
from apiserver.auth import node as node_auth
from kubelet import subpath
from kubelet.atomic_writer import DATA_DIR, FileProjection
from kubelet.errors import VolumeError
from kubelet.mount import FakeMounter
from kubelet.volume_manager import PodInputs, Referenced, VolumeManager, referenced_objects
from kubelet.volume_plugins import prepare_volumes
from kubelet.volume_projection import (
    downward_api_payload,
    format_map,
    go_quote,
    key_payload,
    resource_value,
)
from protos import core_pb2

ALLOCATABLE = {"cpu": "3500m", "memory": "7680Mi"}


def make_pod(spec: dict[str, Any], labels: dict[str, str] | None = None) -> core_pb2.Pod:
    obj = codec.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "web",
                "labels": labels or {},
                "annotations": {"note": "line1\nline2", "build": "42"},
            },
            "spec": spec,
        }
    )
    assert isinstance(obj, core_pb2.Pod)
    obj.metadata.namespace, obj.metadata.uid = "shop", "uid-7"
    return obj


APP = {
    "name": "app",
    "image": "busybox",
    "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "250m"}},
}
SIDE = {"name": "side", "image": "busybox"}  # no limits: the node's allocatable


def text(payload: dict[str, FileProjection]) -> dict[str, str]:
    return {k: v.data.decode() for k, v in payload.items()}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---- content -----------------------------------------------------------------------------------


def test_labels_and_annotations_as_kubernetes_formats_them() -> None:
    assert format_map({"tier": "web", "app": 'say "hi"'}) == 'app="say \\"hi\\""\ntier="web"'
    assert format_map({}) == ""
    assert go_quote("tab\there\x01é\u00a0\\") == '"tab\\there\\x01é\\u00a0\\\\"'


def test_downward_api_fields_and_modes() -> None:
    pod = make_pod({"containers": [APP]}, labels={"b": "2", "a": "1"})
    items = [
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}, "mode": 0o400},
        {"path": "uid", "fieldRef": {"fieldPath": "metadata.uid"}},
        {"path": "meta/labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
        {"path": "a", "fieldRef": {"fieldPath": "metadata.labels['a']"}},
        {"path": "none", "fieldRef": {"fieldPath": "metadata.annotations['absent']"}},
    ]
    volume = _volume({"name": "info", "downwardAPI": {"items": items}})
    payload = downward_api_payload(pod, volume.downward_api.items, 0o644, ALLOCATABLE)
    assert text(payload) == {
        "name": "web",
        "ns": "shop",
        "uid": "uid-7",
        "meta/labels": 'a="1"\nb="2"',
        "annotations": 'build="42"\nnote="line1\\nline2"',
        "a": "1",
        "none": "",
    }
    assert payload["ns"].mode == 0o400 and payload["name"].mode == 0o644
    bad = _volume({"name": "x", "downwardAPI": {"items": [{"path": "ip", "fieldRef": {}}]}})
    bad.downward_api.items[0].field_ref.field_path = "status.podIP"  # env only
    with pytest.raises(VolumeError, match=r"unsupported fieldPath: status\.podIP"):
        downward_api_payload(pod, bad.downward_api.items, 0o644, ALLOCATABLE)


@pytest.mark.parametrize(
    ("container", "resource", "divisor", "value"),
    [
        ("app", "limits.cpu", "", "1"),  # half a CPU, rounded up
        ("app", "limits.cpu", "1m", "500"),
        ("app", "limits.cpu", "0", "1"),  # "0" is read as 1, as Kubernetes does
        ("app", "requests.cpu", "1m", "250"),
        ("app", "limits.memory", "", str(64 << 20)),
        ("app", "limits.memory", "1Mi", "64"),
        ("app", "limits.memory", "1Gi", "1"),
        ("app", "requests.memory", "", "0"),  # no request: 0
        ("side", "limits.cpu", "1m", "3500"),  # no limit: the node's allocatable
        ("side", "limits.memory", "1Mi", "7680"),
    ],
)
def test_resource_field_ref(container: str, resource: str, divisor: str, value: str) -> None:
    pod = make_pod({"containers": [APP, SIDE]})
    selector = core_pb2.ResourceFieldSelector(
        container_name=container, resource=resource, divisor=divisor
    )
    assert resource_value(pod, selector, ALLOCATABLE) == value


def test_resource_field_ref_errors() -> None:
    pod = make_pod({"containers": [APP]})
    for name, resource, words in (
        ("nope", "limits.cpu", 'container "nope" not found'),
        ("app", "limits.gpu", "unsupported container resource"),
        ("app", "cpu", "unsupported container resource"),
    ):
        selector = core_pb2.ResourceFieldSelector(container_name=name, resource=resource)
        with pytest.raises(VolumeError, match=words):
            resource_value(pod, selector, ALLOCATABLE)


def test_key_payload_items_optional_and_missing_keys() -> None:
    items = [
        core_pb2.KeyToPath(key="a", path="x/a"),
        core_pb2.KeyToPath(key="b", path="b", mode=0o600),
    ]
    payload = key_payload("configmap", {"a": "1", "b": b"\x00"}, items, 0o444, False)
    assert payload == {"x/a": FileProjection(b"1", 0o444), "b": FileProjection(b"\x00", 0o600)}
    assert key_payload("secret", {"a": "1"}, items, 0o444, True) == {
        "x/a": FileProjection(b"1", 0o444)
    }
    with pytest.raises(VolumeError, match="configmap references non-existent config key: b"):
        key_payload("configmap", {"a": "1"}, items, 0o444, False)
    with pytest.raises(VolumeError, match="references non-existent secret key: b"):
        key_payload("secret", {"a": "1"}, items, 0o444, False)


# ---- on disk -----------------------------------------------------------------------------------


def _volume(spec: dict[str, Any]) -> core_pb2.Volume:
    pod = make_pod({"containers": [], "volumes": [spec]})
    return pod.spec.volumes[0]


PROJECTED = {
    "name": "all",
    "projected": {
        "defaultMode": 0o440,
        "sources": [
            {"secret": {"name": "creds", "items": [{"key": "token", "path": "secret/token"}]}},
            {
                "configMap": {
                    "name": "cfg",
                    "items": [{"key": "mode", "path": "mode", "mode": 0o644}],
                }
            },
            {"configMap": {"name": "absent", "optional": True}},
            {
                "downwardAPI": {
                    "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
                }
            },
        ],
    },
}
DOWNWARD = {
    "name": "info",
    "downwardAPI": {
        "items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {
                "path": "mem",
                "resourceFieldRef": {
                    "containerName": "app",
                    "resource": "limits.memory",
                    "divisor": "1Mi",
                },
            },
        ]
    },
}


def _spec() -> dict[str, Any]:
    mounts = [
        {"name": "info", "mountPath": "/etc/info"},
        {"name": "all", "mountPath": "/etc/all"},
        {"name": "cfg", "mountPath": "/etc/mode", "subPath": "mode"},
    ]
    return {
        "containers": [{**APP, "volumeMounts": mounts}],
        "volumes": [DOWNWARD, PROJECTED, {"name": "cfg", "configMap": {"name": "cfg"}}],
    }


class Objects:
    """A fake API: ConfigMaps and Secrets by name, and the reads made."""

    def __init__(self) -> None:
        self.configmaps = {"cfg": {"mode": "fast"}}
        self.secrets = {"creds": {"token": b"s3cret"}}
        self.reads: list[str] = []

    async def get(self, kind: type[Referenced], namespace: str, name: str) -> Referenced:
        self.reads.append(f"{kind.__name__}/{name}")
        obj = kind()
        obj.metadata.name, obj.metadata.namespace = name, namespace
        if isinstance(obj, core_pb2.ConfigMap) and name in self.configmaps:
            obj.data.update(self.configmaps[name])
        elif isinstance(obj, core_pb2.Secret) and name in self.secrets:
            obj.data.update(self.secrets[name])
        else:
            raise api_errors.NotFound(f"{name} not found")
        return obj


def test_downward_api_and_projected_on_disk(tmp_path: Path) -> None:
    pod = make_pod(_spec(), labels={"app": "web"})
    objects = Objects()
    mounter = FakeMounter()
    paths = prepare_volumes(
        pod,
        tmp_path,
        configmaps=objects.configmaps.get,
        secrets=objects.secrets.get,
        allocatable=ALLOCATABLE,
        mounter=mounter,
    )
    base = tmp_path / "pods" / "uid-7" / "volumes"
    info, every = Path(paths["info"]), Path(paths["all"])
    assert info == base / "kubernetes.io~downward-api" / "info"
    assert every == base / "kubernetes.io~projected" / "all"
    assert {m.path for m in mounter.mounts.values() if m.fstype == "tmpfs"} == {
        str(info),
        str(every),
    }
    assert (info / "labels").read_text() == 'app="web"' and (info / "mem").read_text() == "64"
    assert mode(info / "labels") == 0o644  # the downwardAPI volume's default
    assert (info / "labels").is_symlink() and (info / DATA_DIR).is_symlink()
    assert sorted(p.name for p in every.iterdir() if not p.name.startswith("..")) == [
        "labels",
        "mode",
        "secret",
    ]
    assert (every / "secret" / "token").read_bytes() == b"s3cret"
    assert (mode(every / "secret" / "token"), mode(every / "mode")) == (0o440, 0o644)
    assert (every / "labels").read_text() == 'app="web"'


def test_missing_projected_secret_fails_before_a_mount(tmp_path: Path) -> None:
    pod = make_pod(_spec())
    mounter = FakeMounter()
    with pytest.raises(VolumeError, match='secret "creds" not found \\(volume all\\)'):
        prepare_volumes(pod, tmp_path, configmaps={"cfg": {"mode": "x"}}.get, mounter=mounter)
    assert [m for m in mounter.mounts.values() if m.path.endswith("/all")] == []


def test_referenced_objects_include_projected_sources() -> None:
    pod = make_pod(_spec())
    assert referenced_objects(pod) == ({"cfg", "absent"}, {"creds"})
    # ... and so does the Node authorizer, which lets the kubelet read them.
    assert node_auth._referenced(pod, "secrets") == {"creds"}
    assert node_auth._referenced(pod, "configmaps") == {"cfg", "absent"}


async def test_refresh_follows_configmaps_and_labels(tmp_path: Path) -> None:
    objects = Objects()
    mounter = FakeMounter()
    manager = VolumeManager(str(tmp_path), objects.get, mounter=mounter, allocatable=ALLOCATABLE)
    pod = make_pod(_spec(), labels={"app": "web"})
    assert await manager.refresh(pod) == [] and objects.reads == []  # nothing set up yet
    inputs = await manager.prepare(pod)
    cfg = Path(inputs.volume_paths["cfg"])
    async with manager.container_mounts(pod, pod.spec.containers[0], inputs) as mounts:
        pin = mounter.mounts[str(manager.subpath_target("uid-7", "cfg", "app", 2))]
    # The subPath resolved through ..data to the version's own file: that inode is bound.
    assert Path(pin.source).parent == Path(cfg, os.readlink(cfg / DATA_DIR))
    assert all(m.read_only for m in mounts)  # API data: read-only whatever the volumeMount says
    objects.reads.clear()
    assert await manager.refresh(pod) == []  # nothing changed: nothing written
    assert sorted(objects.reads) == ["ConfigMap/absent", "ConfigMap/cfg", "Secret/creds"]

    objects.configmaps["cfg"] = {"mode": "slow", "extra": "1"}
    pod.metadata.labels["tier"] = "front"
    assert sorted(await manager.refresh(pod)) == ["all", "cfg", "info"]
    assert (cfg / "mode").read_text() == "slow" and (cfg / "extra").read_text() == "1"
    info = Path(inputs.volume_paths["info"])
    assert (info / "labels").read_text() == 'app="web"\ntier="front"'
    assert not Path(pin.source).exists()  # the old version is gone; a bind would keep its inode
    assert subpath.resolve(str(cfg), "mode")[1][-1] == "mode"

    del objects.configmaps["cfg"]  # required: the refresh fails, the files stay
    with pytest.raises(VolumeError, match='configmap "cfg" not found'):
        await manager.refresh(pod)
    assert (cfg / "mode").read_text() == "slow"
    await manager.cleanup("uid-7")
    assert mounter.mounts == {} and not (tmp_path / "pods" / "uid-7").exists()


async def test_hollow_node_checks_projected_content(tmp_path: Path) -> None:
    objects = Objects()
    manager = VolumeManager("", objects.get, on_disk=False)
    pod = make_pod(_spec())
    inputs = await manager.prepare(pod)
    assert isinstance(inputs, PodInputs) and inputs.volume_paths["all"].endswith(
        "kubernetes.io~projected/all"
    )
    assert await manager.refresh(pod) == []
    objects.configmaps["cfg"] = {"other": "x"}
    with pytest.raises(VolumeError, match="non-existent config key: mode"):
        await manager.prepare(pod)
    assert not (tmp_path / "pods").exists()
