"""Making sure a container's image is on the node before it is created (Kubernetes'
pkg/kubelet/images/image_manager.go: EnsureImageExists).

The imagePullPolicy decides, as in Kubernetes (defaulted here as the API
server would: `Always` for `:latest` or no tag, `IfNotPresent` otherwise):

    policy         image present          image absent
    Always         pull                   pull
    IfNotPresent   use it ("already       pull
                   present on machine")
    Never          use it                 ErrImagePull: "is not present with pull
                                          policy of Never"

A failed pull is ErrImagePull with the runtime's message and starts the
image's backoff (backoff.py, keyed pod uid + image: 10 s, doubling to 5 min
with the default flags). Until it ends the container shows ImagePullBackOff
(`Back-off pulling image "nginx:nope"`) and no pull is tried; `retry_after`
tells the runtime manager when to sync the pod again. A successful pull
resets the backoff.

Events, with Kubernetes' reasons and words: Pulling (`Pulling image
"nginx:1.25"`), Pulled (`Successfully pulled image "nginx:1.25" in 0.812s`
or `Container image "nginx:1.25" already present on machine`), Failed
(`Failed to pull image ...`), BackOff.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from kubelet import errors, podtrace
from kubelet.backoff import Backoff
from kubelet.runtime.interface import ContainerRuntime
from protos import core_pb2

# (pod, type, reason, message): records one event about the pod.
EventSink = Callable[[core_pb2.Pod, str, str, str], None]


def pull_policy(spec: core_pb2.Container) -> str:
    """The container's imagePullPolicy, defaulted as the API server does."""
    if spec.image_pull_policy:
        return str(spec.image_pull_policy)
    name = spec.image.split("@", 1)[0].rsplit("/", 1)[-1]
    tag = name.split(":", 1)[1] if ":" in name else ""
    return "Always" if tag in ("", "latest") and "@" not in spec.image else "IfNotPresent"


def image_key(pod: core_pb2.Pod, image: str) -> str:
    """The backoff key of one pod's image: `<pod uid>/<image>`."""
    return f"{pod.metadata.uid}/{image}"


class ImageManager:
    """EnsureImageExists: the pull policy, the pull, its backoff and its events."""

    def __init__(self, runtime: ContainerRuntime, backoff: Backoff, event: EventSink) -> None:
        self.runtime = runtime
        self.backoff = backoff
        self.event = event

    async def ensure_image_exists(self, pod: core_pb2.Pod, spec: core_pb2.Container) -> None:
        """Pull if the policy says so; ImagePullError / ImagePullBackOff when it cannot."""
        policy = pull_policy(spec)
        present = await self.runtime.image_status(spec.image)
        if present is not None and policy != "Always":
            message = f'Container image "{spec.image}" already present on machine'
            self.event(pod, "Normal", "Pulled", message)
            return
        if policy == "Never":
            raise errors.ImagePullError(
                f'Container image "{spec.image}" is not present with pull policy of Never'
            )
        key = image_key(pod, spec.image)
        if self.backoff.in_backoff_since_update(key):
            message = f'Back-off pulling image "{spec.image}"'
            self.event(pod, "Normal", "BackOff", message)
            raise errors.ImagePullBackOff(message)
        self.event(pod, "Normal", "Pulling", f'Pulling image "{spec.image}"')
        started = time.monotonic()
        try:
            with podtrace.pulling(pod, spec.image, policy):  # a span, if the pod is traced
                await self.runtime.pull_image(spec.image)
        except errors.ImagePullError as exc:
            self.backoff.next(key)
            self.event(pod, "Warning", "Failed", f'Failed to pull image "{spec.image}": {exc}')
            raise
        self.backoff.reset(key)
        took = time.monotonic() - started
        self.event(
            pod, "Normal", "Pulled", f'Successfully pulled image "{spec.image}" in {took:.3f}s'
        )

    def retry_after(self, pod: core_pb2.Pod, spec: core_pb2.Container) -> float | None:
        """Seconds until the image's backoff ends, or None when it is not backing off."""
        key = image_key(pod, spec.image)
        left = self.backoff.remaining_since_update(key)
        return left if left > 0 else None
