"""Secure by default, on containerd and on Docker: securityContext, secret volumes, subPath.

Each test runs a pod through the kubelet's own runtime manager and volume
manager (pod_runner.py) on the session's containerd, then on its dockerd
(the `runtime` fixture is parametrized over both), and looks inside the
running container with exec -- the checks a user would make by hand:

    what the pod asks                    the check, inside the container
    -----------------------------------  ---------------------------------------------
    runAsUser/runAsGroup/groups/fsGroup  `id -u`, `id -g`, `id -G`
    runAsNonRoot, root image             not created: waiting CreateContainerConfigError
                                         with Kubernetes' message
    readOnlyRootFilesystem               `touch /probe` fails: Read-only file system
    capabilities drop [ALL]              CapEff 0 in /proc/self/status; busybox `arping`
                                         cannot open its AF_PACKET socket nor `ping` its
                                         raw socket (CAP_NET_RAW); with add [NET_RAW]
                                         CapEff is that bit alone and both work
    privileged                           `mount -t tmpfs` works (it fails otherwise),
                                         CAP_SYS_ADMIN, the node's devices in /dev
                                         (Docker 20.10 on a machine with a reduced
                                         bounding set: RunContainerError, see
                                         docker_security.py)
    allowPrivilegeEscalation: false      NoNewPrivs: 1 in /proc/self/status
    seccompProfile RuntimeDefault        Seccomp: 2 (Unconfined, or unset: 0)
    fsGroup + emptyDir/configMap/secret  the volume's files have the group, setgid dirs
    secret volume                        a tmpfs (on the node too), files 0644 /
                                         defaultMode / item mode, read-only
    a symlink planted as a subPath       refused, nothing created outside the volume
    hostPID / hostIPC                    the node's pid / ipc namespace

Everything a test makes is removed by the runner's close() (containers,
sandboxes, tmpfs, directories), however the test ends.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from kubelet.mount import SystemMounter
from kubelet.runtime.interface import ContainerRuntime
from localcluster import images
from tests.integration.runtime.conftest import RuntimeEnv
from tests.integration.runtime.pod_runner import PodRunner, pod, status_line

pytestmark = pytest.mark.root

SLEEP = '["sh", "-c", "trap \'exit 0\' TERM; while true; do sleep 1; done"]'
NOBODY_IMAGE = "docker.io/library/busybox-user:nobody"  # USER nobody (non-numeric)
NUMERIC_IMAGE = "docker.io/library/busybox-user:65534"  # USER 65534:65534


def _user_image_archive(out: Path, name: str, user: str) -> Path:
    """The busybox image with `User` set in its config, as an OCI archive."""
    blobs, index = images.oci_blobs(images.busybox_image(names=(name,)))
    entry: dict[str, Any] = cast(list[dict[str, Any]], index["manifests"])[0]
    manifest = json.loads(blobs[entry["digest"]])
    config = json.loads(blobs.pop(manifest["config"]["digest"]))
    config["config"]["User"] = user

    def blob(obj: object) -> tuple[str, bytes]:
        data = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
        return "sha256:" + hashlib.sha256(data).hexdigest(), data

    config_digest, config_blob = blob(config)
    manifest["config"].update(digest=config_digest, size=len(config_blob))
    blobs.pop(entry["digest"])
    manifest_digest, manifest_blob = blob(manifest)
    entry.update(digest=manifest_digest, size=len(manifest_blob))
    blobs.update({config_digest: config_blob, manifest_digest: manifest_blob})
    files = {
        "oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
        "index.json": json.dumps(index).encode(),
    }
    path = out / f"{user.replace(':', '-')}.oci.tar"
    with tarfile.open(path, "w") as tar:
        for digest, data in blobs.items():
            files["blobs/sha256/" + digest.split(":", 1)[1]] = data
        for file_name, raw in files.items():
            info = tarfile.TarInfo(file_name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path


@pytest.fixture(scope="session")
def user_images(tmp_path_factory: pytest.TempPathFactory, runtime_env: RuntimeEnv) -> None:
    """busybox-user:nobody and :65534 in the session's registry (both runtimes pull them)."""
    out = tmp_path_factory.mktemp("user-images")
    for name, user in ((NOBODY_IMAGE, "nobody"), (NUMERIC_IMAGE, "65534:65534")):
        runtime_env.registry.push_archive(_user_image_archive(out, name, user))


@pytest.fixture
async def runner(runtime: ContainerRuntime, tmp_path: Path) -> AsyncIterator[PodRunner]:
    run = PodRunner(
        runtime,
        tmp_path / "kubelet",
        configmaps={"settings": {"mode": "fast"}},
        secrets={"creds": {"token": b"s3cret", "user": b"admin"}},
    )
    try:
        yield run
    finally:
        await run.close()


# ---- who the process is ------------------------------------------------------------------------


async def test_run_as_user_group_and_groups(runner: PodRunner) -> None:
    p = await runner.run(
        pod(
            "ids",
            f"""  securityContext:
    runAsUser: 1000
    runAsGroup: 3000
    fsGroup: 2000
    supplementalGroups: [4000]
  containers:
  - {{name: pod-level, image: "busybox:1.36", command: {SLEEP}}}
  - name: own
    image: busybox:1.36
    command: {SLEEP}
    securityContext: {{runAsUser: 1001}}
""",
        ),
        "pod-level",
        "own",
    )
    assert await runner.sh(p, "pod-level", "id -u") == "1000"
    assert await runner.sh(p, "pod-level", "id -g") == "3000"
    assert {"2000", "3000", "4000"} <= set((await runner.sh(p, "pod-level", "id -G")).split())
    assert await runner.sh(p, "own", "id -u") == "1001"  # the container's field wins
    assert await runner.sh(p, "own", "id -g") == "3000"
    # A group alone: the kubelet fills in the image's user (busybox names none: root).
    q = await runner.run(
        pod(
            "group-only",
            f"""  securityContext: {{runAsGroup: 3000}}
  containers:
  - {{name: app, image: "busybox:1.36", command: {SLEEP}}}
""",
        ),
        "app",
    )
    assert (await runner.sh(q, "app", "id -u"), await runner.sh(q, "app", "id -g")) == (
        "0",
        "3000",
    )


async def test_run_as_non_root_refuses_a_root_image(runner: PodRunner) -> None:
    p = runner.pod(
        pod(
            "nonroot",
            f"""  securityContext: {{runAsNonRoot: true}}
  containers:
  - {{name: strict, image: "busybox:1.36", command: {SLEEP}}}
  - name: relaxed
    image: busybox:1.36
    command: {SLEEP}
    securityContext: {{runAsNonRoot: false}}
  - name: explicit
    image: busybox:1.36
    command: {SLEEP}
    securityContext: {{runAsUser: 1000}}
""",
        )
    )
    result = await runner.until(p, "relaxed", "explicit")
    where = f'(pod: "nonroot_default({p.metadata.uid})", container: strict)'
    waiting = {s.name: s.state.waiting for s in runner.status(p, result).container_statuses}
    assert waiting["strict"].reason == "CreateContainerConfigError"
    assert waiting["strict"].message == (
        f"container has runAsNonRoot and image will run as root {where}"
    )
    assert "strict" not in {c.name for c in result.containers}  # never created
    assert await runner.sh(p, "explicit", "id -u") == "1000"


async def test_run_as_non_root_needs_a_numeric_image_user(
    runner: PodRunner, user_images: None
) -> None:
    p = runner.pod(
        pod(
            "named",
            f"""  securityContext: {{runAsNonRoot: true}}
  containers:
  - {{name: named, image: "{NOBODY_IMAGE}", command: {SLEEP}}}
  - {{name: numeric, image: "{NUMERIC_IMAGE}", command: {SLEEP}}}
""",
        )
    )
    result = await runner.until(p, "numeric", timeout=60)
    assert result.waiting["named"].reason == "CreateContainerConfigError"
    assert result.waiting["named"].message == (
        "container has runAsNonRoot and image has non-numeric user (nobody), cannot verify "
        f'user is non-root (pod: "named_default({p.metadata.uid})", container: named)'
    )
    assert await runner.sh(p, "numeric", "id -u") == "65534"


# ---- what the process may do -------------------------------------------------------------------


async def test_read_only_root_filesystem(runner: PodRunner) -> None:
    p = await runner.run(
        pod(
            "rofs",
            f"""  containers:
  - name: app
    image: busybox:1.36
    command: {SLEEP}
    securityContext: {{readOnlyRootFilesystem: true}}
    volumeMounts: [{{name: scratch, mountPath: /scratch}}]
  volumes: [{{name: scratch, emptyDir: {{}}}}]
""",
        ),
        "app",
    )
    denied = await runner.exec(p, "app", "touch", "/probe")
    assert denied.exit_code != 0 and b"Read-only file system" in denied.stderr, denied
    assert (await runner.exec(p, "app", "touch", "/scratch/ok")).exit_code == 0


async def test_capabilities_drop_all_and_add_back(
    runner: PodRunner, runtime_env: RuntimeEnv
) -> None:
    p = await runner.run(
        pod(
            "caps",
            f"""  containers:
  - name: none
    image: busybox:1.36
    command: {SLEEP}
    securityContext: {{capabilities: {{drop: [ALL]}}}}
  - name: raw
    image: busybox:1.36
    command: {SLEEP}
    securityContext: {{capabilities: {{drop: [ALL], add: [NET_RAW]}}}}
""",
        ),
        "none",
        "raw",
    )
    gateway = runtime_env.network.gateway
    arping = ["arping", "-c", "1", "-w", "2", "-I", "eth0", gateway]
    ping = ["ping", "-c", "1", "-W", "2", gateway]
    status = await runner.sh(p, "none", "cat /proc/self/status")
    assert status_line(status, "CapEff") == "0000000000000000"
    refused = await runner.exec(p, "none", *arping)
    assert refused.exit_code != 0 and b"Operation not permitted" in refused.stderr, refused
    # busybox's ping wants a raw socket too (it does not fall back to an ICMP datagram
    # socket, even where Docker's ping_group_range would allow one).
    no_ping = await runner.exec(p, "none", *ping)
    assert no_ping.exit_code != 0 and b"permission denied" in no_ping.stderr, no_ping
    status = await runner.sh(p, "raw", "cat /proc/self/status")
    assert int(status_line(status, "CapEff"), 16) == 1 << 13  # CAP_NET_RAW alone
    allowed = await runner.exec(p, "raw", *arping)
    assert allowed.exit_code == 0, allowed  # the node's bridge answers
    assert (await runner.exec(p, "raw", *ping)).exit_code == 0


def _bounding_set_is_full() -> bool:
    """Whether this machine's processes may hold every capability the kernel knows."""
    with open("/proc/self/status") as handle:
        bounding = int(status_line(handle.read(), "CapBnd"), 16)
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    return bounding == (1 << (last + 1)) - 1


PRIVILEGED = f"""  containers:
  - name: privileged
    image: busybox:1.36
    command: {SLEEP}
    securityContext: {{privileged: true}}
  - {{name: plain, image: "busybox:1.36", command: {SLEEP}}}
"""


async def test_privileged(runner: PodRunner) -> None:
    if runner.runtime.name == "docker" and not _bounding_set_is_full():
        # Docker 20.10 asks for every capability the kernel knows, and this machine's
        # bounding set lacks one (docker_security.py): the privileged container reaches
        # Docker as such, and Docker cannot start it. The plain one runs.
        p = runner.pod(pod("priv", PRIVILEGED))
        result = await runner.until(p, "plain")
        waiting = result.waiting["privileged"]
        assert waiting.reason == "RunContainerError", waiting
        assert "apply caps: operation not permitted" in waiting.message, waiting
        return
    p = await runner.run(pod("priv", PRIVILEGED), "privileged", "plain")
    mount = ["mount", "-t", "tmpfs", "tmpfs", "/tmp"]
    assert (await runner.exec(p, "privileged", *mount)).exit_code == 0
    assert (await runner.exec(p, "plain", *mount)).exit_code != 0
    full = await runner.sh(p, "privileged", "cat /proc/self/status")
    assert int(status_line(full, "CapEff"), 16) & (1 << 21)  # CAP_SYS_ADMIN
    devices = await runner.sh(p, "privileged", "ls /dev")
    plain = await runner.sh(p, "plain", "ls /dev")
    assert len(devices.split()) > len(plain.split())  # the node's devices


async def test_no_new_privs_and_seccomp(runner: PodRunner) -> None:
    p = await runner.run(
        pod(
            "nnp",
            f"""  securityContext:
    seccompProfile: {{type: RuntimeDefault}}
  containers:
  - name: confined
    image: busybox:1.36
    command: {SLEEP}
    securityContext: {{allowPrivilegeEscalation: false}}
  - name: unconfined
    image: busybox:1.36
    command: {SLEEP}
    securityContext: {{seccompProfile: {{type: Unconfined}}}}
""",
        ),
        "confined",
        "unconfined",
    )
    confined = await runner.sh(p, "confined", "cat /proc/self/status")
    assert status_line(confined, "NoNewPrivs") == "1"
    assert status_line(confined, "Seccomp") == "2"  # the pod's RuntimeDefault
    unconfined = await runner.sh(p, "unconfined", "cat /proc/self/status")
    assert status_line(unconfined, "NoNewPrivs") == "0"
    assert status_line(unconfined, "Seccomp") == "0"  # the container's field wins
    q = await runner.run(
        pod(
            "defaults",
            f"  containers:\n  - {{name: app, image: 'busybox:1.36', command: {SLEEP}}}\n",
        ),
        "app",
    )
    plain = await runner.sh(q, "app", "cat /proc/self/status")
    assert (status_line(plain, "Seccomp"), status_line(plain, "NoNewPrivs")) == ("0", "0")


async def test_host_namespaces(runner: PodRunner) -> None:
    p = await runner.run(
        pod(
            "hostns",
            f"""  hostPID: true
  hostIPC: true
  containers:
  - {{name: app, image: "busybox:1.36", command: {SLEEP}}}
""",
        ),
        "app",
    )
    q = await runner.run(
        pod(
            "shared",
            f"""  shareProcessNamespace: true
  containers:
  - {{name: app, image: "busybox:1.36", command: {SLEEP}}}
""",
        ),
        "app",
    )
    for kind in ("pid", "ipc"):
        mine = await runner.sh(p, "app", f"readlink /proc/self/ns/{kind}")
        assert mine == os.readlink(f"/proc/self/ns/{kind}")  # the node's (the test's)
        assert await runner.sh(q, "app", f"readlink /proc/self/ns/{kind}") != mine
    assert "/pause" in await runner.sh(q, "app", "ps -o args")


# ---- volumes -----------------------------------------------------------------------------------


async def test_fs_group_owns_the_volumes(runner: PodRunner) -> None:
    p = await runner.run(
        pod(
            "fsgroup",
            f"""  securityContext: {{runAsUser: 1000, fsGroup: 2000}}
  containers:
  - name: app
    image: busybox:1.36
    command: {SLEEP}
    volumeMounts:
    - {{name: scratch, mountPath: /scratch}}
    - {{name: conf, mountPath: /etc/conf}}
    - {{name: creds, mountPath: /etc/creds}}
  volumes:
  - {{name: scratch, emptyDir: {{}}}}
  - {{name: conf, configMap: {{name: settings}}}}
  - {{name: creds, secret: {{secretName: creds, defaultMode: 0440}}}}
""",
        ),
        "app",
    )
    assert "2000" in (await runner.sh(p, "app", "id -G")).split()
    assert await runner.sh(p, "app", "stat -c '%g %A' /scratch") == "2000 drwxrwsrwx"
    await runner.sh(p, "app", "echo hi > /scratch/mine")
    assert await runner.sh(p, "app", "stat -c '%u %g' /scratch/mine") == "1000 2000"
    assert await runner.sh(p, "app", "stat -L -c '%g %a' /etc/conf/mode") == "2000 644"
    assert await runner.sh(p, "app", "stat -L -c '%g %a' /etc/creds/token") == "2000 440"
    assert await runner.sh(p, "app", "cat /etc/creds/token") == "s3cret"  # via the group


async def test_secret_volume_is_a_read_only_tmpfs(runner: PodRunner) -> None:
    p = await runner.run(
        pod(
            "secrets",
            f"""  containers:
  - name: app
    image: busybox:1.36
    command: {SLEEP}
    volumeMounts:
    - {{name: all, mountPath: /etc/all}}
    - {{name: picked, mountPath: /etc/picked}}
  volumes:
  - {{name: all, secret: {{secretName: creds}}}}
  - name: picked
    secret:
      secretName: creds
      defaultMode: 0400
      items: [{{key: token, path: t}}, {{key: user, path: u, mode: 0600}}]
""",
        ),
        "app",
    )
    assert await runner.sh(p, "app", "awk '$2 == \"/etc/all\" {print $3}' /proc/mounts") == "tmpfs"
    assert await runner.sh(p, "app", "stat -L -c %a /etc/all/token") == "644"
    assert await runner.sh(p, "app", "stat -L -c %a /etc/picked/t /etc/picked/u") == "400\n600"
    denied = await runner.exec(p, "app", "touch", "/etc/all/planted")
    assert denied.exit_code != 0 and b"Read-only file system" in denied.stderr, denied
    volume = runner.pod_dir(p) / "volumes" / "kubernetes.io~secret" / "all"
    mounts = {m.path: m.fstype for m in SystemMounter().mount_points()}
    assert mounts.get(str(volume.resolve())) == "tmpfs"  # on the node: memory, not disk
    await runner.remove(p)
    assert not SystemMounter().mounts_under(str(runner.pod_dir(p)))
    assert not runner.pod_dir(p).exists()


async def test_subpath_symlink_out_of_the_volume_is_refused(
    runner: PodRunner, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    p = runner.pod(
        pod(
            "subpath",
            f"""  initContainers:
  - name: plant
    image: busybox:1.36
    command: ["sh", "-c", "ln -s {outside} /data/escape && ln -s / /data/root &&
      mkdir -p /data/inner && echo inside > /data/inner/file && ln -s inner /data/alias"]
    volumeMounts: [{{name: data, mountPath: /data}}]
  containers:
  - name: victim
    image: busybox:1.36
    command: {SLEEP}
    volumeMounts: [{{name: data, mountPath: /mnt, subPath: escape/made-by-kubelet}}]
  - name: rooted
    image: busybox:1.36
    command: {SLEEP}
    volumeMounts: [{{name: data, mountPath: /mnt, subPath: root/etc}}]
  - name: fine
    image: busybox:1.36
    command: {SLEEP}
    volumeMounts:
    - {{name: data, mountPath: /in, subPath: alias}}
    - {{name: data, mountPath: /new, subPath: made/here}}
  volumes: [{{name: data, emptyDir: {{}}}}]
""",
        )
    )
    result = await runner.until(p, "fine")
    for name in ("victim", "rooted"):
        assert result.waiting[name].reason == "CreateContainerConfigError"
        assert result.waiting[name].message == (
            f'failed to prepare subPath for volumeMount "data" of container "{name}"'
        )
    assert list(outside.iterdir()) == []  # nothing written outside the volume
    assert await runner.sh(p, "fine", "cat /in/file") == "inside"
    await runner.sh(p, "fine", "touch /new/x")
    volume = runner.pod_dir(p) / "volumes" / "kubernetes.io~empty-dir" / "data"
    assert (volume / "made" / "here" / "x").exists()
    assert not SystemMounter().mounts_under(str(runner.pod_dir(p)))  # the pins are gone
