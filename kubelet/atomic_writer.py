"""Writing a volume's files so that a running container never sees half an update
(Kubernetes' pkg/volume/util/atomic_writer.go).

A configMap, secret, downwardAPI or projected volume is a directory on the
node that the runtime bind-mounts into the containers, and the kubelet
rewrites it while they run: a ConfigMap was edited, a label of the pod
changed. A program in the container may read several files of it at any
moment (a certificate and its key, say). Rewriting the files one by one in
place would let it read a new certificate with the old key; even one file
rewritten in place can be read half-written. So the files are never
rewritten: each version of the whole payload goes to a fresh hidden
directory, and one rename makes it current. The layout, for a ConfigMap
with the keys `app.conf` and `tls/cert` (an item path with a directory):

    <volume>/..2024_05_01_10_00_00.123456789/app.conf     the data, with its mode
    <volume>/..2024_05_01_10_00_00.123456789/tls/cert
    <volume>/..data -> ..2024_05_01_10_00_00.123456789    the current version
    <volume>/app.conf -> ..data/app.conf                  what the user sees
    <volume>/tls -> ..data/tls

Every user-visible name is a symlink through `..data`, so `..data` is the
one thing that changes, and rename(2) replaces it atomically: a reader
resolving `app.conf` gets the old version or the new one, never a mixture.
The links are relative, so they resolve the same inside a container, where
the volume sits at another path.

`AtomicWriter(dir).write(payload)` in steps (Kubernetes' numbering, shortened):

1. check every path (relative, no `..`, none below another's file) and read
   `..data` to find the current version;
2. if the current version holds exactly these files with these contents,
   stop: a resync that finds nothing new writes nothing (the modes come
   from the pod spec, which cannot change, so contents decide);
3. write the payload into a new `..<UTC time>.<nanoseconds>` directory
   (mode 0755; each file its own mode), and let `set_perms` (fsGroup) adjust
   it while no container can see it yet;
4. make the symlink `..data_tmp -> ..<new>` and rename it over `..data`:
   the switch;
5. create the user-visible links the new payload needs (a plain file or
   directory in their place, left by an older layout, is replaced);
6. remove the user-visible names the new payload no longer has, then every
   older `..<time>` directory (the previous version, or one a crash left).

Failure modes. A crash before step 4 leaves an unused directory (removed by
the next write) and the old version in place; after step 4 the new version
is already what containers see, and the next write finishes the tidying. A
bad path is a VolumeError before anything is written.

One window remains, as in Kubernetes: a reader that resolved `..data` to
the old version just before the switch may find that version removed when
it opens the file (ENOENT); opening again resolves `..data` afresh and
gets the new version. Keeping old versions around would close it, but
would also keep a rotated secret readable in the volume for longer.

A subPath mount of such a volume behaves differently, as in Kubernetes: the
subPath is resolved (subpath.py) through the symlinks to the file inside
the version directory current at the container's start, and that inode is
bind-mounted. Later versions replace `..data`, not that inode, so the
container keeps the old content until it restarts.

Worked example. Version A is current (`..data -> ..A`, files `x`, `y`); the
ConfigMap now has `x` (new content) and `z`. The writer creates `..B` with
`x` and `z`, renames `..data_tmp -> ..B` over `..data` (from now on `x`
reads the new content and `y` is a dangling link), adds the link `z`,
removes the link `y`, then removes `..A`.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from kubelet.errors import VolumeError

log = logging.getLogger(__name__)

DATA_DIR = "..data"
DATA_DIR_TMP = "..data_tmp"
DIR_MODE = 0o755
MAX_PATH = 4096
MAX_SEGMENT = 255


@dataclass(frozen=True)
class FileProjection:
    """One file of a payload: its bytes and its permission bits."""

    data: bytes
    mode: int


Payload = Mapping[str, FileProjection]
SetPerms = Callable[[Path], None]


def validate_path(path: str) -> None:
    """A payload path must be relative, not too long, without `..`, not starting with `..`."""
    if not path:
        raise VolumeError("invalid path: must not be empty")
    if len(path) > MAX_PATH:
        raise VolumeError(f"invalid path {path!r}: must be less than or equal to {MAX_PATH}")
    if path.startswith("/"):
        raise VolumeError(f"invalid path {path!r}: must be relative path")
    segments = path.split("/")
    if any(len(s) > MAX_SEGMENT for s in segments):
        raise VolumeError(f"invalid path {path!r}: a segment is longer than {MAX_SEGMENT}")
    if ".." in segments:
        raise VolumeError(f"invalid path {path!r}: must not contain '..'")
    if path.startswith(".."):
        raise VolumeError(f"invalid path {path!r}: must not start with '..'")


def clean_payload(payload: Payload) -> dict[str, FileProjection]:
    """The payload with its paths checked and normalised (`a//b/` is `a/b`)."""
    cleaned: dict[str, FileProjection] = {}
    for raw, projection in payload.items():
        validate_path(raw)
        path = "/".join(s for s in raw.split("/") if s not in ("", "."))
        validate_path(path)
        cleaned[path] = projection
    for path in cleaned:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in cleaned:
                raise VolumeError(f"invalid path {path!r}: a parent is also a file")
    return cleaned


def _top(path: str) -> str:
    return path.split("/", 1)[0]


class AtomicWriter:
    """Writes payloads into one volume directory; see the module docstring."""

    def __init__(self, target_dir: str | Path, volume: str = "") -> None:
        self.target = Path(target_dir)
        self.volume = volume  # for the logs

    # ---- what is there now -------------------------------------------------------------

    def current_dir(self) -> Path | None:
        """The version directory `..data` points to, if any."""
        try:
            name = os.readlink(self.target / DATA_DIR)
        except OSError:
            return None
        found = self.target / name
        return found if found.is_dir() and not found.is_symlink() else None

    def _visible(self) -> set[str]:
        return {e.name for e in os.scandir(self.target) if not e.name.startswith("..")}

    def _unchanged(self, current: Path | None, payload: Mapping[str, FileProjection]) -> bool:
        if current is None:
            return False
        on_disk = set()
        for parent, _, files in os.walk(current):
            for name in files:
                on_disk.add(os.path.relpath(os.path.join(parent, name), current))
        if on_disk != set(payload):
            return False
        for path, projection in payload.items():
            if (current / path).read_bytes() != projection.data:
                return False
        links = {_top(p) for p in payload}
        return links <= {n for n in self._visible() if (self.target / n).is_symlink()}

    # ---- the steps ---------------------------------------------------------------------

    def write(self, payload: Payload, set_perms: SetPerms | None = None) -> bool:
        """Make `payload` the volume's content; False when it already was (nothing written)."""
        cleaned = clean_payload(payload)
        self.target.mkdir(parents=True, exist_ok=True)
        current = self.current_dir()
        try:
            if self._unchanged(current, cleaned):
                return False
            new = self._new_version_dir()
            self._write_files(new, cleaned)
            if set_perms is not None:
                set_perms(new)
            self._swap(new)
            self._make_links({_top(p) for p in cleaned})
            self._remove_stale(new, {_top(p) for p in cleaned})
        except OSError as err:
            raise VolumeError(f"cannot write volume {self.volume or self.target}: {err}") from err
        log.debug(
            "volume written",
            extra={"volume": self.volume, "dir": str(self.target), "version": new.name},
        )
        return True

    def _new_version_dir(self) -> Path:
        while True:
            ns = time.time_ns()
            stamp = time.strftime("%Y_%m_%d_%H_%M_%S", time.gmtime(ns // 1_000_000_000))
            path = self.target / f"..{stamp}.{ns % 1_000_000_000:09d}"
            try:
                path.mkdir(mode=0o700)
            except FileExistsError:
                continue  # the same nanosecond twice: take the next
            path.chmod(DIR_MODE)  # whatever the umask: others must reach the files
            return path

    @staticmethod
    def _write_files(base: Path, payload: Mapping[str, FileProjection]) -> None:
        for path, projection in sorted(payload.items()):
            file = base / path
            parent = file.parent
            missing = []
            while parent != base and not parent.exists():
                missing.append(parent)
                parent = parent.parent
            for directory in reversed(missing):
                directory.mkdir()
                directory.chmod(DIR_MODE)
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, projection.data)
                os.fchmod(fd, projection.mode)
            finally:
                os.close(fd)

    def _swap(self, new: Path) -> None:
        tmp = self.target / DATA_DIR_TMP
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(new.name)
        os.rename(tmp, self.target / DATA_DIR)  # the one atomic step

    def _make_links(self, names: set[str]) -> None:
        for name in sorted(names):
            link = self.target / name
            want = f"{DATA_DIR}/{name}"
            if link.is_symlink():
                if os.readlink(link) == want:
                    continue
                self._replace_with_link(link, want)
            elif link.is_dir():
                shutil.rmtree(link)  # an older layout's plain directory
                link.symlink_to(want)
            elif link.exists():
                self._replace_with_link(link, want)  # an older layout's plain file
            else:
                link.symlink_to(want)

    @staticmethod
    def _replace_with_link(path: Path, want: str) -> None:
        tmp = path.with_name(f"..{path.name}.tmp")
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(want)
        os.rename(tmp, path)

    def _remove_stale(self, new: Path, names: set[str]) -> None:
        for entry in os.scandir(self.target):
            path = Path(entry.path)
            if entry.name in (DATA_DIR, new.name) or entry.name in names:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)  # an older version, or an older layout's directory
            else:
                path.unlink()  # a link gone from the payload, or a leftover
