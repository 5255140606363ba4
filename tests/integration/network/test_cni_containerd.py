"""containerd's CRI plugin runs tinykube-cni: the node as `tinykube up` builds it.

A private containerd (localcluster/containerd.py) is started *inside* a node
namespace, with its CNI bin_dir filled by install_bin_dir() (tinykube-cni and
the system's loopback) and its conf_dir holding the conflist the node agent
would write (render_conflist + write_conflist). RunPodSandbox must then call
our ADD (containerd runs CNI plugins in its own network namespace: the node's),
report the address our IPAM reserved, and StopPodSandbox must call DEL.

containerd is put in the node namespace by forking it from a thread that has
setns()ed there: a child inherits its forking thread's namespaces, and the
test's other threads stay in the host namespace.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from kubelet.runtime.cri import CRIRuntime
from kubelet.runtime.interface import PodSandboxConfig
from localcluster import images
from localcluster.containerd import Containerd, ContainerdConfig
from localcluster.netns import Machine, Underlay
from netplugin.cni.config import render_conflist, write_conflist
from netplugin.cni.install import install_bin_dir, system_plugin
from netplugin.cni.plugin import host_veth_name

CLONE_NEWNET = 0x40000000
T = TypeVar("T")


def _missing() -> list[str]:
    out = [t for t in ("containerd", "runc", "ctr", "gcc") if shutil.which(t) is None]
    if system_plugin("loopback") is None:
        out.append("CNI loopback plugin (containernetworking-plugins)")
    return out


pytestmark = pytest.mark.skipif(bool(_missing()), reason="missing: " + ", ".join(_missing()))


def in_netns(netns: Path, func: Callable[[], T]) -> T:
    """Run func in a thread that entered `netns`; processes it forks are born there."""
    box: dict[str, T] = {}
    errors: list[BaseException] = []

    def target() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(netns, os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns {netns}")
        finally:
            os.close(fd)
        try:
            box["result"] = func()
        except BaseException as e:  # handed to the caller's thread
            errors.append(e)

    thread = threading.Thread(target=target, name="in-netns")
    thread.start()
    thread.join()  # the thread ends, and its namespace with it; the process is unchanged
    if errors:
        raise errors[0]
    return box["result"]


@pytest.fixture
def node(underlay: Underlay) -> Machine:
    return underlay.add_machine("node1", 1)


@pytest.fixture
def base() -> Iterator[Path]:
    """A short directory (containerd's socket path must fit in 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="tkcni-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def containerd(node: Machine, base: Path) -> Iterator[Containerd]:
    bin_dir, conf_dir = base / "cni" / "bin", base / "cni" / "net.d"
    install_bin_dir(str(bin_dir))
    conflist = render_conflist("10.244.1.0/24", data_dir=str(base / "ipam"))
    assert write_conflist(str(conf_dir), conflist)
    (archive,) = images.build_all(base / "images", which=("pause",))
    config = ContainerdConfig(
        base=base / "ctrd",
        sandbox_image=images.PAUSE_IMAGE,
        cni_bin_dir=str(bin_dir),
        cni_conf_dir=str(conf_dir),
    )
    daemon = Containerd(config)
    try:
        in_netns(node.ns.path, daemon.start)
        images.import_archive(archive, config.socket)
        yield daemon
    finally:
        daemon.stop()  # removes the sandboxes (CNI DEL), stops containerd, unmounts


async def test_containerd_wires_sandboxes_with_tinykube_cni(
    node: Machine, containerd: Containerd, base: Path
) -> None:
    runtime = CRIRuntime(containerd.endpoint, log_root=str(base / "logs"))
    ipam_dir = base / "ipam" / "tinykube"
    try:
        status = await runtime.status()
        assert status.network_ready, status.message
        started = time.monotonic()
        one = await runtime.run_pod_sandbox(PodSandboxConfig("web-0", "default", "uid-0"))
        first_sandbox = time.monotonic() - started
        two = await runtime.run_pod_sandbox(PodSandboxConfig("web-1", "default", "uid-1"))
        assert {one.ip, two.ip} <= {"10.244.1.2", "10.244.1.3"} and one.ip != two.ip
        reserved = {p.name: p.read_text().split() for p in ipam_dir.iterdir() if p.name[0] == "1"}
        assert reserved == {one.ip: [one.id, "eth0"], two.ip: [two.id, "eth0"]}
        links = node.ns.ip("-o", "link", "show", "master", "tk0").stdout
        assert host_veth_name(one.id, "eth0") in links and host_veth_name(two.id, "eth0") in links
        assert "10.244.1.1/24" in node.ns.ip("-o", "addr", "show", "dev", "tk0").stdout

        await runtime.stop_pod_sandbox(one.id)  # containerd calls DEL
        await runtime.remove_pod_sandbox(one.id)
        assert sorted(p.name for p in ipam_dir.iterdir() if p.name[0] == "1") == [two.ip]
        assert host_veth_name(one.id, "eth0") not in node.ns.ip("-o", "link").stdout
        print(f"first RunPodSandbox with tinykube-cni: {first_sandbox:.3f}s")
    finally:
        await runtime.close()
