"""Setting up a pod's volumes on the node (the SetUp of Kubernetes' volume plugins:
pkg/volume/{emptydir,hostpath,configmap,secret,downwardapi,projected}, and
volume_linux.go for fsGroup).

Every volume is a directory under the kubelet's root dir (Kubernetes' layout),
which the runtime bind-mounts into the containers:

    emptyDir     <root>/pods/<uid>/volumes/kubernetes.io~empty-dir/<name>/     mode 0777
    configMap    <root>/pods/<uid>/volumes/kubernetes.io~configmap/<name>/
    secret       <root>/pods/<uid>/volumes/kubernetes.io~secret/<name>/        on tmpfs
    downwardAPI  <root>/pods/<uid>/volumes/kubernetes.io~downward-api/<name>/  on tmpfs
    projected    <root>/pods/<uid>/volumes/kubernetes.io~projected/<name>/     on tmpfs
    hostPath     the path itself (created for DirectoryOrCreate / FileOrCreate)

The last four are the API-data volumes: what they hold (their payload,
volume_projection.py) comes from API objects and the pod itself, and is
written by the AtomicWriter (atomic_writer.py): each version in a hidden
`..<time>` directory, `..data` pointing at the current one, every file a
symlink through it. So they can change under running containers --
`update_volumes` rewrites them when the kubelet resyncs a pod (a ConfigMap
edited, a label changed) and a reader sees the old files or the new ones,
never a mixture. A payload equal to what is there writes nothing.

Secure by default, as Kubernetes:

* secret, downwardAPI and projected volumes are each a tmpfs of their own
  (mount.py), mounted before any file is written, so secret data lives in
  memory and never reaches the node's disk; an emptyDir with `medium:
  Memory` is a tmpfs too (size = its sizeLimit). Teardown
  (volume_manager.cleanup) unmounts them;
* files are 0644 unless the volume's defaultMode or an item's own mode
  says otherwise (items may also rename keys: `path`); the API-data volumes
  are mounted read-only whatever the volumeMount says
  (cri_convert.container_mounts, volume_manager.container_mounts);
* fsGroup (SetVolumeOwnership): every file and directory of an emptyDir or
  API-data volume is given the group fsGroup, read (API data) or read-write
  (emptyDir) for the group, and every directory the setgid bit, so files the
  containers create there inherit the group. A new version of an API-data
  volume gets it before `..data` points at it. An emptyDir whose root
  already has the group is left alone (Kubernetes' OnRootMismatch), since
  its files are the containers' own. hostPath volumes are never changed.

Worked example: fsGroup 2000 and a secret volume `creds` with defaultMode
0400 and a key `token`: `.../kubernetes.io~secret/creds` is a tmpfs, owned
root:2000 with mode 02755, and `token` (a link to `..data/token`) is
root:2000 mode 0440 -- readable by a container running as uid 1000, which
has 2000 among its groups (security_context.pod_groups).

Idempotent: preparing again (each container start) rewrites what changed
and leaves existing directories and mounts as they are. Errors are
VolumeError (reason FailedMount): an unknown volume type, a missing
non-optional configMap or secret or key, a bad downwardAPI field, a
hostPath of the wrong kind, a mount that fails.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from apimachinery import quantity
from kubelet.atomic_writer import AtomicWriter, FileProjection
from kubelet.errors import VolumeError
from kubelet.mount import Mounter, SystemMounter
from kubelet.volume_projection import (
    DEFAULT_FILE_MODE,
    Lookup,
    downward_api_payload,
    key_payload,
    projected_payload,
    source_data,
)
from protos import core_pb2

TMPFS_DIR_MODE = "0755"
EMPTY_DIR_MODE = 0o777

# A volume's source field -> its plugin's directory (Kubernetes' escaped plugin names).
VolumeKind = Literal["empty_dir", "config_map", "secret", "downward_api", "projected"]
PLUGIN_DIRS: dict[VolumeKind, str] = {
    "empty_dir": "kubernetes.io~empty-dir",
    "config_map": "kubernetes.io~configmap",
    "secret": "kubernetes.io~secret",
    "downward_api": "kubernetes.io~downward-api",
    "projected": "kubernetes.io~projected",
}
# Written by the AtomicWriter, mounted read-only; and those of them kept in memory.
ATOMIC = ("config_map", "secret", "downward_api", "projected")
ON_TMPFS = ("secret", "downward_api", "projected")


def pod_volumes_dir(root_dir: str | Path, pod_uid: str) -> Path:
    return Path(root_dir) / "pods" / pod_uid / "volumes"


# ---- fsGroup ---------------------------------------------------------------------------------


def _give_group(path: str, fs_group: int, read_only: bool) -> None:
    st = os.lstat(path)
    os.lchown(path, -1, fs_group)
    if stat.S_ISLNK(st.st_mode):
        return  # a symlink's own mode means nothing; never chmod through it
    mask = 0o440 if read_only else 0o660
    if stat.S_ISDIR(st.st_mode):
        mask |= stat.S_ISGID | 0o110
    os.chmod(path, stat.S_IMODE(st.st_mode) | mask)


def set_volume_ownership(root: str | Path, fs_group: int, *, read_only: bool) -> None:
    """SetVolumeOwnership: group fsGroup and the group bits on everything below `root`."""
    _give_group(str(root), fs_group, read_only)
    for parent, dirs, files in os.walk(root):  # never descends into a symlink
        for name in (*dirs, *files):
            _give_group(os.path.join(parent, name), fs_group, read_only)


def _root_owned(root: Path, fs_group: int) -> bool:
    st = os.stat(root)
    return st.st_gid == fs_group and bool(st.st_mode & stat.S_ISGID)


# ---- the volume types ------------------------------------------------------------------------


def _tmpfs(path: Path, mounter: Mounter, options: str) -> None:
    """A tmpfs at `path` unless one is there; whatever an older setup left on disk goes."""
    path.mkdir(parents=True, exist_ok=True)
    if mounter.is_mount_point(str(path)):
        return
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    try:
        mounter.mount_tmpfs(str(path), options)
    except OSError as err:
        raise VolumeError(f"mount tmpfs on {path} failed: {err.strerror}") from None


def _empty_dir(path: Path, source: core_pb2.EmptyDirVolumeSource, mounter: Mounter) -> None:
    if source.medium == "Memory":
        size = quantity.value(source.size_limit) if source.size_limit else 0
        _tmpfs(path, mounter, f"size={size}" if size else "")
    elif source.medium:
        raise VolumeError(f"emptyDir medium {source.medium!r} is not supported")
    path.mkdir(parents=True, exist_ok=True)
    current = stat.S_IMODE(path.stat().st_mode)
    if current & 0o777 != EMPTY_DIR_MODE:  # keep the setgid bit fsGroup may have set
        path.chmod(EMPTY_DIR_MODE | (current & ~0o777))


def host_path(source: core_pb2.HostPathVolumeSource) -> str:
    """The hostPath, checked (or created) per its type."""
    path = Path(source.path)
    kind = source.type
    if kind == "DirectoryOrCreate":
        path.mkdir(parents=True, exist_ok=True, mode=0o755)
    elif kind == "FileOrCreate":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
    elif kind == "Directory" and not path.is_dir():
        raise VolumeError(f"hostPath type check failed: {path} is not a directory")
    elif kind == "File" and not path.is_file():
        raise VolumeError(f"hostPath type check failed: {path} is not a file")
    elif kind == "Socket" and not path.is_socket():
        raise VolumeError(f"hostPath type check failed: {path} is not a socket")
    return str(path)


# ---- configMap, secret, downwardAPI, projected: written atomically ---------------------------


@dataclass(frozen=True)
class Sources:
    """What the atomic volumes are made of, besides the pod: objects' data, allocatable."""

    configmaps: Lookup | None = None
    secrets: Lookup | None = None
    allocatable: Mapping[str, str] = field(default_factory=dict)


def volume_kind(volume: core_pb2.Volume) -> str:
    """The volume's source field (`config_map`, `projected`, ...); "" if it names none."""
    for kind in PLUGIN_DIRS:
        if volume.HasField(kind):
            return kind
    return "host_path" if volume.HasField("host_path") else ""


def volume_dir(root_dir: str | Path, pod_uid: str, volume: core_pb2.Volume) -> Path | None:
    """Where the volume lives under the pod's directory (None for hostPath or no source)."""
    kind = volume_kind(volume)
    if kind not in PLUGIN_DIRS:
        return None
    return pod_volumes_dir(root_dir, pod_uid) / PLUGIN_DIRS[kind] / volume.name


def _default_mode(
    source: core_pb2.ConfigMapVolumeSource
    | core_pb2.SecretVolumeSource
    | core_pb2.DownwardAPIVolumeSource,
) -> int:
    return source.default_mode if source.HasField("default_mode") else DEFAULT_FILE_MODE


def volume_payload(
    pod: core_pb2.Pod, volume: core_pb2.Volume, sources: Sources
) -> dict[str, FileProjection]:
    """The files an atomic volume holds now (volume_projection.py); VolumeError if it can't."""
    kind = volume_kind(volume)
    if kind == "config_map":
        cm = volume.config_map
        data = source_data(sources.configmaps, "configmap", cm.name, volume.name, cm.optional)
        return key_payload("configmap", data, cm.items, _default_mode(cm), cm.optional)
    if kind == "secret":
        sec = volume.secret
        name = sec.secret_name
        data = source_data(sources.secrets, "secret", name, volume.name, sec.optional)
        return key_payload("secret", data, sec.items, _default_mode(sec), sec.optional)
    if kind == "downward_api":
        source = volume.downward_api
        mode = _default_mode(source)
        return downward_api_payload(pod, source.items, mode, sources.allocatable)
    if kind == "projected":
        return projected_payload(
            pod, volume, sources.configmaps, sources.secrets, sources.allocatable
        )
    raise VolumeError(
        f"volume {volume.name!r} is not a configMap, secret, downwardAPI or projected"
    )


def _write_atomic(
    pod: core_pb2.Pod,
    volume: core_pb2.Volume,
    path: Path,
    sources: Sources,
    mounter: Mounter,
    fs_group: int | None,
) -> bool:
    """Compute the payload, then (tmpfs first where due) write it; True if it changed."""
    payload = volume_payload(pod, volume, sources)  # a missing object fails before any mount
    if volume_kind(volume) in ON_TMPFS:
        _tmpfs(path, mounter, f"mode={TMPFS_DIR_MODE}")  # before a byte is written
    path.mkdir(parents=True, exist_ok=True)
    set_perms = None
    if fs_group is not None:
        set_perms = functools.partial(set_volume_ownership, fs_group=fs_group, read_only=True)
    written = AtomicWriter(path, volume.name).write(payload, set_perms)
    if fs_group is not None:
        _give_group(str(path), fs_group, read_only=True)
    return written


def _fs_group(pod: core_pb2.Pod) -> int | None:
    pod_sc = pod.spec.security_context
    return pod_sc.fs_group if pod_sc.HasField("fs_group") else None


def prepare_volumes(
    pod: core_pb2.Pod,
    root_dir: str | Path,
    *,
    configmaps: Lookup | None = None,
    secrets: Lookup | None = None,
    allocatable: Mapping[str, str] | None = None,
    mounter: Mounter | None = None,
) -> dict[str, str]:
    """Set up every volume of the pod on the node; volume name -> host path. Idempotent."""
    mounter = mounter if mounter is not None else SystemMounter()
    sources = Sources(configmaps, secrets, dict(allocatable or {}))
    fs_group = _fs_group(pod)
    paths: dict[str, str] = {}
    for volume in pod.spec.volumes:
        kind = volume_kind(volume)
        path = volume_dir(root_dir, pod.metadata.uid, volume)
        if kind == "host_path":
            paths[volume.name] = host_path(volume.host_path)
            continue
        if path is None:
            raise VolumeError(f"volume {volume.name!r} has an unsupported volume type")
        if kind == "empty_dir":
            _empty_dir(path, volume.empty_dir, mounter)
            if fs_group is not None and not _root_owned(path, fs_group):
                set_volume_ownership(path, fs_group, read_only=False)
        else:
            _write_atomic(pod, volume, path, sources, mounter, fs_group)
        paths[volume.name] = str(path)
    return paths


def update_volumes(
    pod: core_pb2.Pod,
    root_dir: str | Path,
    *,
    configmaps: Lookup | None = None,
    secrets: Lookup | None = None,
    allocatable: Mapping[str, str] | None = None,
    mounter: Mounter | None = None,
) -> list[str]:
    """Rewrite the atomic volumes already set up (a running pod's); the names that changed.

    A volume not on disk yet is left to prepare_volumes (the pod's next
    container start). Each volume is tried even if another fails; the first
    failure is raised at the end, the volumes written stay written.
    """
    mounter = mounter if mounter is not None else SystemMounter()
    sources = Sources(configmaps, secrets, dict(allocatable or {}))
    changed: list[str] = []
    failures: list[VolumeError] = []
    for volume in pod.spec.volumes:
        path = volume_dir(root_dir, pod.metadata.uid, volume)
        if volume_kind(volume) not in ATOMIC or path is None or not path.is_dir():
            continue
        try:
            if _write_atomic(pod, volume, path, sources, mounter, _fs_group(pod)):
                changed.append(volume.name)
        except VolumeError as err:
            failures.append(err)
    if failures:
        raise failures[0]
    return changed
