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

Steps 2-4 and the start/readiness loop are localcluster/daemon.py's
(PrivateDaemon), shared with containerd.py.

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
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from localcluster.daemon import PrivateDaemon, cmdline, kill_leftovers, started, unmount_under

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


class Dockerd(PrivateDaemon[DockerdConfig]):
    """One dockerd process for `config`; `start()` waits until its API answers."""

    name = "dockerd"
    error = DockerdError

    def start(self, timeout: float = 60.0) -> None:
        cfg = self.config
        for path in (cfg.data_root, cfg.exec_root, cfg.socket.parent):
            path.mkdir(parents=True, exist_ok=True)
        cfg.config_file.write_text(json.dumps({}))
        for stale in (cfg.socket, cfg.pidfile):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        self.spawn(cfg.command(), timeout)

    def probe(self) -> str | None:
        """GET /_ping (the socket appears before the API is up)."""
        import docker

        client = docker.DockerClient(base_url=self.endpoint, timeout=2, version="1.41")
        try:
            client.ping()
            return None
        except Exception as err:
            return str(err)
        finally:
            client.close()

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
            self.terminate(grace)
            return
        try:
            pid = int(self.config.pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        if str(self.config.exec_root).encode() not in cmdline(pid):
            return  # a stale pidfile: that pid is someone else now
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and cmdline(pid):
                time.sleep(0.1)
            if cmdline(pid):
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
        marker = str(self.config.exec_root).encode()
        kill_leftovers(
            self.config.exec_root / "runtime-runc",
            lambda arg: arg == marker or arg.startswith(marker + b"/"),
        )


def running(
    config: DockerdConfig, timeout: float = 60.0
) -> contextlib.AbstractContextManager[Dockerd]:
    """A started dockerd, stopped and cleaned up however the block ends."""
    return started(Dockerd(config), timeout)
