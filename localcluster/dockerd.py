"""A private dockerd: its own data root, exec root, socket and pidfile (a node's Docker).

Why private instances. Like localcluster/containerd.py, tests, `tinykube up`
and the benchmarks each need a Docker daemon they own outright: several run
on one host (one per node namespace) beside the host's own, and stopping one
leaves nothing behind. Everything dockerd and its managed containerd write is
placed under `base`:

    <base>/daemon.json      an empty config (the host's /etc/docker/daemon.json is not read)
    <base>/data             --data-root: images, layers, container dirs and json logs
    <base>/exec             --exec-root: the managed containerd's socket and state, runc's root
    <base>/docker.pid       --pidfile
    <base>/docker.sock      -H unix://...: the kubelet's --runtime-endpoint
    <base>/dockerd.log      its stderr

The flags, and why each (DESIGN §5: the pod network is CNI's, not Docker's):

    dockerd --config-file <base>/daemon.json --data-root <base>/data \\
        --exec-root <base>/exec --pidfile <base>/docker.pid -H unix://<base>/docker.sock \\
        --bridge=none --iptables=false --ip-masq=false --ip-forward=false \\
        --registry-mirror http://127.0.0.1:PORT --insecure-registry 127.0.0.1:PORT

* `--bridge=none --iptables=false --ip-masq=false --ip-forward=false`: no
  docker0, no NAT rules, no sysctl changes: the host's network is left
  untouched, and pods get their network from the kubelet's CNI call;
* `--registry-mirror`: `docker pull busybox` asks the local registry
  (localcluster/registry.py) for `library/busybox` before Docker Hub, the
  same role containerd's hosts.toml plays; `--insecure-registry`: that
  registry speaks plain HTTP.

Images. dockerd 20.10 cannot load OCI layout archives reliably (`docker
load` wants its own format), so the offline images are pushed to the local
registry and pulled through it. The mirror covers docker.io only; the pause
image (`registry.k8s.io/pause:3.9`) is pulled by the registry's own address
and tagged with its usual name:

    docker pull 127.0.0.1:PORT/pause:3.9
    docker tag  127.0.0.1:PORT/pause:3.9 registry.k8s.io/pause:3.9

`Dockerd.preload_images(names, registry)` does that for any list of names.

Teardown (`stop()`), each step idempotent and run even when start failed:

1. through the API, remove every container labelled by the kubelet
   (`io.kubernetes.docker.type`), force: the processes are killed;
2. SIGTERM dockerd (SIGKILL after 10 s), which stops its containerd;
3. kill whatever survived: processes whose command line names our exec
   root (containerd, its shims) and runc containers under its runc root;
4. unmount everything under `base` (overlay rootfs, shm), deepest first.

Network namespaces made by CNI for a pause container are the container's
own (/proc/<pid>/ns/net): they go with its process. The kubelet's CNI DEL
frees the IP; a test that kills dockerd without it cleans its bridge itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from localcluster.containerd import unmount_under

log = logging.getLogger(__name__)

TYPE_LABEL = "io.kubernetes.docker.type"  # kubelet-made containers (kubelet/runtime/docker*)


class DockerdError(RuntimeError):
    """dockerd would not start or answer, or an image could not be preloaded."""


@dataclass
class DockerdConfig:
    """What differs between instances; paths default to places under `base`."""

    base: Path
    socket_path: str = ""  # default <base>/docker.sock
    registry_mirror: str = ""  # HOST:PORT of a plain-HTTP registry mirroring docker.io
    extra_env: dict[str, str] = field(default_factory=dict)
    extra_args: tuple[str, ...] = ()
    debug: bool = False

    @property
    def data_root(self) -> Path:
        return self.base / "data"

    @property
    def exec_root(self) -> Path:
        return self.base / "exec"

    @property
    def pidfile(self) -> Path:
        return self.base / "docker.pid"

    @property
    def socket(self) -> Path:
        return Path(self.socket_path) if self.socket_path else self.base / "docker.sock"

    @property
    def config_file(self) -> Path:
        return self.base / "daemon.json"

    @property
    def log_file(self) -> Path:
        return self.base / "dockerd.log"

    @property
    def endpoint(self) -> str:
        """The kubelet's --runtime-endpoint for this instance."""
        return f"unix://{self.socket}"

    def command(self) -> list[str]:
        args = [
            "dockerd",
            "--config-file",
            str(self.config_file),
            "--data-root",
            str(self.data_root),
            "--exec-root",
            str(self.exec_root),
            "--pidfile",
            str(self.pidfile),
            "-H",
            self.endpoint,
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-masq=false",
            "--ip-forward=false",
            "--userland-proxy=false",
            "--exec-opt",
            "native.cgroupdriver=cgroupfs",
        ]
        if self.registry_mirror:
            args += [
                "--registry-mirror",
                f"http://{self.registry_mirror}",
                "--insecure-registry",
                self.registry_mirror,
            ]
        if self.debug:
            args.append("--debug")
        return [*args, *self.extra_args]


class Dockerd:
    """One dockerd process for `config`; `start()` waits until its API answers."""

    def __init__(self, config: DockerdConfig) -> None:
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

    def start(self, timeout: float = 60.0) -> None:
        cfg = self.config
        for path in (cfg.data_root, cfg.exec_root, cfg.socket.parent):
            path.mkdir(parents=True, exist_ok=True)
        cfg.config_file.write_text(json.dumps({}))
        for stale in (cfg.socket, cfg.pidfile):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        logfile = cfg.log_file.open("ab")
        try:
            self.proc = subprocess.Popen(
                cfg.command(),
                stdout=logfile,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **cfg.extra_env},
            )
        finally:
            logfile.close()
        log.info("dockerd started", extra={"pid": self.proc.pid, "socket": str(cfg.socket)})
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout: float) -> None:
        """Poll GET /_ping until it answers (the socket appears before the API is up)."""
        import docker

        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise DockerdError(f"dockerd exited: {self.log_tail()}")
            if self.socket.exists():
                client = docker.DockerClient(base_url=self.endpoint, timeout=2, version="1.41")
                try:
                    client.ping()
                    return
                except Exception as err:
                    last = str(err)
                finally:
                    client.close()
            time.sleep(0.1)
        raise DockerdError(f"dockerd did not answer in {timeout}s ({last}): {self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.config.log_file.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def preload_images(self, names: Sequence[str], registry: str) -> None:
        """Pull each image through `registry` (HOST:PORT) and tag it with its own name.

        `docker.io/library/busybox:1.36` is pulled as `REGISTRY/library/busybox:1.36`,
        `registry.k8s.io/pause:3.9` as `REGISTRY/pause:3.9` -- the repositories
        LocalRegistry.push_archive writes -- then tagged with the given name.
        """
        import docker

        from localcluster.registry import split_name

        client = docker.DockerClient(base_url=self.endpoint, timeout=120, version="1.41")
        try:
            for name in names:
                _, repo, tag = split_name(name)
                source = f"{registry}/{repo}"
                try:
                    image = client.images.pull(source, tag=tag)
                except docker.errors.APIError as err:
                    raise DockerdError(f"pulling {source}:{tag} failed: {err}") from None
                host, _, _ = split_name(name)
                target = name if host != "docker.io" else name.removeprefix("docker.io/")
                repository, _, target_tag = target.rpartition(":")
                image.tag(repository, target_tag)
                log.info("image preloaded", extra={"image": name, "from": source})
        finally:
            client.close()

    def stop_daemon(self, grace: float = 10.0) -> None:
        """Stop dockerd alone; it stops its containers (live-restore is off).

        A dockerd this object did not start (spawned elsewhere, e.g. inside a node's
        network namespace by `tinykube up`) is found by its pidfile.
        """
        if self.proc is not None:
            _terminate(self.proc, grace)
            self.proc = None
            return
        try:
            pid = int(self.config.pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        if str(self.config.exec_root).encode() not in _cmdline(pid):
            return  # a stale pidfile: that pid is someone else now
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and _cmdline(pid):
                time.sleep(0.1)
            if _cmdline(pid):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        """Everything in the module docstring's teardown; safe to call twice."""
        if self.running or (self.proc is None and self.socket.exists()):
            with contextlib.suppress(Exception):
                self.remove_kubelet_containers()
        self.stop_daemon()
        self.kill_leftovers()
        unmount_under(self.config.base)

    def remove_kubelet_containers(self) -> None:
        import docker

        client = docker.DockerClient(base_url=self.endpoint, timeout=30, version="1.41")
        try:
            found = client.containers.list(all=True, filters={"label": TYPE_LABEL})
            for container in found:
                try:
                    container.remove(force=True)
                except docker.errors.APIError as err:
                    log.warning(
                        "container removal failed", extra={"id": container.id, "error": str(err)}
                    )
        finally:
            client.close()

    def kill_leftovers(self) -> None:
        """Kill containerd/shims started for our exec root, and runc containers under it."""
        exec_root = str(self.config.exec_root)
        runc_root = self.config.exec_root / "runtime-runc"
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
        for pid in _pids_mentioning(exec_root.encode()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                log.info("killed leftover process", extra={"pid": pid})


def _terminate(proc: subprocess.Popen[bytes], grace: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _cmdline(pid: int) -> bytes:
    """The process's command line, b"" once it is gone (or a zombie)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _pids_mentioning(marker: bytes) -> list[int]:
    """Processes with an argument at or under `marker` (our exec root), not ourselves."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(arg == marker or arg.startswith(marker + b"/") for arg in args):
            out.append(int(entry.name))
    return out


@contextlib.contextmanager
def running(config: DockerdConfig, timeout: float = 60.0) -> Iterator[Dockerd]:
    """A started dockerd, stopped and cleaned up however the block ends."""
    daemon = Dockerd(config)
    try:
        daemon.start(timeout)
        yield daemon
    finally:
        daemon.stop()
