"""Setting up a pod's volumes on the node (the SetUp of Kubernetes' volume plugins:
pkg/volume/{emptydir,hostpath,configmap,secret}, and volume_linux.go for fsGroup).

Every volume is a directory under the kubelet's root dir (Kubernetes' layout),
which the runtime bind-mounts into the containers:

    emptyDir   <root>/pods/<uid>/volumes/kubernetes.io~empty-dir/<name>/    mode 0777
    configMap  <root>/pods/<uid>/volumes/kubernetes.io~configmap/<name>/<key>
    secret     <root>/pods/<uid>/volumes/kubernetes.io~secret/<name>/<key>   on tmpfs
    hostPath   the path itself (created for DirectoryOrCreate / FileOrCreate)

Secure by default, as Kubernetes:

* a secret volume is a tmpfs of its own (mount.py), mounted before any key
  is written, so secret data lives in memory and never reaches the node's
  disk; an emptyDir with `medium: Memory` is a tmpfs too (size = its
  sizeLimit). Teardown (volume_manager.cleanup) unmounts them;
* configMap and secret files are 0644 unless the volume's defaultMode or an
  item's own mode says otherwise (items may also rename keys: `path`);
  both volumes are mounted read-only whatever the volumeMount says
  (cri_convert.container_mounts);
* fsGroup (SetVolumeOwnership): every file and directory of an emptyDir,
  configMap or secret volume is given the group fsGroup, read (configMap,
  secret) or read-write (emptyDir) for the group, and every directory the
  setgid bit, so files the containers create there inherit the group. An
  emptyDir whose root already has the group is left alone (Kubernetes'
  OnRootMismatch), since its files are the containers' own. hostPath
  volumes are never changed.

Worked example: fsGroup 2000 and a secret volume `creds` with defaultMode
0400 and a key `token`: `.../kubernetes.io~secret/creds` is a tmpfs, owned
root:2000 with mode 02755, and `token` is root:2000 mode 0440 -- readable by
a container running as uid 1000, which has 2000 among its groups
(security_context.pod_groups).

Idempotent: preparing again (each container start) rewrites the
configMap/secret files atomically (write a temporary file, rename it) and
leaves existing directories and mounts as they are. Errors are VolumeError
(reason FailedMount): an unknown volume type, a missing non-optional
configMap or secret, a hostPath of the wrong kind, a mount that fails.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from apimachinery import quantity
from kubelet.errors import VolumeError
from kubelet.mount import Mounter, SystemMounter
from protos import core_pb2

DEFAULT_FILE_MODE = 0o644
SECRET_DIR_MODE = "0755"
EMPTY_DIR_MODE = 0o777

# name -> data; None when the object does not exist.
Lookup = Callable[[str], Mapping[str, str | bytes] | None]


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


def write_files(
    target: Path,
    data: Mapping[str, str | bytes],
    items: Sequence[core_pb2.KeyToPath],
    default_mode: int | None,
) -> None:
    """Project keys to files (items select, rename and set modes), each replaced atomically."""
    target.mkdir(parents=True, exist_ok=True)
    fallback = DEFAULT_FILE_MODE if default_mode is None else default_mode
    if items:
        chosen = [(i.key, i.path, i.mode if i.HasField("mode") else fallback) for i in items]
    else:
        chosen = [(key, key, fallback) for key in data]
    for key, rel, mode in chosen:
        if key not in data:
            raise VolumeError(f"configuration key {key!r} not found")
        value = data[key]
        content = value.encode() if isinstance(value, str) else value
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(content)
        os.chmod(tmp, mode)
        tmp.replace(path)


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


def _source_data(
    lookup: Lookup | None,
    kind: str,
    name: str,
    volume: str,
    optional: bool,
) -> Mapping[str, str | bytes]:
    data = lookup(name) if lookup is not None else None
    if data is None and not optional:
        raise VolumeError(f'{kind} "{name}" not found (volume {volume})')
    return data or {}


def _mode(source: core_pb2.ConfigMapVolumeSource | core_pb2.SecretVolumeSource) -> int | None:
    return source.default_mode if source.HasField("default_mode") else None


def prepare_volumes(
    pod: core_pb2.Pod,
    root_dir: str | Path,
    *,
    configmaps: Lookup | None = None,
    secrets: Lookup | None = None,
    mounter: Mounter | None = None,
) -> dict[str, str]:
    """Set up every volume of the pod on the node; volume name -> host path. Idempotent."""
    mounter = mounter if mounter is not None else SystemMounter()
    base = pod_volumes_dir(root_dir, pod.metadata.uid)
    pod_sc = pod.spec.security_context
    fs_group = pod_sc.fs_group if pod_sc.HasField("fs_group") else None
    paths: dict[str, str] = {}
    for volume in pod.spec.volumes:
        if volume.HasField("empty_dir"):
            path = base / "kubernetes.io~empty-dir" / volume.name
            _empty_dir(path, volume.empty_dir, mounter)
            if fs_group is not None and not _root_owned(path, fs_group):
                set_volume_ownership(path, fs_group, read_only=False)
        elif volume.HasField("host_path"):
            paths[volume.name] = host_path(volume.host_path)
            continue
        elif volume.HasField("config_map"):
            src = volume.config_map
            path = base / "kubernetes.io~configmap" / volume.name
            data = _source_data(configmaps, "configmap", src.name, volume.name, src.optional)
            write_files(path, data, src.items, _mode(src))
        elif volume.HasField("secret"):
            sec = volume.secret
            path = base / "kubernetes.io~secret" / volume.name
            data = _source_data(secrets, "secret", sec.secret_name, volume.name, sec.optional)
            _tmpfs(path, mounter, f"mode={SECRET_DIR_MODE}")  # before a byte is written
            write_files(path, data, sec.items, _mode(sec))
        else:
            raise VolumeError(f"volume {volume.name!r} has an unsupported volume type")
        if fs_group is not None and not volume.HasField("empty_dir"):
            set_volume_ownership(path, fs_group, read_only=True)
        paths[volume.name] = str(path)
    return paths
