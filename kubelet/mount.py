"""Mounts the kubelet makes on the node itself, and a fake of them (Kubernetes' k8s.io/mount-utils).

Most mounts a pod sees are made by the runtime, inside the container's own
mount namespace, when the container starts: an emptyDir is a bind mount of
a directory under the kubelet's root dir, and nothing stays mounted on the
node once the container is gone. Two kinds are the kubelet's own, on the
node, and so must be undone by the kubelet:

* tmpfs, for every secret volume (so a secret never touches the node's
  disk) and for an emptyDir with `medium: Memory`; for a secret volume
  the equivalent command is

      mount -t tmpfs -o mode=0755 tmpfs <pod dir>/volumes/kubernetes.io~secret/<name>

* a bind mount pinning a subPath (subpath.py): the kubelet opens the
  subPath without following symlinks and binds the opened inode (its
  /proc/self/fd/N) to a path of its own, which the runtime then mounts:

      mount --bind /proc/<kubelet pid>/fd/N \
          <pod dir>/volume-subpaths/<volume>/<container>/<index>

Mounts are made with the mount(2) and umount2(2) system calls (through
libc), not the `mount` program, and read back from /proc/self/mountinfo.
Each is logged with its equivalent command, so a reader can replay it by
hand. Unmounting detaches (MNT_DETACH, `umount -l`): a mount still busy
goes once its last user does, and teardown never hangs on it.

`Mounter` is the interface (the volume code takes one), `SystemMounter` the
real thing (root only), and `FakeMounter` records mounts in memory for unit
tests and non-root runs: nothing is mounted, the directories stay plain
directories, and a bind remembers the path its source resolved to.

Failure modes: a mount that fails raises OSError with the errno (EPERM when
not root); callers turn it into VolumeError (FailedMount). Unmounting what
is not mounted is not an error (teardown is idempotent).
"""

from __future__ import annotations

import abc
import ctypes
import errno
import logging
import os
import re
from dataclasses import dataclass

log = logging.getLogger(__name__)

MS_BIND = 0x1000
MNT_DETACH = 0x2
MOUNTINFO = "/proc/self/mountinfo"
_OCTAL = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class MountPoint:
    """One line of mountinfo: where, what filesystem type, from what source."""

    path: str
    fstype: str
    source: str


def parse_mountinfo(text: str) -> list[MountPoint]:
    """/proc/self/mountinfo -> MountPoints, in mount order.

    A line is `36 35 98:0 /root /mnt rw,noatime shared:1 - ext4 /dev/vda rw`:
    the fifth field is the mount point (spaces escaped as \\040), and after
    the lone `-` come the type and the source.
    """
    out = []
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) < 10 or "-" not in fields[6:]:
            continue
        dash = fields.index("-", 6)
        path = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[4])
        out.append(MountPoint(path, fields[dash + 1], fields[dash + 2]))
    return out


def _within(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")


class Mounter(abc.ABC):
    """The mounts the kubelet makes on the node: tmpfs, bind, unmount, and what is mounted."""

    @abc.abstractmethod
    def mount_tmpfs(self, target: str, options: str = "") -> None:
        """Mount a fresh tmpfs at `target` (a directory); `options` as for mount -o."""

    @abc.abstractmethod
    def bind(self, source: str, target: str) -> None:
        """Bind-mount `source` (resolved by the kernel: /proc/self/fd/N works) at `target`."""

    @abc.abstractmethod
    def unmount(self, target: str) -> None:
        """Detach the mount at `target`; nothing mounted there is fine."""

    @abc.abstractmethod
    def mount_points(self) -> list[MountPoint]:
        """Everything mounted, in mount order."""

    def is_mount_point(self, path: str) -> bool:
        real = os.path.realpath(path)
        return any(m.path == real for m in self.mount_points())

    def mounts_under(self, base: str) -> list[str]:
        """The mount points at or below `base`, deepest first (the order to unmount them)."""
        real = os.path.realpath(base)
        found = {m.path for m in self.mount_points() if _within(m.path, real)}
        return sorted(found, key=lambda p: (-p.count("/"), p))


class SystemMounter(Mounter):
    """mount(2) / umount2(2) through libc, mountinfo from /proc: the node's real mounts."""

    def __init__(self) -> None:
        self._libc: ctypes.CDLL | None = None

    def _lib(self) -> ctypes.CDLL:
        if self._libc is None:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.mount.argtypes = [
                ctypes.c_char_p,
                ctypes.c_char_p,
                ctypes.c_char_p,
                ctypes.c_ulong,
                ctypes.c_char_p,
            ]
            libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
            self._libc = libc
        return self._libc

    def _mount(self, source: str, target: str, fstype: str, flags: int, data: str) -> None:
        rc = self._lib().mount(
            source.encode(), target.encode(), fstype.encode() or None, flags, data.encode() or None
        )
        if rc != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"mount {source} on {target}: {os.strerror(code)}", target)

    def mount_tmpfs(self, target: str, options: str = "") -> None:
        self._mount("tmpfs", target, "tmpfs", 0, options)
        flag = f"-o {options} " if options else ""
        log.info("mounted", extra={"command": f"mount -t tmpfs {flag}tmpfs {target}"})

    def bind(self, source: str, target: str) -> None:
        self._mount(source, target, "", MS_BIND, "")
        log.info("mounted", extra={"command": f"mount --bind {source} {target}"})

    def unmount(self, target: str) -> None:
        rc = self._lib().umount2(target.encode(), MNT_DETACH)
        if rc != 0:
            code = ctypes.get_errno()
            if code in (errno.EINVAL, errno.ENOENT):  # not a mount point, or gone
                return
            raise OSError(code, f"umount {target}: {os.strerror(code)}", target)
        log.info("unmounted", extra={"command": f"umount -l {target}"})

    def mount_points(self) -> list[MountPoint]:
        with open(MOUNTINFO, encoding="utf-8", errors="surrogateescape") as handle:
            return parse_mountinfo(handle.read())


class FakeMounter(Mounter):
    """Mounts in memory (Kubernetes' FakeMounter): for unit tests and non-root runs.

    `mounts` maps a target to its MountPoint; a bind's `source` is the path
    the given source resolved to when bound (a /proc/self/fd/N link is read),
    so a test can see which inode a subPath pinned.
    """

    def __init__(self) -> None:
        self.mounts: dict[str, MountPoint] = {}
        self.log: list[tuple[str, str]] = []  # (operation, target)

    def mount_tmpfs(self, target: str, options: str = "") -> None:
        real = os.path.realpath(target)
        self.mounts[real] = MountPoint(real, "tmpfs", "tmpfs")
        self.log.append(("tmpfs", real))

    def bind(self, source: str, target: str) -> None:
        resolved = os.readlink(source) if source.startswith("/proc/") else source
        real = os.path.realpath(target)
        self.mounts[real] = MountPoint(real, "bind", resolved)
        self.log.append(("bind", real))

    def unmount(self, target: str) -> None:
        real = os.path.realpath(target)
        if self.mounts.pop(real, None) is not None:
            self.log.append(("unmount", real))

    def mount_points(self) -> list[MountPoint]:
        return list(self.mounts.values())
