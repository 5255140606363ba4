"""The container log manager: containers' log files rotated by size (Kubernetes' logs package).

A container's output goes to one file that the runtime appends to for as long
as the container runs (cri.py: `<log root>/<ns>_<pod>_<uid>/<name>/<attempt>.log`).
Left alone it fills the disk. Kubernetes' kubelet bounds it with its
ContainerLogManager (pkg/kubelet/logs/container_log_manager.go), which this
module follows, with the KubeletConfiguration's settings (config.py):

    containerLogMaxSize          "10Mi"  a file past this size is rotated
    containerLogMaxFiles         5       files kept per container, the current one included
    containerLogMonitorInterval  10 s    how often the sizes are looked at

Every interval, for each *running* container (an exited one writes nothing
more): its log path from the runtime (ContainerStatus.log_path); if the file
is missing (an earlier rotation lost it), CRI ReopenContainerLog makes it
again; if it is at least containerLogMaxSize, rotate it:

1. clean up: `.tmp` files of an interrupted compression, and a plain file
   whose `.gz` already exists, are removed;
2. make room: of the rotated files (`<log>.<stamp>[.gz]`, oldest first by
   name), keep the newest containerLogMaxFiles - 2 -- the current file and
   the one about to be rotated make up the rest -- and remove older ones;
3. compress: every rotated file still plain is gzipped (`<log>.<stamp>.tmp`,
   then renamed to `<log>.<stamp>.gz`); only the newest rotated file stays
   plain, so a reader that was in it (`logs -f`, a log agent) can finish;
4. rename `<log>` to `<log>.<UTC time, 20240501-100000>` and call CRI
   ReopenContainerLog: containerd closes the file it writes to (the renamed
   one) and opens a new `<log>`. Until then its writes still land in the
   renamed file, so nothing is lost. If the reopen fails, the file is renamed
   back and the next round tries again.

Worked example, containerLogMaxSize 10Mi, containerLogMaxFiles 5, a container
writing 1.5 MiB a second, looked at every 10 s (t in seconds; `.100010` short
for `0.log.20240501-100010`):

    t=10  0.log  .100010
    t=20  0.log  .100010.gz  .100020
    t=30  0.log  .100010.gz  .100020.gz  .100030
    t=40  0.log  .100010.gz  .100020.gz  .100030.gz  .100040   5 files
    t=50  0.log  .100020.gz  .100030.gz  .100040.gz  .100050   (3 rotated kept: .100010.gz gone)

A file may grow past the limit between two looks (by the rate times the
interval), as in Kubernetes. Two rotations of one file within one second
would get the same name: the second waits for the next round.

Docker nodes rotate differently: Docker's json-file driver does it itself,
with max-size and max-file set from the same two settings when a container
is created (docker_convert.py). A runtime says which it is by
`kubelet_rotates_logs`; the kubelet runs this manager only for those that
need it, and not at all when containerLogMaxSize is negative.

`tinykube logs` reads the current file only, as `kubectl logs` does, and
follows it across a rotation (runtime/cri_logs.py); rotated files are for
node log agents, and go with the pod's log directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import gzip
import logging
import os
import shutil
import time
from collections.abc import Callable

from kubelet.errors import ContainerRuntimeError, NotFoundError
from kubelet.runtime.interface import Container, ContainerRuntime, ContainerState

log = logging.getLogger(__name__)

TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"  # Go's "20060102-150405", Kubernetes' rotated-log suffix
COMPRESS_SUFFIX = ".gz"
TMP_SUFFIX = ".tmp"
MONITOR_INTERVAL = 10.0


def rotated_logs(path: str) -> tuple[list[str], list[str]]:
    """The rotated files of the log at `path`, oldest first, and the leftovers of an
    interrupted rotation (step 1 of the module docstring)."""
    found = glob.glob(glob.escape(path) + ".*")
    names = set(found)
    in_use, unused = [], []
    for name in found:
        plain_twin = not name.endswith(COMPRESS_SUFFIX) and name + COMPRESS_SUFFIX in names
        if name.endswith(TMP_SUFFIX) or plain_twin:
            unused.append(name)
        else:
            in_use.append(name)
    return sorted(in_use), sorted(unused)


def compress(name: str) -> str:
    """Gzip a rotated file into `<name>.gz` (written as `<name>.tmp` first); the plain one
    is removed. Returns the new name."""
    tmp, done = name + TMP_SUFFIX, name + COMPRESS_SUFFIX
    try:
        with open(name, "rb") as src, gzip.open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        shutil.copymode(name, tmp)
        os.rename(tmp, done)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
    os.remove(name)
    return done


def make_room(path: str, max_files: int) -> list[str]:
    """Steps 1-3: leftovers removed, the newest max_files - 2 rotated files kept, all of
    them gzipped. Returns the rotated files left, oldest first."""
    in_use, unused = rotated_logs(path)
    for name in unused:
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)
    keep = max(0, max_files - 2)
    excess = max(0, len(in_use) - keep)
    for name in in_use[:excess]:
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)
    return [name if name.endswith(COMPRESS_SUFFIX) else compress(name) for name in in_use[excess:]]


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return None


def _taken(name: str) -> bool:
    return os.path.lexists(name) or os.path.lexists(name + COMPRESS_SUFFIX)


class ContainerLogManager:
    """Rotates the log files of a runtime's running containers (see the module docstring)."""

    def __init__(
        self,
        runtime: ContainerRuntime,
        max_size: int,
        max_files: int,
        *,
        interval: float = MONITOR_INTERVAL,
        now: Callable[[], float] = time.time,
    ) -> None:
        if max_files <= 1:
            raise ValueError(f"invalid MaxFiles {max_files}, must be > 1")
        self.runtime = runtime
        self.max_size = max_size
        self.max_files = max_files
        self.interval = interval
        self.now = now

    async def run(self) -> None:
        """Look at every running container's log each interval, until cancelled."""
        while True:
            try:
                await self.rotate_logs()
            except ContainerRuntimeError as exc:
                log.warning("failed to rotate container logs", extra={"error": str(exc)})
            await asyncio.sleep(self.interval)

    async def rotate_logs(self) -> int:
        """One round: rotate each running container's log that has reached the size.

        Returns how many were rotated. One container's failure is logged and the
        others go on; a failure to list the containers raises.
        """
        rotated = 0
        for container in await self.runtime.list_containers():
            if container.state != ContainerState.RUNNING:
                continue
            try:
                rotated += await self._process_container(container)
            except NotFoundError:
                continue  # removed since the list
            except (ContainerRuntimeError, OSError) as exc:
                log.warning(
                    "failed to rotate log for container",
                    extra={
                        "container": container.id,
                        "containerName": container.name,
                        "error": str(exc),
                    },
                )
        return rotated

    async def _process_container(self, container: Container) -> bool:
        path = container.log_path
        if not path:
            path = (await self.runtime.container_status(container.id)).log_path
        if not path:
            return False  # the runtime keeps no file for it
        size = await asyncio.to_thread(_size, path)
        if size is None:
            # Lost by an earlier rotation (renamed, and neither reopened nor renamed back).
            await self.runtime.reopen_container_log(container.id)
            size = await asyncio.to_thread(_size, path)
        if size is None or size < self.max_size:
            return False
        return await self.rotate_log(container.id, path)

    async def rotate_log(self, container_id: str, path: str) -> bool:
        """Steps 1-4 for one file; False when this second's name is taken (next round)."""
        await asyncio.to_thread(make_room, path, self.max_files)
        stamp = time.strftime(TIMESTAMP_FORMAT, time.gmtime(self.now()))
        rotated = f"{path}.{stamp}"
        if await asyncio.to_thread(_taken, rotated):
            return False
        await asyncio.to_thread(os.rename, path, rotated)
        try:
            await self.runtime.reopen_container_log(container_id)
        except ContainerRuntimeError:
            # Put it back so the next round tries again; if the kubelet stops right
            # here, the next one finds the log missing and reopens it.
            with contextlib.suppress(OSError):
                await asyncio.to_thread(os.rename, rotated, path)
            raise
        log.info("container log rotated", extra={"container": container_id, "path": rotated})
        return True
