"""The kubelet's errors, one hierarchy for the package and its runtimes.

    KubeletError
    ├── ConfigError                 a flag or config value that cannot work (bad quantity, taint)
    └── ContainerRuntimeError       a runtime call failed; the pod worker retries with backoff
        ├── UnknownRuntime          `--runtime NAME` names no registered runtime
        ├── NotFoundError           the sandbox or container id is not (or no longer) there
        ├── NetworkNotReady         no pod network yet: the node has no podCIDR
        ├── PodIPsExhausted         every address of the podCIDR is handed out
        ├── ImagePullError          the image cannot be pulled (Kubernetes' ErrImagePull)
        │   └── ImagePullBackOff    it failed recently: the next pull waits (ImagePullBackOff)
        ├── ContainerStartError     created, but would not start (RunContainerError)
        ├── ContainerConfigError    the container cannot be configured: a missing configMap
        │   │                       key, runAsNonRoot with a root image, a subPath leaving its
        │   │                       volume (CreateContainerConfigError)
        │   └── SubPathError        a subPath that is missing, a symlink out of the volume
        ├── VolumeError             a volume cannot be set up: unknown type, missing source,
        │                           a mount that fails (FailedMount)
        └── ExecTimeout             exec_sync (a probe, a preStop hook) ran past its timeout

Why a separate tree from apimachinery.errors: those are the API server's
status reasons (NotFound, Conflict, ...) and travel over the wire; these
describe the node's own machinery and never leave the kubelet, except as the
`reason`/`message` of a container's waiting state, which is what `reason`
holds (the word Kubernetes shows in `kubectl get pods`, e.g. ErrImagePull).

Runtime adapters (containerd over CRI, Docker) translate their transport
errors into these, so the pod worker handles one vocabulary: a NotFoundError
during teardown means "already gone" (teardown is idempotent), anything else
is logged and retried.
"""

from __future__ import annotations


class KubeletError(Exception):
    """Base class of every kubelet error."""

    reason = "KubeletError"


class ConfigError(KubeletError):
    """A flag or config value that cannot work (a bad quantity, a bad taint)."""

    reason = "InvalidConfig"


class ContainerRuntimeError(KubeletError):
    """A container runtime call failed."""

    reason = "RuntimeError"


class UnknownRuntime(ContainerRuntimeError):
    """`--runtime NAME` names no registered runtime."""

    reason = "UnknownRuntime"


class NotFoundError(ContainerRuntimeError):
    """The sandbox or container id is not (or no longer) there."""

    reason = "NotFound"


class NetworkNotReady(ContainerRuntimeError):
    """No pod network yet: the node has no podCIDR, or no CNI configuration."""

    reason = "NetworkPluginNotReady"


class PodIPsExhausted(ContainerRuntimeError):
    """Every address of the podCIDR is handed out."""

    reason = "PodIPsExhausted"


class ImagePullError(ContainerRuntimeError):
    """The image cannot be pulled (Kubernetes' ErrImagePull)."""

    reason = "ErrImagePull"


class ContainerStartError(ContainerRuntimeError):
    """Created, but it would not start (Kubernetes' RunContainerError)."""

    reason = "RunContainerError"


class ContainerConfigError(ContainerRuntimeError):
    """The container cannot be configured (Kubernetes' CreateContainerConfigError).

    Nothing was created: the pod spec asks for something the node must refuse
    (runAsNonRoot with an image that runs as root) or cannot resolve (a
    missing configMap key, a subPath leaving its volume).
    """

    reason = "CreateContainerConfigError"


class SubPathError(ContainerConfigError):
    """A volumeMount's subPath cannot be used: it leaves its volume, or crosses a symlink."""


class VolumeError(ContainerRuntimeError):
    """A volume cannot be set up: unknown type, missing source, a failed mount (FailedMount)."""

    reason = "FailedMount"


class ExecTimeout(ContainerRuntimeError):
    """exec_sync (a probe, a preStop hook) ran past its timeout."""

    reason = "ExecTimeout"


class ImagePullBackOff(ImagePullError):
    """A pull failed recently; the next attempt waits (Kubernetes' ErrImagePullBackOff)."""

    reason = "ImagePullBackOff"
