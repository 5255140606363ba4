"""Using a volumeMount's subPath safely: never following a symlink out of the volume
(Kubernetes' pkg/volume/util/subpath/subpath_linux.go, the fix of CVE-2017-1002101).

`subPath: logs` mounts one directory of a volume instead of all of it. The
host path is the volume's directory joined with the subPath -- but a volume
is writable by the pod's containers, and any of them can replace `logs`
with a symlink to `/` or `/etc`. The kubelet and the runtime run as root on
the node, so naively joining and mounting (or creating the missing
directories) would follow that symlink *on the node*: the container would
get the node's /etc, or the kubelet would create directories anywhere.
API validation (no absolute subPath, no `..`) cannot help: the danger is on
disk, and it can be planted after the pod was admitted, by another
container of the same pod, between two restarts. So the check is made each
time a container is created, in three steps:

1. resolve: os.path.realpath(volume + subPath), following every symlink as
   the node would, must stay within the volume's own real path; otherwise
   refuse (symlinks *inside* the volume are fine, as in Kubernetes);
2. walk: from an fd of the volume's root, open each component of the
   resolved path with openat(O_PATH | O_NOFOLLOW), creating a missing
   directory with mkdirat on the fd of its parent. A symlink met here was
   planted between steps 1 and 2: refuse. Nothing is created anywhere but
   inside the volume;
3. pin: bind-mount the opened inode (/proc/self/fd/N) at a path of the
   kubelet's own, `<pod dir>/volume-subpaths/<volume>/<container>/<index>`,
   and give the runtime that path. No container can write there, so the
   runtime mounts exactly the inode checked in step 2 even if the volume
   changes meanwhile.

The pin lives only while the container is created and started (the
runtime makes its own bind mount into the container when it starts it);
the volume manager detaches it right after, so nothing stays mounted on
the node -- a small liberty: Kubernetes keeps the pins until the pod's
volumes are torn down.

Worked example: an init container runs `ln -s /etc /data/escape` in an
emptyDir mounted at /data; the app container asks for `subPath:
escape/app`. Step 1 resolves `<pod dir>/volumes/kubernetes.io~empty-dir/data/escape/app`
to `/etc/app`, not within the volume: refused, /etc/app is not created,
and the container waits with CreateContainerConfigError and Kubernetes'
deliberately vague message (the node's paths are not the pod's business):
`failed to prepare subPath for volumeMount "data" of container "app"`.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from kubelet.errors import SubPathError
from kubelet.mount import Mounter

_OPEN = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


def within(path: str, base: str) -> bool:
    """mount-utils' PathWithinBase, on resolved paths: `path` is `base` or below it."""
    return path == base or path.startswith(base.rstrip("/") + "/")


def check_relative(sub_path: str) -> list[str]:
    """The subPath's components; an absolute path or a `..` is refused."""
    if sub_path.startswith("/"):
        raise SubPathError(f"subPath {sub_path!r} must be a relative path")
    parts = [p for p in sub_path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise SubPathError(f"subPath {sub_path!r} must not contain '..'")
    return parts


def resolve(volume_path: str, sub_path: str) -> tuple[str, list[str]]:
    """Step 1: the volume's real root and the resolved subPath's components below it."""
    parts = check_relative(sub_path)
    base = os.path.realpath(volume_path)
    full = os.path.realpath(os.path.join(base, *parts))
    if not within(full, base):
        raise SubPathError(f"subpath {full!r} not within volume path {base!r}")
    rest = os.path.relpath(full, base)
    return base, [] if rest == "." else rest.split("/")


def _open_child(parent: int, name: str, create: bool, mode: int) -> int:
    try:
        return os.open(name, _OPEN, dir_fd=parent)
    except FileNotFoundError:
        if not create:
            raise
    try:
        os.mkdir(name, mode, dir_fd=parent)
    except FileExistsError:  # made meanwhile: the open below checks what it is
        return os.open(name, _OPEN, dir_fd=parent)
    # The umask took bits off: give the new directory its volume's mode (an
    # emptyDir's 0777, so a non-root container can write there too).
    made = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    try:
        os.fchmod(made, mode)
    finally:
        os.close(made)
    return os.open(name, _OPEN, dir_fd=parent)


def safe_open(volume_path: str, sub_path: str, *, create: bool = True) -> int:
    """Steps 1 and 2: an O_PATH fd of the subPath, opened without following any symlink.

    Missing directories are created (mode of the volume's root) when `create`.
    The caller closes the fd.
    """
    base, parts = resolve(volume_path, sub_path)
    fd = os.open(base, _OPEN | os.O_DIRECTORY)
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        for index, name in enumerate(parts):
            try:
                child = _open_child(fd, name, create, mode)
            except OSError as err:
                where = os.path.join(base, *parts[: index + 1])
                if err.errno == errno.ENOTDIR:
                    raise SubPathError(f"{where}: a parent is not a directory") from None
                raise SubPathError(f"cannot open {where}: {err.strerror}") from None
            os.close(fd)
            fd = child
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                where = os.path.join(base, *parts[: index + 1])
                raise SubPathError(f"{where} became a symlink while being opened")
        return fd
    except BaseException:
        os.close(fd)
        raise


def pin(volume_path: str, sub_path: str, target: str, mounter: Mounter) -> str:
    """All three steps: `target` then holds the checked inode; returns `target`.

    A pin left at `target` by an earlier attempt is detached first, so every
    creation checks afresh.
    """
    fd = safe_open(volume_path, sub_path)
    try:
        is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
        mounter.unmount(target)
        place = Path(target)
        place.parent.mkdir(parents=True, exist_ok=True)
        if place.is_dir() and not is_dir:  # the subPath changed kind since the last pin
            place.rmdir()
        elif place.exists() and not place.is_dir() and is_dir:
            place.unlink()
        if is_dir:
            place.mkdir(exist_ok=True)
        elif not place.exists():
            place.touch()
        try:
            mounter.bind(f"/proc/self/fd/{fd}", target)
        except OSError as err:
            raise SubPathError(f"cannot bind {sub_path!r} at {target}: {err.strerror}") from None
        return target
    finally:
        os.close(fd)
