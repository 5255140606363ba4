"""What a private runtime daemon is, whichever runtime: containerd and dockerd alike.

localcluster/containerd.py and localcluster/dockerd.py each run a daemon
the caller owns outright, with every path it writes under one `base`
directory. Their life cycle is the same, and lives here once:

* spawn: the command with stdout and stderr appended to `<base>/NAME.log`,
  stdin from /dev/null, in a session of its own (a Ctrl-C at the terminal
  reaches the test runner, not the daemon, and the caller decides when the
  daemon stops);
* wait until ready: the socket file appears before the API answers, so
  readiness is an API call (`probe()`: CRI Version, or Docker's GET /_ping)
  retried until it passes; a daemon that exits meanwhile fails at once with
  the tail of its log, one that never answers fails after `timeout`, and in
  both cases the instance is stopped before the error is raised;
* stop: SIGTERM, then SIGKILL once `grace` has passed;
* leftovers: runc containers and shims outlive a killed daemon. They are
  found by what only this instance can have -- the runc root under `base`,
  and a command-line argument naming our socket or exec root -- then
  deleted (`runc --root DIR delete --force ID`) or killed (SIGKILL);
* unmount: whatever is still mounted under `base` (overlay rootfs, netns
  bind mounts, shm), deepest first, lazily:

      umount -l <base>/state/io.containerd.runtime.v2.task/k8s.io/<id>/rootfs
      umount -l <base>/state/netns/cni-1234...

Example: a containerd whose config names a missing snapshotter exits at
once; `start()` reads its exit status on the first poll and raises
ContainerdError("containerd exited: ...level=fatal msg=...") within 0.1 s
instead of waiting out the 20 s timeout.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

log = logging.getLogger(__name__)


class DaemonConfig(Protocol):
    """The paths every private daemon's config has (ContainerdConfig, DockerdConfig)."""

    @property
    def base(self) -> Path: ...

    @property
    def socket(self) -> Path: ...

    @property
    def endpoint(self) -> str: ...

    @property
    def log_file(self) -> Path: ...

    @property
    def extra_env(self) -> dict[str, str]: ...


C = TypeVar("C", bound=DaemonConfig)
D = TypeVar("D", bound="PrivateDaemon[Any]")


class PrivateDaemon(abc.ABC, Generic[C]):
    """One daemon process for `config`; subclasses say how to probe it and tear it down."""

    name: ClassVar[str]  # the program, in messages ("containerd")
    error: ClassVar[type[RuntimeError]]  # raised when it will not start or answer
    poll_interval: ClassVar[float] = 0.1

    def __init__(self, config: C) -> None:
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.config.socket

    @property
    def endpoint(self) -> str:
        return self.config.endpoint

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @abc.abstractmethod
    def start(self, timeout: float) -> None:
        """Prepare the directories, then `spawn()`."""

    @abc.abstractmethod
    def stop(self) -> None:
        """The whole teardown; safe to call twice and after a failed start."""

    @abc.abstractmethod
    def probe(self) -> str | None:
        """One API call: None once it answers, else why not (called while the socket exists)."""

    def spawn(self, argv: Sequence[str], timeout: float) -> None:
        """Run `argv` (module docstring), wait until ready; stop everything if it never is."""
        cfg = self.config
        logfile = cfg.log_file.open("ab")
        try:
            self.proc = subprocess.Popen(
                list(argv),
                stdout=logfile,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **cfg.extra_env},
            )
        finally:
            logfile.close()
        log.info(
            "daemon started",
            extra={"daemon": self.name, "pid": self.proc.pid, "socket": str(cfg.socket)},
        )
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout: float) -> None:
        """Poll `probe()` until it passes, the process exits, or `timeout` runs out."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise self.error(f"{self.name} exited: {self.log_tail()}")
            if self.socket.exists():
                reason = self.probe()
                if reason is None:
                    return
                last = reason
            time.sleep(self.poll_interval)
        raise self.error(f"{self.name} did not answer in {timeout}s ({last}): {self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.config.log_file.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def terminate(self, grace: float) -> None:
        """SIGTERM the process this object started, SIGKILL after `grace`; forget it."""
        if self.proc is not None:
            terminate(self.proc, grace)
            self.proc = None


@contextlib.contextmanager
def started(daemon: D, timeout: float) -> Iterator[D]:
    """`daemon` started, stopped and cleaned up however the block ends."""
    try:
        daemon.start(timeout)
        yield daemon
    finally:
        daemon.stop()


def terminate(proc: subprocess.Popen[bytes], grace: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cmdline(pid: int) -> bytes:
    """The process's command line, b"" once it is gone (or a zombie)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def pids_with_arg(matches: Callable[[bytes], bool]) -> list[int]:
    """Processes, not ourselves, with a command-line argument for which `matches` is true."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(matches(arg) for arg in args):
            out.append(int(entry.name))
    return out


def kill_leftovers(runc_root: Path, matches: Callable[[bytes], bool]) -> None:
    """Delete the runc containers under `runc_root`, SIGKILL processes `pids_with_arg` finds."""
    if runc_root.is_dir():
        for ns_dir in runc_root.iterdir():
            if not ns_dir.is_dir():
                continue
            for container in ns_dir.iterdir():
                subprocess.run(
                    ["runc", "--root", str(ns_dir), "delete", "--force", container.name],
                    capture_output=True,
                    check=False,
                )
    for pid in pids_with_arg(matches):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            log.info("killed leftover process", extra={"pid": pid})


def mounts_under(base: Path) -> list[str]:
    """Mount points at or below `base` (from /proc/self/mountinfo), deepest first."""
    prefix = str(base.resolve())
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(set(found), key=lambda p: (-p.count("/"), p))


def unmount_under(base: Path) -> None:
    """Detach every mount under `base` (lazy: a busy one goes when its last user does)."""
    if not base.exists():
        return
    for point in mounts_under(base):
        result = subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        if result.returncode != 0:
            log.warning(
                "unmount failed", extra={"path": point, "error": result.stderr.decode().strip()}
            )
