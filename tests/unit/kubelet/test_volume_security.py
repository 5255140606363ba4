"""Volumes secure by default: secrets on tmpfs, file modes, fsGroup, safe subPaths, teardown.

Mounts go through FakeMounter (kubelet/mount.py), so these run without root;
the files and directories are real, under pytest's tmp_path.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from apimachinery import codec
from apimachinery.client import Client
from kubelet import subpath
from kubelet.errors import SubPathError, VolumeError
from kubelet.mount import FakeMounter, MountPoint, parse_mountinfo
from kubelet.runtime.cri_convert import container_mounts
from kubelet.runtime.fake import FakeRuntime
from kubelet.runtime.interface import Mount
from kubelet.volume_manager import PodInputs, VolumeManager
from kubelet.volume_plugins import prepare_volumes
from protos import core_pb2
from tests.unit.kubelet.conftest import Harness

# Root may hand any group out; anyone else only one of their own.
FS_GROUP = 2000 if os.geteuid() == 0 else os.getgid()
SECRETS = {"creds": {"token": b"s3cret", "user": b"admin"}}


def make_pod(spec: dict[str, Any]) -> core_pb2.Pod:
    obj = codec.from_dict(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}
    )
    assert isinstance(obj, core_pb2.Pod)
    obj.metadata.namespace, obj.metadata.uid = "default", "uid-1"
    return obj


def mode(path: Path) -> int:
    """The permission bits of what `path` names (through the atomic writer's symlinks)."""
    return stat.S_IMODE(path.stat().st_mode)


# ---- mountinfo ---------------------------------------------------------------------------------


def test_parse_mountinfo_and_mounts_under(tmp_path: Path) -> None:
    text = (
        "22 1 0:21 / / rw shared:1 - ext4 /dev/vda rw\n"
        "40 22 0:40 / /var/lib/kubelet/pods/u/volumes/kubernetes.io~secret/my\\040creds rw "
        "- tmpfs tmpfs rw,mode=755\n"
        "41 22 0:41 / /mnt/x rw shared:2 master:1 - nfs srv:/x rw\n"
    )
    points = parse_mountinfo(text)
    assert points[1] == MountPoint(
        "/var/lib/kubelet/pods/u/volumes/kubernetes.io~secret/my creds", "tmpfs", "tmpfs"
    )
    assert points[2].fstype == "nfs"
    mounter = FakeMounter()
    for rel in ("pods/u/a", "pods/u/a/b", "pods/v"):
        (tmp_path / rel).mkdir(parents=True)
        mounter.mount_tmpfs(str(tmp_path / rel))
    assert mounter.mounts_under(str(tmp_path / "pods/u")) == [
        str(tmp_path / "pods/u/a/b"),  # deepest first: the order to unmount in
        str(tmp_path / "pods/u/a"),
    ]
    assert mounter.is_mount_point(str(tmp_path / "pods/v"))


# ---- secrets, configMaps, modes ----------------------------------------------------------------


def test_secret_volume_is_a_tmpfs_mounted_before_its_files(tmp_path: Path) -> None:
    pod = make_pod(
        {
            "containers": [{"name": "app", "image": "i"}],
            "volumes": [
                {"name": "all", "secret": {"secretName": "creds"}},
                {
                    "name": "picked",
                    "secret": {
                        "secretName": "creds",
                        "defaultMode": 0o400,
                        "items": [
                            {"key": "token", "path": "t"},
                            {"key": "user", "path": "u", "mode": 0o600},
                        ],
                    },
                },
            ],
        }
    )
    base = tmp_path / "pods/uid-1/volumes/kubernetes.io~secret"
    (base / "all").mkdir(parents=True)
    (base / "all" / "stale").write_text("left on disk by an older kubelet")
    mounter = FakeMounter()
    paths = prepare_volumes(pod, tmp_path, secrets=SECRETS.get, mounter=mounter)
    assert paths["all"] == str(base / "all")
    assert mounter.mounts[str(base / "all")].fstype == "tmpfs"
    assert ("tmpfs", str(base / "picked")) in mounter.log
    assert not (base / "all" / "stale").exists()  # cleared before the tmpfs went on
    assert mode(base / "all" / "token") == 0o644
    assert (mode(base / "picked" / "t"), mode(base / "picked" / "u")) == (0o400, 0o600)
    prepare_volumes(pod, tmp_path, secrets=SECRETS.get, mounter=mounter)  # idempotent
    assert [op for op, _ in mounter.log] == ["tmpfs", "tmpfs"]


def test_a_missing_secret_is_refused_before_anything_is_mounted(tmp_path: Path) -> None:
    pod = make_pod({"containers": [], "volumes": [{"name": "s", "secret": {"secretName": "nope"}}]})
    mounter = FakeMounter()
    with pytest.raises(VolumeError, match='secret "nope" not found'):
        prepare_volumes(pod, tmp_path, secrets=SECRETS.get, mounter=mounter)
    assert mounter.log == []


def test_memory_empty_dir_is_a_sized_tmpfs(tmp_path: Path) -> None:
    pod = make_pod(
        {
            "containers": [],
            "volumes": [{"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}],
        }
    )

    class Recording(FakeMounter):
        options: str = ""

        def mount_tmpfs(self, target: str, options: str = "") -> None:
            self.options = options
            super().mount_tmpfs(target, options)

    mounter = Recording()
    path = Path(prepare_volumes(pod, tmp_path, mounter=mounter)["cache"])
    assert mounter.options == "size=67108864"
    assert mode(path) == 0o777
    pod.spec.volumes[0].empty_dir.medium = "HugePages"
    with pytest.raises(VolumeError, match="HugePages"):
        prepare_volumes(pod, tmp_path, mounter=mounter)


# ---- fsGroup -----------------------------------------------------------------------------------


def test_fs_group_owns_empty_dir_config_map_and_secret(tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir(mode=0o755)
    pod = make_pod(
        {
            "securityContext": {"fsGroup": FS_GROUP},
            "containers": [],
            "volumes": [
                {"name": "scratch", "emptyDir": {}},
                {
                    "name": "conf",
                    "configMap": {
                        "name": "settings",
                        "items": [{"key": "mode", "path": "sub/mode"}],
                    },
                },
                {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}},
                {"name": "host", "hostPath": {"path": str(host)}},
            ],
        }
    )
    root = tmp_path / "kubelet"
    settings = {"settings": {"mode": "fast"}}
    paths = {
        k: Path(v)
        for k, v in prepare_volumes(
            pod, root, configmaps=settings.get, secrets=SECRETS.get, mounter=FakeMounter()
        ).items()
    }
    scratch = paths["scratch"]
    assert scratch.stat().st_gid == FS_GROUP
    assert mode(scratch) == 0o777 | stat.S_ISGID
    conf = paths["conf"]
    assert (conf / "sub").stat().st_gid == FS_GROUP and mode(conf / "sub") & stat.S_ISGID
    assert (conf / "sub" / "mode").stat().st_gid == FS_GROUP
    assert mode(conf / "sub" / "mode") == 0o644  # read for the group: already
    assert mode(paths["creds"] / "token") == 0o440  # 0400 + group read
    assert mode(host) == 0o755 and not host.stat().st_mode & stat.S_ISGID  # never changed
    # An emptyDir already owned is left alone: its files are the containers' (OnRootMismatch).
    mine = scratch / "mine"
    mine.write_text("x")
    os.chmod(mine, 0o600)
    prepare_volumes(pod, root, configmaps=settings.get, secrets=SECRETS.get, mounter=FakeMounter())
    assert mode(mine) == 0o600


# ---- subPath -----------------------------------------------------------------------------------


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    root = tmp_path / "volume"
    (root / "inner").mkdir(parents=True)
    (root / "inner" / "file").write_text("inside")
    (root / "alias").symlink_to("inner")  # a symlink inside the volume: fine
    root.chmod(0o777)
    return root


def test_subpath_inside_the_volume_is_pinned(volume: Path, tmp_path: Path) -> None:
    mounter = FakeMounter()
    target = tmp_path / "pins" / "0"
    assert subpath.pin(str(volume), "alias", str(target), mounter) == str(target)
    assert mounter.mounts[str(target)].source == str(volume / "inner")
    assert target.is_dir()
    file_target = tmp_path / "pins" / "1"
    subpath.pin(str(volume), "inner/file", str(file_target), mounter)
    assert file_target.is_file() and mounter.mounts[str(file_target)].source == str(
        volume / "inner" / "file"
    )
    os.umask(0o022)
    subpath.pin(str(volume), "made/here", str(tmp_path / "pins" / "2"), mounter)
    assert mode(volume / "made") == 0o777 and mode(volume / "made" / "here") == 0o777


@pytest.mark.parametrize("link", ["{outside}", "../../../../../../..{outside}", "/"])
def test_subpath_symlink_out_of_the_volume_is_refused(
    volume: Path, tmp_path: Path, link: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (volume / "escape").symlink_to(link.format(outside=outside))
    mounter = FakeMounter()
    with pytest.raises(SubPathError, match="not within volume path"):
        subpath.pin(str(volume), "escape/made-by-kubelet", str(tmp_path / "pin"), mounter)
    assert list(outside.iterdir()) == [] and mounter.mounts == {}


def test_subpath_bad_shapes(volume: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for bad, match in (
        ("/etc", "relative"),
        ("a/../../b", r"'\.\.'"),
        ("inner/file/x", "not a directory"),
    ):
        with pytest.raises(SubPathError, match=match):
            subpath.safe_open(str(volume), bad)
    # A symlink swapped in between resolving and opening is caught by the walk.
    monkeypatch.setattr(subpath, "resolve", lambda v, s: (str(volume), ["alias"]))
    with pytest.raises(SubPathError, match="symlink"):
        subpath.safe_open(str(volume), "alias")


# ---- the volume manager ------------------------------------------------------------------------


def _subpath_pod(volume: Path) -> core_pb2.Pod:
    return make_pod(
        {
            "containers": [
                {
                    "name": "app",
                    "image": "i",
                    "volumeMounts": [
                        {"name": "data", "mountPath": "/d", "subPath": "inner"},
                        {"name": "creds", "mountPath": "/c"},
                        {"name": "data", "mountPath": "/x", "subPath": "escape"},
                    ],
                }
            ],
            "volumes": [
                {"name": "data", "hostPath": {"path": str(volume)}},
                {"name": "creds", "secret": {"secretName": "creds"}},
            ],
        }
    )


async def test_container_mounts_pin_for_the_block_only(volume: Path, tmp_path: Path) -> None:
    mounter = FakeMounter()
    manager = VolumeManager(str(tmp_path / "kubelet"), mounter=mounter)
    pod = _subpath_pod(volume)
    del pod.spec.containers[0].volume_mounts[2]
    inputs = PodInputs(volume_paths={"data": str(volume), "creds": "/k/creds"})
    async with manager.container_mounts(pod, pod.spec.containers[0], inputs) as mounts:
        pin = manager.subpath_target("uid-1", "data", "app", 0)
        assert mounts == (Mount("/d", str(pin), False), Mount("/c", "/k/creds", True))
        assert mounter.mounts[str(pin)].source == str(volume / "inner")
    assert mounter.mounts == {}  # detached once the container has started


async def test_container_mounts_refuse_with_kubernetes_words(volume: Path, tmp_path: Path) -> None:
    (volume / "escape").symlink_to("/etc")
    mounter = FakeMounter()
    manager = VolumeManager(str(tmp_path / "kubelet"), mounter=mounter)
    pod = _subpath_pod(volume)
    inputs = PodInputs(volume_paths={"data": str(volume), "creds": "/k/creds"})
    with pytest.raises(SubPathError) as caught:
        async with manager.container_mounts(pod, pod.spec.containers[0], inputs):
            pass
    assert (
        str(caught.value) == 'failed to prepare subPath for volumeMount "data" of container "app"'
    )
    assert caught.value.reason == "CreateContainerConfigError"
    assert mounter.mounts == {}  # the first pin was undone too


def test_hollow_node_mounts_join_lexically() -> None:
    pod = _subpath_pod(Path("/nowhere"))
    mounts = container_mounts(pod, pod.spec.containers[0], {"data": "/v", "creds": "/s"})
    assert mounts == (
        Mount("/d", "/v/inner", False),
        Mount("/c", "/s", True),  # a secret volume is always read-only
        Mount("/x", "/v/escape", False),
    )


async def test_cleanup_unmounts_then_removes(tmp_path: Path) -> None:
    mounter = FakeMounter()
    manager = VolumeManager(str(tmp_path), mounter=mounter)
    secret = manager.pod_dir("u1") / "volumes" / "kubernetes.io~secret" / "s"
    secret.mkdir(parents=True)
    mounter.mount_tmpfs(str(secret))
    assert manager.pod_uids_on_disk() == {"u1"}
    await manager.cleanup("u1")
    assert ("unmount", str(secret)) in mounter.log
    assert not manager.pod_dir("u1").exists()

    class Stuck(FakeMounter):
        def unmount(self, target: str) -> None:
            self.log.append(("unmount", target))  # ...but it stays mounted

    stuck = Stuck()
    manager = VolumeManager(str(tmp_path), mounter=stuck)
    secret.mkdir(parents=True)
    stuck.mount_tmpfs(str(secret))
    with pytest.raises(VolumeError, match="still mounted"):
        await manager.cleanup("u1")
    assert secret.exists()  # never deleted through a mount


async def test_housekeeping_removes_orphaned_pod_directories(
    client: Client, harness: Harness, tmp_path: Path
) -> None:
    kubelet, _ = await harness.start("node1", FakeRuntime())
    mounter = FakeMounter()
    volumes = VolumeManager(str(tmp_path), mounter=mounter)
    kubelet.runtime_manager.volumes = volumes  # a node whose volumes are on disk
    secret = volumes.pod_dir("gone") / "volumes" / "kubernetes.io~secret" / "s"
    secret.mkdir(parents=True)
    mounter.mount_tmpfs(str(secret))
    await kubelet.housekeeping()
    assert not volumes.pod_dir("gone").exists()  # no pod, no sandbox: deleted while away
    assert mounter.mounts == {}
