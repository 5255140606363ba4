"""Container logs rotated on a real node, and read across the rotations, on containerd and Docker.

Small limits (256 KiB, 3 files) and a container printing numbered lines fast
(~600 KB a second). On containerd the kubelet's ContainerLogManager
(kubelet/logrotation.py) runs here, in the test's process, against the
session's containerd: it renames the file and calls CRI ReopenContainerLog.
On Docker the json-file driver rotates by itself, with the max-size and
max-file the runtime adapter set at container create. The pod is run by the
kubelet's own runtime manager (pod_runner.py). Checked while it writes:

* rotated files appear and there are never more than 3 files (the current one
  included; a compression's `.tmp` in flight is not a log file);
* `logs -f --tail=3` (the adapter's container_logs) reads on across several
  rotations with no line lost or repeated, up to the last line written;
* `logs --tail=5` reads five consecutive lines from the end of the file.

Cleanup: the runner kills the pod; the fixture removes the sandboxes and the
pod's log directory, however the test ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kubelet.logrotation import TMP_SUFFIX, ContainerLogManager
from kubelet.runtime.interface import ContainerRuntime
from tests.integration.runtime.pod_runner import PodRunner, pod

pytestmark = pytest.mark.root

MAX_SIZE = 256 * 1024
MAX_FILES = 3
WRITER = pod(
    "rotating",
    """  terminationGracePeriodSeconds: 1
  containers:
  - name: writer
    image: busybox:1.36
    command:
    - sh
    - -c
    - |
      pad=$(printf '%0150d' 0)
      i=0
      while true; do
        i=$((i+1))
        echo "line-$i-$pad"
        if [ $((i % 200)) -eq 0 ]; then sleep 0.05; fi
      done
""",
)
NUMBER = re.compile(rb"line-(\d+)-")


@pytest.fixture
async def runner(runtime: ContainerRuntime, tmp_path: Path) -> AsyncIterator[PodRunner]:
    run = PodRunner(runtime, tmp_path / "kubelet")
    try:
        yield run
    finally:
        try:
            await run.close()
        finally:
            for p in run.pods:
                await runtime.remove_pod_logs(p.metadata.uid)


def number(text: str) -> int:
    found = NUMBER.match(text.encode())
    assert found, text
    return int(found.group(1))


def log_files(path: str) -> list[str]:
    """The container's log files: the current one and the rotated ones."""
    directory, name = os.path.split(path)
    return sorted(
        f for f in os.listdir(directory) if f.startswith(name) and not f.endswith(TMP_SUFFIX)
    )


def last_written(path: str) -> int:
    """The highest line number in the current file and the plain (newest) rotated ones."""
    directory = os.path.dirname(path)
    found = 0
    for name in log_files(path):
        if not name.endswith(".gz"):
            data = Path(directory, name).read_bytes()
            found = max([found, *(int(n) for n in re.findall(rb"line-(\d+)-", data))])
    return found


async def watch_rotations(path: str, rotations: int, timeout: float) -> tuple[int, int]:
    """Look at the files every 50 ms until the path has been rotated `rotations` times;
    (files seen at most at once, rotations seen). A rotation is the path naming another
    inode or a smaller file: Docker's new file may get the inode its removed oldest one
    freed."""
    seen = 0
    most = 0
    last: tuple[int, int] | None = None
    deadline = time.monotonic() + timeout
    while seen < rotations and time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):  # renamed, not yet reopened
            st = os.stat(path)
            if last is not None and (st.st_ino != last[0] or st.st_size < last[1]):
                seen += 1
            last = (st.st_ino, st.st_size)
        most = max(most, len(log_files(path)))
        await asyncio.sleep(0.05)
    return most, seen


async def test_logs_rotate_and_are_followed_across_rotations(
    runner: PodRunner, runtime: ContainerRuntime, runtime_name: str
) -> None:
    runtime.log_max_size, runtime.log_max_files = MAX_SIZE, MAX_FILES
    manager: asyncio.Task[None] | None = None
    if runtime.kubelet_rotates_logs:  # containerd; Docker rotates its json-file by itself
        rotator = ContainerLogManager(runtime, MAX_SIZE, MAX_FILES, interval=0.5)
        manager = asyncio.ensure_future(rotator.run())
    try:
        p = await runner.run(WRITER, "writer")
        cid = await runner.container_id(p, "writer")
        path = (await runtime.container_status(cid)).log_path
        assert path, runtime_name
        seen: list[int] = []

        async def follow() -> None:
            async for line in runtime.container_logs(cid, follow=True, tail=3):
                seen.append(number(line.text))

        follower = asyncio.ensure_future(follow())
        most, rotations = await watch_rotations(path, 4, 60)
        assert rotations == 4, f"{runtime_name}: {rotations} rotations in 60 s: {log_files(path)}"
        assert most <= MAX_FILES, most
        rotated = [f for f in log_files(path) if f != os.path.basename(path)]
        if runtime_name == "containerd":  # <log>.<UTC stamp>, the older ones gzipped
            assert any(re.fullmatch(r"0\.log\.\d{8}-\d{6}\.gz", f) for f in rotated), rotated
            assert any(re.fullmatch(r"0\.log\.\d{8}-\d{6}", f) for f in rotated), rotated
        else:  # Docker's json-file: <id>-json.log.1, .2
            assert any(f.endswith("-json.log.1") for f in rotated), rotated

        tail = [number(x.text) async for x in runtime.container_logs(cid, tail=5)]
        assert len(tail) == 5 and tail == list(range(tail[0], tail[0] + 5)), tail

        await runtime.stop_container(cid, 1)
        await asyncio.wait_for(follower, 30)  # ends once the container has exited
        assert len(seen) > 1000, len(seen)
        assert seen == list(range(seen[0], seen[0] + len(seen))), _gaps(seen)
        assert seen[-1] == last_written(path)
        assert seen[0] <= tail[0] and tail[-1] <= seen[-1]
    finally:
        if manager is not None:
            manager.cancel()
            await asyncio.gather(manager, return_exceptions=True)


def _gaps(seen: list[int]) -> list[tuple[int, int]]:
    return [(a, b) for a, b in itertools.pairwise(seen) if b != a + 1][:10]
