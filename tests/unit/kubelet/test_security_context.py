"""securityContext: merged as Kubernetes merges it, verified (runAsNonRoot), and handed to
each runtime in its own words (CRI messages, Docker's HostConfig). No runtime needed."""

from __future__ import annotations

from typing import Any

import pytest

from apimachinery import codec
from kubelet.errors import ContainerConfigError
from kubelet.kuberuntime_manager import KubeRuntimeManager, sandbox_config
from kubelet.runtime import docker_convert, docker_security
from kubelet.runtime.cri_messages import (
    image_user_from_cri,
    to_cri_container_config,
    to_cri_sandbox_config,
)
from kubelet.runtime.fake import FakeRuntime
from kubelet.runtime.interface import (
    ContainerConfig,
    ImageUser,
    LinuxContainerSecurity,
    LinuxSandboxSecurity,
    PodSandboxConfig,
    SeccompProfile,
)
from kubelet.runtime.security_context import (
    container_security,
    effective_security_context,
    needs_image_user,
    sandbox_security,
    seccomp_profile,
    verify_run_as_non_root,
)
from protos import core_pb2
from protos import cri_pb2 as cri


def make_pod(spec: dict[str, Any], name: str = "web") -> core_pb2.Pod:
    obj = codec.from_dict(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}
    )
    assert isinstance(obj, core_pb2.Pod)
    obj.metadata.namespace, obj.metadata.uid = "default", "uid-1"
    return obj


def one(pod_sc: dict[str, Any], sc: dict[str, Any] | None = None, **extra: Any) -> core_pb2.Pod:
    container: dict[str, Any] = {"name": "app", "image": "busybox:1.36"}
    if sc is not None:
        container["securityContext"] = sc
    return make_pod({"securityContext": pod_sc, "containers": [container], **extra})


# ---- merging -----------------------------------------------------------------------------------


def test_the_container_field_wins_over_the_pod_default() -> None:
    pod = one(
        {"runAsUser": 1000, "runAsGroup": 3000, "runAsNonRoot": True},
        {"runAsUser": 1001, "runAsNonRoot": False, "readOnlyRootFilesystem": True},
    )
    sc = effective_security_context(pod, pod.spec.containers[0])
    assert (sc.run_as_user, sc.run_as_group, sc.run_as_non_root) == (1001, 3000, False)
    assert sc.read_only_root_filesystem
    assert not sc.HasField("privileged")
    bare = one({})
    assert effective_security_context(bare, bare.spec.containers[0]) == core_pb2.SecurityContext()


def test_worked_example_of_the_module_docstring() -> None:
    pod = one(
        {"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000, "supplementalGroups": [4000]},
        {"runAsUser": 1001, "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    )
    assert container_security(pod, pod.spec.containers[0]) == LinuxContainerSecurity(
        run_as_user=1001,
        run_as_group=3000,
        supplemental_groups=(2000, 4000),  # fsGroup first
        no_new_privs=True,
        capabilities_drop=("ALL",),
        seccomp=SeccompProfile("Unconfined"),
    )


def test_defaults_leave_the_image_and_runtime_in_charge() -> None:
    pod = one({}, {"allowPrivilegeEscalation": True, "privileged": True})
    security = container_security(pod, pod.spec.containers[0])
    assert security.run_as_user is None and security.run_as_username == ""
    assert not security.no_new_privs  # only an explicit false sets no_new_privs
    assert security.privileged
    assert security.seccomp == SeccompProfile("Unconfined")  # Kubernetes' default
    assert security.user_spec() == ""


def test_seccomp_profiles() -> None:
    def profile(pod_level: str, own: str = "") -> SeccompProfile:
        sc = {"seccompProfile": {"type": own}} if own else {}
        pod = one({"seccompProfile": {"type": pod_level}} if pod_level else {}, sc)
        return container_security(pod, pod.spec.containers[0], seccomp_root="/k/seccomp").seccomp

    assert profile("RuntimeDefault") == SeccompProfile("RuntimeDefault")
    assert profile("RuntimeDefault", "Unconfined") == SeccompProfile("Unconfined")
    assert profile("", "RuntimeDefault") == SeccompProfile("RuntimeDefault")
    local = core_pb2.SeccompProfile(type="Localhost", localhost_profile="profiles/audit.json")
    assert seccomp_profile(local, "/k/seccomp") == SeccompProfile(
        "Localhost", "/k/seccomp/profiles/audit.json"
    )
    with pytest.raises(ContainerConfigError, match="Sometimes"):
        seccomp_profile(core_pb2.SeccompProfile(type="Sometimes"))


def test_the_image_user_fills_in_an_unset_run_as_user() -> None:
    pod = one({"runAsGroup": 3000})
    spec = pod.spec.containers[0]
    assert needs_image_user(pod, spec)  # a group alone cannot be applied
    assert container_security(pod, spec, ImageUser(uid=1000)).user_spec() == "1000:3000"
    assert container_security(pod, spec, ImageUser(username="nginx")).user_spec() == ("nginx:3000")
    assert container_security(pod, spec, ImageUser()).user_spec() == "0:3000"  # no USER: root
    assert needs_image_user(one({"runAsNonRoot": True}), spec)
    assert not needs_image_user(one({"runAsNonRoot": True, "runAsUser": 5}), spec)
    assert not needs_image_user(one({}), spec)


def test_image_user_parse() -> None:
    assert ImageUser.parse("") == ImageUser()
    assert ImageUser.parse("1000:1000") == ImageUser(uid=1000)
    assert ImageUser.parse("nginx") == ImageUser(username="nginx")
    assert ImageUser.parse("www-data:www-data") == ImageUser(username="www-data")
    image = cri.Image(id="sha256:1")
    assert image_user_from_cri(image) == ImageUser()
    image.uid.value = 0
    assert image_user_from_cri(image) == ImageUser(uid=0)
    assert image_user_from_cri(cri.Image(username="app")) == ImageUser(username="app")


# ---- runAsNonRoot ------------------------------------------------------------------------------

WHERE = '(pod: "web_default(uid-1)", container: app)'


@pytest.mark.parametrize(
    ("pod_sc", "own", "image", "message"),
    [
        ({"runAsNonRoot": True}, None, ImageUser(), "image will run as root"),
        ({"runAsNonRoot": True}, None, ImageUser(uid=0), "image will run as root"),
        ({"runAsNonRoot": True}, None, None, "image will run as root"),
        (
            {"runAsNonRoot": True},
            None,
            ImageUser(username="nobody"),
            "image has non-numeric user (nobody), cannot verify user is non-root",
        ),
        ({}, {"runAsNonRoot": True, "runAsUser": 0}, None, "runAsUser breaks non-root policy"),
    ],
)
def test_run_as_non_root_refusals(
    pod_sc: dict[str, Any], own: dict[str, Any] | None, image: ImageUser | None, message: str
) -> None:
    pod = one(pod_sc, own)
    with pytest.raises(ContainerConfigError) as caught:
        verify_run_as_non_root(pod, pod.spec.containers[0], image)
    assert caught.value.reason == "CreateContainerConfigError"
    if "runAsUser breaks" in message:
        assert str(caught.value) == f"container's runAsUser breaks non-root policy {WHERE}"
    else:
        assert str(caught.value) == f"container has runAsNonRoot and {message} {WHERE}"


def test_run_as_non_root_allows_a_known_non_root_user() -> None:
    for pod_sc, image in (
        ({"runAsNonRoot": True}, ImageUser(uid=1000)),
        ({"runAsNonRoot": True, "runAsUser": 1000}, None),
        ({}, ImageUser()),  # not asked for: root is fine
    ):
        pod = one(pod_sc)
        verify_run_as_non_root(pod, pod.spec.containers[0], image)
    relaxed = one({"runAsNonRoot": True}, {"runAsNonRoot": False})
    verify_run_as_non_root(relaxed, relaxed.spec.containers[0], ImageUser())


# ---- the sandbox -------------------------------------------------------------------------------


def test_sandbox_gets_the_pod_level_context_and_namespaces() -> None:
    pod = make_pod(
        {
            "hostPID": True,
            "hostIPC": True,
            "securityContext": {
                "runAsUser": 1000,
                "fsGroup": 2000,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "initContainers": [
                {"name": "setup", "image": "i", "securityContext": {"privileged": True}}
            ],
            "containers": [{"name": "app", "image": "i"}],
        }
    )
    assert sandbox_security(pod) == LinuxSandboxSecurity(
        run_as_user=1000,
        supplemental_groups=(2000,),
        privileged=True,  # an init container is privileged: containerd wants the sandbox so
        seccomp=SeccompProfile("RuntimeDefault"),
    )
    # A group without a user cannot be applied to the pause container: it keeps its own.
    assert sandbox_security(one({"runAsGroup": 3000})).run_as_group is None
    assert sandbox_security(one({"runAsUser": 1, "runAsGroup": 3000})).run_as_group == 3000
    config = sandbox_config(pod)
    assert (config.host_pid, config.host_ipc, config.share_process_namespace) == (
        True,
        True,
        False,
    )
    out = to_cri_sandbox_config(config, "/logs").linux.security_context
    assert (out.namespace_options.pid, out.namespace_options.ipc) == (cri.NODE, cri.NODE)
    assert out.privileged and out.run_as_user.value == 1000
    assert not out.HasField("run_as_group")
    assert list(out.supplemental_groups) == [2000]
    assert out.seccomp.profile_type == cri.SecurityProfile.RuntimeDefault
    assert out.seccomp_profile_path == "runtime/default"


# ---- CRI ---------------------------------------------------------------------------------------


def test_container_security_as_cri() -> None:
    security = LinuxContainerSecurity(
        run_as_user=0,
        run_as_group=3000,
        supplemental_groups=(2000, 4000),
        readonly_rootfs=True,
        no_new_privs=True,
        capabilities_add=("NET_RAW",),
        capabilities_drop=("ALL",),
        seccomp=SeccompProfile("Localhost", "/k/seccomp/a.json"),
    )
    config = ContainerConfig("app", "busybox", security=security)
    sandbox = PodSandboxConfig("web", "default", "uid-1", share_process_namespace=True)
    out = to_cri_container_config(config, sandbox).linux.security_context
    assert out.HasField("run_as_user") and out.run_as_user.value == 0  # 0 is set, not unset
    assert out.run_as_group.value == 3000
    assert list(out.supplemental_groups) == [2000, 4000]
    assert out.readonly_rootfs and out.no_new_privs and not out.privileged
    assert list(out.capabilities.add_capabilities) == ["NET_RAW"]
    assert list(out.capabilities.drop_capabilities) == ["ALL"]
    assert out.seccomp.profile_type == cri.SecurityProfile.Localhost
    assert out.seccomp.localhost_ref == "/k/seccomp/a.json"
    assert out.seccomp_profile_path == "localhost//k/seccomp/a.json"
    assert out.namespace_options.pid == cri.POD  # shareProcessNamespace
    plain = to_cri_container_config(ContainerConfig("app", "busybox"), sandbox)
    assert not plain.linux.security_context.HasField("run_as_user")
    assert plain.linux.security_context.seccomp_profile_path == ""  # the runtime's default


# ---- Docker ------------------------------------------------------------------------------------


def _docker(security: LinuxContainerSecurity, **sandbox: Any) -> dict[str, Any]:
    config = ContainerConfig("app", "busybox", security=security)
    box = PodSandboxConfig("web", "default", "uid-1", **sandbox)
    return docker_convert.container_create(config, "pause-id", box, read=lambda p: "{}")


def test_docker_worked_example() -> None:
    request = _docker(
        LinuxContainerSecurity(
            run_as_user=1000,
            run_as_group=3000,
            supplemental_groups=(2000,),
            no_new_privs=True,
            capabilities_drop=("ALL",),
            seccomp=SeccompProfile("RuntimeDefault"),
        )
    )
    host = request["host_config"]
    assert request["user"] == "1000:3000"
    assert host["group_add"] == ["2000"]
    assert host["cap_drop"] == ["ALL"] and "cap_add" not in host
    assert host["security_opt"] == ["no-new-privileges"]  # Docker's default seccomp
    assert "privileged" not in host and "read_only" not in host


def test_docker_seccomp_privileged_and_namespaces() -> None:
    request = _docker(LinuxContainerSecurity(privileged=True, readonly_rootfs=True), host_pid=True)
    host = request["host_config"]
    assert host["privileged"] and host["read_only"]
    assert host["security_opt"] == ["seccomp=unconfined"]  # Kubernetes' default, explicit
    assert host["pid_mode"] == "host"
    shared = _docker(LinuxContainerSecurity(), share_process_namespace=True, host_ipc=True)
    assert shared["host_config"]["pid_mode"] == "container:pause-id"
    assert shared["host_config"]["ipc_mode"] == "host"
    profile = SeccompProfile("Localhost", "/k/a.json")
    text = '{ "defaultAction": "SCMP_ACT_ALLOW" }'
    assert docker_security.seccomp_options(profile, lambda path: text) == [
        'seccomp={"defaultAction":"SCMP_ACT_ALLOW"}'
    ]
    with pytest.raises(ContainerConfigError, match="not JSON"):
        docker_security.seccomp_options(profile, lambda path: "nope")
    with pytest.raises(ContainerConfigError, match="runAsGroup"):
        _docker(LinuxContainerSecurity(run_as_group=5))


def test_docker_sandbox_is_never_privileged() -> None:
    config = PodSandboxConfig(
        "web",
        "default",
        "uid-1",
        host_ipc=True,
        security=LinuxSandboxSecurity(
            run_as_user=1000, run_as_group=3000, supplemental_groups=(2000,), privileged=True
        ),
    )
    request = docker_convert.sandbox_create(config, "pause:3.9")
    host = request["host_config"]
    assert request["user"] == "1000:3000"
    assert host["group_add"] == ["2000"] and "privileged" not in host
    assert host["ipc_mode"] == "host"
    assert host["security_opt"] == ["seccomp=unconfined"]


# ---- the runtime manager -----------------------------------------------------------------------


async def test_runtime_manager_refuses_a_root_image_for_run_as_non_root() -> None:
    runtime = FakeRuntime("10.244.9.0/24")
    seen: list[tuple[str, str]] = []
    manager = KubeRuntimeManager(runtime)
    manager._event = lambda pod, type_, reason, message: seen.append((reason, message))  # type: ignore[method-assign]
    pod = make_pod(
        {
            "securityContext": {"runAsNonRoot": True},
            "containers": [
                {"name": "app", "image": "busybox:1.36"},
                {"name": "ok", "image": "app:1"},
            ],
        }
    )
    runtime.image_users["app:1"] = ImageUser(uid=1000)
    result = await manager.sync_pod(pod)
    waiting = result.waiting["app"]
    message = f"container has runAsNonRoot and image will run as root {WHERE}"
    assert (waiting.reason, waiting.message) == ("CreateContainerConfigError", message)
    assert ("Failed", f"Error: {message}") in seen
    assert [c.name for c in result.containers] == ["ok"]
    (config,) = runtime.container_configs.values()
    assert config.security is not None and config.security.run_as_user == 1000
    assert runtime.count("image_user") == 2


async def test_runtime_manager_passes_security_and_asks_images_only_when_needed() -> None:
    runtime = FakeRuntime("10.244.9.0/24")
    manager = KubeRuntimeManager(runtime, seccomp_root="/var/lib/kubelet/seccomp")
    pod = make_pod(
        {
            "containers": [
                {
                    "name": "app",
                    "image": "busybox:1.36",
                    "securityContext": {"privileged": True, "capabilities": {"add": ["NET_RAW"]}},
                }
            ]
        }
    )
    result = await manager.sync_pod(pod)
    assert result.error is None
    assert runtime.count("image_user") == 0
    (config,) = runtime.container_configs.values()
    assert config.security is not None and config.security.privileged
    assert config.security.capabilities_add == ("NET_RAW",)
    assert result.sandbox is not None
    sandbox = runtime.sandbox_configs[result.sandbox.id]
    assert sandbox.security is not None and sandbox.security.privileged
