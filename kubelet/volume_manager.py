"""What a pod's containers need from outside the pod spec (Kubernetes' volume manager and the
configMap/secret lookups of generateContainerConfig).

Before the kubelet creates a container it must have, on the host, every
volume of the pod (emptyDir, hostPath, configMap, secret, downwardAPI,
projected) and, in hand, every
ConfigMap and Secret the pod's env refers to. `VolumeManager.prepare(pod)`
gathers both into a `PodInputs`:

1. collect the names: `env[].valueFrom.configMapKeyRef/secretKeyRef` of
   every container and the pod's configMap/secret volumes and projected
   sources;
2. read each object once through the kubelet's API client (NotFound is
   "absent", which an `optional` reference tolerates; any other API error is
   a CreateContainerConfigError and the pod worker retries with backoff);
3. lay the volumes out under `<root-dir>/pods/<uid>/volumes/...`
   (volume_plugins.prepare_volumes: Kubernetes' layout, secrets on tmpfs,
   fsGroup ownership) -- or, on a hollow node (`on_disk=False`), only check
   them and compute the paths, so a fake runtime never writes to the host.

Then, for each container about to be created, `container_mounts(pod, spec,
inputs)` gives its mounts, with every subPath checked and pinned
(subpath.py) for as long as the `async with` block lasts -- the runtime
manager creates and starts the container inside it, and the pins are
detached when it ends.

While the pod runs, `refresh(pod)` (called on every pod sync: the
kubelet's `volumes` sync step) reads the ConfigMaps and Secrets of its
API-data volumes again and rewrites each volume whose payload changed, with
the pod as it is now (its labels and annotations): the AtomicWriter swaps
the new version in under the running containers (atomic_writer.py). So an
edit reaches a pod within one sync period (--sync-frequency), a label
change at once (the pod update wakes its worker). A subPath mount of such a
volume keeps the file it resolved to at the container's start, as in
Kubernetes. These volumes are always mounted read-only.

Failure modes. A volume with no known source, or a missing non-optional
configMap/secret, raises VolumeError (reason FailedMount); the runtime
manager turns it into a FailedMount event and a waiting container with
reason CreateContainerConfigError. A subPath that leaves its volume is a
SubPathError (a ContainerConfigError): that container waits with
CreateContainerConfigError, the details go to the kubelet's log only.
Preparation runs only when a container is about to be created: a running
pod keeps running while the API server is down, since nothing has to be
read for it (a refresh that cannot read keeps the files as they are).

`cleanup(uid)` removes `<root-dir>/pods/<uid>` once the pod is gone: first
it detaches every mount below it (the secrets' tmpfs, a pin left by a
crash), then, only if nothing is mounted there any more, deletes the tree
-- deleting through a mount could reach a hostPath's files. It never
follows the hostPath volumes (they are not under the pod's directory), and
the runtimes' own bind mounts live in the containers' mount namespaces, so
nothing else on the host is mounted there once the containers are gone.

Worked example: a pod `web` (uid u1) with an env var from configMap `cfg`
key `mode` and a volume `conf` from the same configMap reads `cfg` once;
`prepare` returns volume_paths {"conf": "<root>/pods/u1/volumes/
kubernetes.io~configmap/conf"} and `inputs.configmap("cfg")` for the env.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import shutil
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from apimachinery import errors as api_errors
from apimachinery import scheme
from kubelet import subpath
from kubelet.errors import ContainerConfigError, SubPathError, VolumeError
from kubelet.mount import Mounter, SystemMounter
from kubelet.runtime.cri_convert import container_mounts
from kubelet.runtime.interface import Mount
from kubelet.volume_plugins import (
    ATOMIC,
    Sources,
    prepare_volumes,
    update_volumes,
    volume_dir,
    volume_kind,
    volume_payload,
)
from kubelet.volume_projection import referenced_names
from protos import core_pb2

log = logging.getLogger(__name__)

# The kinds a pod refers to by name.
Referenced = TypeVar("Referenced", core_pb2.ConfigMap, core_pb2.Secret)


class ObjectGetter(Protocol):
    """(kind, namespace, name) -> the API object; raises apimachinery.errors.NotFound if absent."""

    def __call__(
        self, kind: type[Referenced], namespace: str, name: str, /
    ) -> Awaitable[Referenced]: ...


Data = Mapping[str, str | bytes]


@dataclass
class PodInputs:
    """Volume host paths and the ConfigMaps/Secrets (name -> data) a pod's containers need."""

    volume_paths: dict[str, str] = field(default_factory=dict)
    configmaps: dict[str, Data] = field(default_factory=dict)
    secrets: dict[str, Data] = field(default_factory=dict)

    def configmap(self, name: str) -> Data | None:
        return self.configmaps.get(name)

    def secret(self, name: str) -> Data | None:
        return self.secrets.get(name)


def referenced_objects(pod: core_pb2.Pod) -> tuple[set[str], set[str]]:
    """The names of the ConfigMaps and Secrets the pod refers to (env and volumes)."""
    configmaps: set[str] = set()
    secrets: set[str] = set()
    for spec in [*pod.spec.init_containers, *pod.spec.containers]:
        for var in spec.env:
            if not var.HasField("value_from"):
                continue
            source = var.value_from
            if source.HasField("config_map_key_ref"):
                configmaps.add(source.config_map_key_ref.name)
            elif source.HasField("secret_key_ref"):
                secrets.add(source.secret_key_ref.name)
    for volume in pod.spec.volumes:
        volume_cms, volume_secrets = referenced_names(volume)
        configmaps |= volume_cms
        secrets |= volume_secrets
    return configmaps, secrets


def _configmap_data(obj: core_pb2.ConfigMap) -> Data:
    data: dict[str, str | bytes] = dict(obj.binary_data)
    data.update(obj.data)
    return data


def _secret_data(obj: core_pb2.Secret) -> Data:
    data: dict[str, str | bytes] = dict(obj.data)
    data.update(obj.string_data)
    return data


def check_volumes(
    pod: core_pb2.Pod, root_dir: str, inputs: PodInputs, allocatable: Mapping[str, str]
) -> dict[str, str]:
    """prepare_volumes without touching the host: the same errors, the paths it would use."""
    root = root_dir or "/var/lib/kubelet"
    sources = Sources(inputs.configmap, inputs.secret, allocatable)
    paths: dict[str, str] = {}
    for volume in pod.spec.volumes:
        kind = volume_kind(volume)
        path = volume_dir(root, pod.metadata.uid, volume)
        if kind == "host_path":
            paths[volume.name] = volume.host_path.path
            continue
        if path is None:
            raise VolumeError(f"volume {volume.name!r} has an unsupported volume type")
        if kind in ATOMIC:
            volume_payload(pod, volume, sources)  # a missing object or key, a bad field
        paths[volume.name] = str(path)
    return paths


def _read_only_api_data(
    pod: core_pb2.Pod, spec: core_pb2.Container, mounts: tuple[Mount, ...]
) -> tuple[Mount, ...]:
    """Every API-data volume (downwardAPI and projected too) mounted read-only (mustMountRO)."""
    api_data = {v.name for v in pod.spec.volumes if volume_kind(v) in ATOMIC}
    out = list(mounts)
    for index, vm in enumerate(spec.volume_mounts):
        if vm.name in api_data and index < len(out) and not out[index].read_only:
            out[index] = dataclasses.replace(out[index], read_only=True)
    return tuple(out)


class VolumeManager:
    """Gathers what a pod's containers need: volumes on the host, ConfigMaps, Secrets."""

    def __init__(
        self,
        root_dir: str = "",
        get_object: ObjectGetter | None = None,
        *,
        on_disk: bool = True,
        mounter: Mounter | None = None,
        allocatable: Mapping[str, str] | None = None,
    ) -> None:
        self.root_dir = root_dir
        self.get_object = get_object
        self.on_disk = on_disk and bool(root_dir)
        self.mounter = mounter if mounter is not None else SystemMounter()
        # The node's allocatable: a downwardAPI limit the container does not set.
        self.allocatable = dict(allocatable or {})

    def pod_dir(self, pod_uid: str) -> Path:
        return Path(self.root_dir) / "pods" / pod_uid

    def subpath_target(self, pod_uid: str, volume: str, container: str, index: int) -> Path:
        """Where a subPath is pinned: `<pod dir>/volume-subpaths/<volume>/<container>/<index>`."""
        return self.pod_dir(pod_uid) / "volume-subpaths" / volume / container / str(index)

    async def _read(self, kind: type[Referenced], namespace: str, name: str) -> Referenced | None:
        if self.get_object is None:
            return None
        try:
            return await self.get_object(kind, namespace, name)
        except api_errors.NotFound:
            return None
        except api_errors.StatusError as exc:
            resource = scheme.for_message(kind).resource
            raise ContainerConfigError(f"cannot read {resource} {namespace}/{name}: {exc}") from exc

    async def _read_objects(
        self, namespace: str, cm_names: set[str], secret_names: set[str]
    ) -> PodInputs:
        """Each named ConfigMap and Secret, read once; the absent ones are left out."""
        inputs = PodInputs()
        cms = sorted(cm_names)
        secrets = sorted(secret_names)
        found_cms, found_secrets = await asyncio.gather(
            asyncio.gather(*(self._read(core_pb2.ConfigMap, namespace, n) for n in cms)),
            asyncio.gather(*(self._read(core_pb2.Secret, namespace, n) for n in secrets)),
        )
        for name, cm in zip(cms, found_cms, strict=True):
            if cm is not None:
                inputs.configmaps[name] = _configmap_data(cm)
        for name, secret in zip(secrets, found_secrets, strict=True):
            if secret is not None:
                inputs.secrets[name] = _secret_data(secret)
        return inputs

    async def prepare(self, pod: core_pb2.Pod) -> PodInputs:
        """Read the referenced objects and set up the volumes; see the module docstring."""
        inputs = await self._read_objects(pod.metadata.namespace, *referenced_objects(pod))
        if self.on_disk:
            inputs.volume_paths = await asyncio.to_thread(
                prepare_volumes,
                pod,
                self.root_dir,
                configmaps=inputs.configmap,
                secrets=inputs.secret,
                allocatable=self.allocatable,
                mounter=self.mounter,
            )
        else:
            inputs.volume_paths = check_volumes(pod, self.root_dir, inputs, self.allocatable)
        return inputs

    async def refresh(self, pod: core_pb2.Pod) -> list[str]:
        """Rewrite a running pod's API-data volumes from fresh objects; the names that changed.

        Kubernetes' remount of configMap, secret, downwardAPI and projected
        volumes on each pod sync (their plugins' RequiresRemount): the objects
        are read again (the `Get` change-detection strategy) and each volume
        already set up is rewritten atomically if its payload changed. A pod
        without such volumes on disk costs nothing: no object is read.
        """
        if not self.on_disk:
            return []
        mine = [
            v
            for v in pod.spec.volumes
            if volume_kind(v) in ATOMIC
            and (path := volume_dir(self.root_dir, pod.metadata.uid, v)) is not None
            and path.is_dir()
        ]
        if not mine:
            return []
        cm_names: set[str] = set()
        secret_names: set[str] = set()
        for volume in mine:
            cms, secrets = referenced_names(volume)
            cm_names |= cms
            secret_names |= secrets
        inputs = await self._read_objects(pod.metadata.namespace, cm_names, secret_names)
        changed = await asyncio.to_thread(
            update_volumes,
            pod,
            self.root_dir,
            configmaps=inputs.configmap,
            secrets=inputs.secret,
            allocatable=self.allocatable,
            mounter=self.mounter,
        )
        if changed:
            log.info("volumes updated", extra={"pod": pod.metadata.name, "volumes": changed})
        return changed

    @contextlib.asynccontextmanager
    async def container_mounts(
        self, pod: core_pb2.Pod, spec: core_pb2.Container, inputs: PodInputs
    ) -> AsyncIterator[tuple[Mount, ...]]:
        """The container's mounts, its subPaths pinned until the block ends (subpath.py)."""
        pins: dict[int, str] = {}
        try:
            if self.on_disk:
                for index, vm in enumerate(spec.volume_mounts):
                    volume_path = inputs.volume_paths.get(vm.name)
                    if vm.sub_path and volume_path is not None:
                        place = self.subpath_target(pod.metadata.uid, vm.name, spec.name, index)
                        pins[index] = await self._pin(spec, vm, volume_path, str(place))
            mounts = container_mounts(pod, spec, inputs.volume_paths, pins)
            yield _read_only_api_data(pod, spec, mounts)
        finally:
            for target in pins.values():
                await asyncio.to_thread(self.mounter.unmount, target)

    async def _pin(
        self, spec: core_pb2.Container, vm: core_pb2.VolumeMount, volume_path: str, target: str
    ) -> str:
        try:
            return await asyncio.to_thread(
                subpath.pin, volume_path, vm.sub_path, target, self.mounter
            )
        except (SubPathError, OSError) as exc:
            # The details name the node's paths: the kubelet's log has them, the pod does not.
            log.warning(
                "subPath refused",
                extra={"container": spec.name, "volume": vm.name, "error": str(exc)},
            )
            raise SubPathError(
                f'failed to prepare subPath for volumeMount "{vm.name}" of container "{spec.name}"'
            ) from exc

    async def cleanup(self, pod_uid: str) -> None:
        """Unmount, then remove, the pod's directory (its volumes); see the module docstring."""
        if not self.on_disk or not pod_uid or "/" in pod_uid:
            return
        directory = self.pod_dir(pod_uid)
        await asyncio.to_thread(self._remove, directory)
        log.debug("pod volumes removed", extra={"uid": pod_uid, "dir": str(directory)})

    def _remove(self, directory: Path) -> None:
        try:
            for target in self.mounter.mounts_under(str(directory)):
                self.mounter.unmount(target)
            left = self.mounter.mounts_under(str(directory))
        except OSError as exc:
            raise VolumeError(f"cannot unmount below {directory}: {exc}") from exc
        if left:
            raise VolumeError(f"cannot remove {directory}: still mounted: {', '.join(left)}")
        shutil.rmtree(directory, ignore_errors=True)

    def pod_uids_on_disk(self) -> set[str]:
        """The pod uids that have a directory under `<root-dir>/pods` (for orphan cleanup)."""
        if not self.on_disk:
            return set()
        try:
            return {entry.name for entry in (Path(self.root_dir) / "pods").iterdir()}
        except OSError:
            return set()
