"""One real node for process-level tests: an API server process and a `tinykube kubelet
--runtime containerd` (or `--runtime docker`) process on the session's private containerd
(or dockerd) (conftest.py).

The kubelet runs with the flags a user would pass, shortened for tests:
CrashLoopBackOff and ImagePullBackOff start at 1 s, the kubelet server takes
any free port (`--kubelet-port 0`, so a stale kubelet never blocks a new
one), and its root dir, pod logs and process log live under the test's
temporary directory. Pods are created from YAML through the API client, and
the state is read back the same way, so a test reads like the user's
session: apply, wait for a status, look at events. The seed (SEED: two
nginx pods, app=web-app) is what both real-node modules check each fault
against: `web_pods()`, `web_running()`, `identity()` (container id and
restart count per pod) and `serves(ip)`.

Cleanup: `remove_pods()` removes, through the runtime, every sandbox made
since `start()` (the session's daemons are shared with other test modules),
and unmounts whatever the kubelet left mounted under its root dir.
With `docker_env`, the kubelet runs `--runtime docker` against the session's
dockerd, calls CNI with the test network's config itself, and keeps its
CNI result cache under its root dir (so does `runtime()` here: the test's
own adapter sees the same pod IPs and its DEL frees them).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from apimachinery import codec
from apimachinery import errors as api_errors
from apimachinery.client import Client
from apimachinery.tlsfront import stand_in
from kubelet.runtime.cri import CRIRuntime
from kubelet.runtime.docker import DockerRuntime
from kubelet.runtime.interface import ContainerRuntime
from localcluster import images
from localcluster.containerd import CNI_BIN_DIR
from localcluster.daemon import unmount_under
from localcluster.processes import ApiServerProcess, KubeletProcess
from tests.integration.runtime.conftest import DockerEnv, RuntimeEnv, http_get
from tests.procs import REPO

T = TypeVar("T")

TEST_LABEL = "tinykube-test"
SEED = str(REPO / "examples" / "web-app.yaml")  # two nginx pods labelled app=web-app


def pod_yaml(name: str, marker: str, body: str) -> str:
    """A Pod manifest; `body` is the indented text under `spec:`."""
    return (
        f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n"
        f"  labels:\n    {TEST_LABEL}: {marker}\nspec:\n{body}"
    )


class RealNode:
    def __init__(
        self, root: Path, env: RuntimeEnv, marker: str, docker_env: DockerEnv | None = None
    ) -> None:
        self.root = root
        self.env = env
        self.docker_env = docker_env
        self.marker = marker
        self.apiserver = ApiServerProcess(root / "apiserver")
        self.before: set[str] = set()
        self.pod_logs = root / "pod-logs"
        self.kubelet_root = root / "kubelet"
        runtime_args: tuple[str, ...] = ("--runtime-endpoint", env.endpoint)
        if docker_env is not None:
            runtime_args = (
                "--runtime-endpoint",
                docker_env.endpoint,
                "--cni-conf-dir",
                str(env.network.conf_dir),
                "--cni-bin-dir",
                CNI_BIN_DIR,
                "--pod-infra-container-image",
                images.PAUSE_IMAGE,
            )
        self.kubelet = KubeletProcess(
            "node1",
            self.apiserver,  # a node of its PKI: system:node:node1 over mTLS
            root / "logs",
            runtime="containerd" if docker_env is None else "docker",
            extra_args=(
                *runtime_args,
                "--pod-log-dir",
                str(self.pod_logs),
                "--root-dir",
                str(self.kubelet_root),
                "--node-ip",
                env.network.gateway,
                "--kubelet-port",
                "0",
                "--node-status-update-frequency",
                "1",
                "--sync-frequency",
                "5",
                "--crash-backoff",
                "1,8",
                "--image-backoff",
                "1,4",
            ),
        )

    # ---- processes ---------------------------------------------------------------------

    def start(self) -> None:
        self.before = {s.id for s in self.cri(lambda rt: rt.list_pod_sandboxes())}
        self.apiserver.start()
        self.kubelet.start()
        self.wait(lambda: self.kubelet_starts() >= 1, "the kubelet to start", 30)

    def stop(self) -> None:
        self.kubelet.stop()
        self.apiserver.stop()
        # A kubelet killed with kill -9 cannot remove its TLS front's sockets; this root dir is
        # too long for socket paths, so they stand in the temporary directory (tlsfront.py).
        shutil.rmtree(stand_in(str(self.kubelet_root), "tls"), ignore_errors=True)

    def kubelet_starts(self) -> int:
        """How many times a kubelet process logged that it started (the log is appended to)."""
        try:
            return self.kubelet.log.read_text(errors="replace").count("kubelet started")
        except OSError:
            return 0

    def logs(self) -> str:
        parts = [f"==== kubelet\n{_tail(self.kubelet.log)}"]
        parts.append(f"==== apiserver\n{_tail(self.apiserver.log)}")
        return "\n".join(parts)

    # ---- the API -----------------------------------------------------------------------

    def api(self, fn: Callable[[Client], Any]) -> Any:
        async def call() -> Any:
            async with Client(self.apiserver.address, timeout=10) as client:
                return await fn(client)

        return asyncio.run(call())

    def create(self, manifest: str) -> None:
        async def create(client: Client) -> None:
            for obj in codec.decode_documents(manifest):
                await client.create(obj)

        self.api(create)

    def pod(self, name: str) -> Any:
        def get(client: Client) -> Any:
            return client.get("pods", name, "default")

        try:
            return self.api(get)
        except api_errors.NotFound:
            return None

    def events(self, name: str) -> list[Any]:
        async def read(client: Client) -> list[Any]:
            items, _ = await client.list("events", "default")
            return [e for e in items if e.involved_object.name == name]

        out: list[Any] = self.api(read)
        return out

    def delete(self, name: str) -> None:
        async def delete(client: Client) -> None:
            await client.delete("pods", name, "default")

        self.api(delete)

    def wait(self, check: Callable[[], T | None], what: str, timeout: float = 30) -> T:
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = check()
            except (api_errors.StatusError, OSError):
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\n{self.logs()}")
            time.sleep(0.2)

    def running(self, name: str) -> Any:
        """The pod once Running with every container running, else None."""
        pod = self.pod(name)
        if pod is None or pod.status.phase != "Running" or not pod.status.pod_ip:
            return None
        statuses = pod.status.container_statuses
        if not statuses or not all(s.state.HasField("running") for s in statuses):
            return None
        return pod

    # ---- the runtime -------------------------------------------------------------------

    @property
    def runtime_name(self) -> str:
        return "containerd" if self.docker_env is None else "docker"

    def new_runtime(self) -> ContainerRuntime:
        """An adapter for the node's runtime, seeing what the kubelet sees."""
        if self.docker_env is None:
            return CRIRuntime(self.env.endpoint, log_root=str(self.pod_logs))
        return DockerRuntime(
            self.docker_env.endpoint,
            log_root=str(self.pod_logs),
            cni_conf_dir=str(self.env.network.conf_dir),
            cni_bin_dir=CNI_BIN_DIR,
            cni_cache_dir=str(self.kubelet_root / "cni-results"),
            pause_image=images.PAUSE_IMAGE,
        )

    def cri(self, fn: Callable[[Any], Any]) -> Any:
        """`fn(runtime)` with a fresh adapter of the node's runtime (CRI or Docker)."""

        async def call() -> Any:
            runtime = self.new_runtime()
            try:
                return await fn(runtime)
            finally:
                await runtime.close()

        return asyncio.run(call())

    # ---- the seed's web-app pods ------------------------------------------------------------

    def web_pods(self) -> list[Any]:
        async def read(client: Client) -> list[Any]:
            items, _ = await client.list("pods", "default", label_selector="app=web-app")
            return list(items)

        pods: list[Any] = self.api(read)
        return pods

    def web_running(self) -> list[Any] | None:
        """Both seed pods once Running, else None."""
        # Read each pod again: the list may predate the status that made it Running.
        pods = [self.running(p.metadata.name) for p in self.web_pods()]
        return pods if len(pods) == 2 and all(p is not None for p in pods) else None

    def identity(self) -> dict[str, tuple[str, int]]:
        """pod name -> (container id, restart count) of the seed's pods."""
        out = {}
        for pod in self.web_pods():
            status = pod.status.container_statuses[0]
            out[pod.metadata.name] = (status.container_id, status.restart_count)
        return out

    def remove_pods(self) -> None:
        """Remove the sandboxes made since `start()` (restarting a dockerd a test stopped),
        and detach what the kubelet left mounted under its root dir (secrets' tmpfs)."""
        if self.docker_env is not None and not self.docker_env.dockerd.running:
            self.docker_env.dockerd.start()

        async def remove(runtime: ContainerRuntime) -> None:
            for sandbox in await runtime.list_pod_sandboxes():
                if sandbox.id not in self.before:
                    await runtime.stop_pod_sandbox(sandbox.id)
                    await runtime.remove_pod_sandbox(sandbox.id)

        try:
            self.cri(remove)
        finally:
            unmount_under(self.kubelet_root)


@contextlib.contextmanager
def started_node(
    root: Path, env: RuntimeEnv, marker: str, docker_env: DockerEnv | None = None
) -> Iterator[RealNode]:
    """A started RealNode; stopped, and its pods removed, however the block ends."""
    node = RealNode(root, env, marker, docker_env)
    try:
        node.start()
        yield node
    finally:
        node.stop()
        node.remove_pods()


def serves(ip: str, attempts: int = 50) -> str:
    """The page at http://IP/, retried every 0.1 s while the server comes up; "" if never."""
    for _ in range(attempts):
        try:
            return http_get(f"http://{ip}/", timeout=2)
        except OSError:
            time.sleep(0.1)
    return ""


def _tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""
