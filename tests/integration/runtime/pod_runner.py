"""The kubelet's runtime manager, in-process, on a real runtime: pods from YAML, no API server.

The security-context tests need what the kubelet does between a pod spec
and the runtime -- the merged security context, the runAsNonRoot check, the
volumes on disk (tmpfs secrets, fsGroup, pinned subPaths) -- and then a look
inside the running container. A whole node (node.py: API server + kubelet
process) would do, but costs seconds per pod; here the test drives the same
KubeRuntimeManager and VolumeManager the kubelet builds, against the
session's containerd or dockerd, and reads the result as the kubelet would
(the SyncResult, and the pod status generated from it).

    runner = PodRunner(runtime, tmp_path / "kubelet", secrets={"creds": {"token": b"s3"}})
    pod = await runner.run(POD_YAML, "app")          # synced until `app` runs
    out = await runner.sh(pod, "app", "id -u")       # stdout, stripped

Cleanup (`close`, called by the fixture however the test ends) does what
the kubelet does when a pod goes: kill_pod (containers, sandbox, IP), then
the volume manager's cleanup (tmpfs unmounted, directories removed); and,
in case a test broke off half-way, detaches anything still mounted under
the runner's root.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

from apimachinery import codec
from apimachinery import errors as api_errors
from kubelet.kuberuntime_manager import KubeRuntimeManager, SyncResult
from kubelet.mount import SystemMounter
from kubelet.runtime.interface import ContainerRuntime, ContainerState, ExecResult
from kubelet.status import generate_pod_status
from kubelet.volume_manager import VolumeManager
from localcluster.daemon import unmount_under
from protos import core_pb2

Obj = TypeVar("Obj", core_pb2.ConfigMap, core_pb2.Secret)


class PodRunner:
    """KubeRuntimeManager + VolumeManager on one runtime, for pods given as YAML."""

    def __init__(
        self,
        runtime: ContainerRuntime,
        root: Path,
        *,
        configmaps: Mapping[str, Mapping[str, str]] | None = None,
        secrets: Mapping[str, Mapping[str, bytes]] | None = None,
    ) -> None:
        self.runtime = runtime
        self.root = root
        self.configmaps = dict(configmaps or {})
        self.secrets = dict(secrets or {})
        self.volumes = VolumeManager(str(root), self._get, mounter=SystemMounter())
        self.manager = KubeRuntimeManager(
            runtime, volumes=self.volumes, seccomp_root=str(root / "seccomp")
        )
        self.pods: list[core_pb2.Pod] = []

    async def _get(self, kind: type[Obj], namespace: str, name: str) -> Obj:
        obj = kind()
        obj.metadata.name, obj.metadata.namespace = name, namespace
        if isinstance(obj, core_pb2.ConfigMap):
            if name not in self.configmaps:
                raise api_errors.NotFound(f'configmaps "{name}" not found')
            obj.data.update(self.configmaps[name])
        else:
            if name not in self.secrets:
                raise api_errors.NotFound(f'secrets "{name}" not found')
            obj.data.update(self.secrets[name])
        return obj

    def pod(self, manifest: str) -> core_pb2.Pod:
        """The Pod of a manifest, with a fresh uid (what the API server would add)."""
        (obj,) = codec.decode_documents(manifest)
        assert isinstance(obj, core_pb2.Pod)
        obj.metadata.uid = str(uuid.uuid4())
        obj.metadata.namespace = obj.metadata.namespace or "default"
        self.pods.append(obj)
        return obj

    async def sync(self, pod: core_pb2.Pod) -> SyncResult:
        return await self.manager.sync_pod(pod)

    def status(self, pod: core_pb2.Pod, result: SyncResult) -> core_pb2.PodStatus:
        """The pod status the kubelet would write after this sync."""
        return generate_pod_status(
            pod,
            core_pb2.PodStatus(),
            node_ip="",
            sandbox=result.sandbox,
            containers=result.containers,
            runtime_name=self.runtime.name,
            waiting=result.waiting,
        )

    async def run(self, manifest: str, *running: str, timeout: float = 30) -> core_pb2.Pod:
        """Create the pod and sync it until the containers named run (init containers first)."""
        pod = self.pod(manifest)
        await self.until(pod, *running, timeout=timeout)
        return pod

    async def until(self, pod: core_pb2.Pod, *running: str, timeout: float = 30) -> SyncResult:
        """Sync every 0.2 s until each named container runs; the last SyncResult."""
        deadline = time.monotonic() + timeout
        while True:
            result = await self.sync(pod)
            states = {c.name: c.state for c in result.containers}
            if all(states.get(name) == ContainerState.RUNNING for name in running):
                return result
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not running: {running}; {states}; {result.waiting}; {result.error}"
                )
            await asyncio.sleep(0.2)

    async def container_id(self, pod: core_pb2.Pod, name: str) -> str:
        """The newest container of that name in the pod."""
        _, containers = await self.manager.pod_state(pod)
        mine = [c for c in containers if c.name == name]
        assert mine, f"no container {name}"
        return max(mine, key=lambda c: (c.attempt, c.created_at)).id

    async def exec(self, pod: core_pb2.Pod, name: str, *command: str) -> ExecResult:
        return await self.runtime.exec_sync(await self.container_id(pod, name), command, 10)

    async def sh(self, pod: core_pb2.Pod, name: str, script: str) -> str:
        """`sh -c script` in the container; its stdout, stripped; a failure is an error."""
        result = await self.exec(pod, name, "sh", "-c", script)
        assert result.exit_code == 0, (script, result)
        return result.stdout.decode().strip()

    def pod_dir(self, pod: core_pb2.Pod) -> Path:
        return self.volumes.pod_dir(pod.metadata.uid)

    async def remove(self, pod: core_pb2.Pod) -> None:
        """What the kubelet does when a pod goes: kill it, then its volumes."""
        sandboxes = await self.runtime.list_pod_sandboxes(pod_uid=pod.metadata.uid)
        await self.manager.kill_pod(pod, sandboxes, 0)
        await self.volumes.cleanup(pod.metadata.uid)

    async def close(self) -> None:
        try:
            for pod in self.pods:
                await self.remove(pod)
        finally:
            unmount_under(self.root)


def pod(name: str, body: str) -> str:
    """A Pod manifest; `body` is the text under `spec:` (indented two spaces)."""
    return f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{body}"


def status_line(text: str, key: str) -> str:
    """The value of `key:` in a /proc/self/status dump."""
    for line in text.splitlines():
        if line.startswith(f"{key}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{key} not in {text!r}")
