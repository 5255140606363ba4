"""What `tinykube up` needs from the host, checked before anything is started.

A cluster that fails half-way through because `nft` is missing leaves the
user reading a containerd log to find out; kind checks for Docker first for
the same reason. `check()` returns one line per missing thing, naming the
Debian package that provides it, so the fix is one `apt-get install`:

    $ tinykube up
    error: tinykube up cannot start:
      - not running as root (namespaces, mounts and nftables need it): run it with sudo
      - docker-registry not found: apt-get install docker-registry

What is checked:

* root: creating network namespaces, mounting overlays and programming
  nftables all need CAP_SYS_ADMIN / CAP_NET_ADMIN;
* /proc/sys/net exists (a kernel with network namespaces and sysctls);
* as root, the kernel features the cluster uses, tried for real in a
  throw-away namespace (`tk-prereq-<pid>`, deleted at once): a bridge, a
  veth pair, a VXLAN device and an nftables table -- a missing module
  shows up here, not as a netplugin crash later;
* every binary the cluster runs, by the package that ships it (the table
  below); the Docker runtime adds dockerd.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable

# binary -> the Debian package that provides it
BINARIES: dict[str, str] = {
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "nft": "nftables",
    "ip": "iproute2",
    "bridge": "iproute2",
    "nsenter": "util-linux",
    "sysctl": "procps",
    "docker-registry": "docker-registry",
    "gcc": "gcc",
    "ldd": "libc-bin",
}
FILES: dict[str, str] = {
    "/usr/sbin/nginx": "nginx-light",
    "/bin/busybox": "busybox-static",
    "/usr/lib/cni/loopback": "containernetworking-plugins",
}
DOCKER_BINARIES: dict[str, str] = {"dockerd": "docker.io"}


def check(
    runtime: str = "containerd",
    *,
    which: Callable[[str], str | None] = shutil.which,
    exists: Callable[[str], bool] = os.path.exists,
    euid: Callable[[], int] = os.geteuid,
    kernel: Callable[[], list[str]] | None = None,
) -> list[str]:
    """Problems that stop `tinykube up`, each with its fix; [] when all is there."""
    problems: list[str] = []
    if euid() != 0:
        problems.append(
            "not running as root (namespaces, mounts and nftables need it): run it with sudo"
        )
    if not exists("/proc/sys/net"):
        problems.append("/proc/sys/net is missing: the kernel lacks network namespace support")
    binaries = dict(BINARIES)
    if runtime == "docker":
        binaries.update(DOCKER_BINARIES)
    missing: dict[str, list[str]] = {}
    for binary, package in binaries.items():
        if which(binary) is None:
            missing.setdefault(package, []).append(binary)
    for path, package in FILES.items():
        if not exists(path):
            missing.setdefault(package, []).append(path)
    for package, what in sorted(missing.items()):
        problems.append(f"{', '.join(what)} not found: apt-get install {package}")
    if not problems and euid() == 0:
        problems.extend((kernel or kernel_problems)())
    return problems


KERNEL_TRIALS = (
    ("a bridge", ["ip", "link", "add", "br-probe", "type", "bridge"]),
    ("a veth pair", ["ip", "link", "add", "ve-probe", "type", "veth", "peer", "name", "ve-peer"]),
    ("a VXLAN device (module vxlan)", ["ip", "link", "add", "vx-probe", "type", "vxlan", "id", "1",
                                        "dstport", "8472", "nolearning"]),
    ("an nftables table (nf_tables)", ["nft", "add", "table", "ip", "tkprobe"]),
)  # fmt: skip


def kernel_problems() -> list[str]:
    """Try each kernel feature in a throw-away namespace; what failed, with the error."""
    name = f"tk-prereq-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        return [f"cannot create a network namespace: {made.stderr.strip()}"]
    problems = []
    try:
        for what, argv in KERNEL_TRIALS:
            tried = subprocess.run(
                ["nsenter", f"--net=/run/netns/{name}", "--", *argv],
                capture_output=True,
                text=True,
                check=False,
            )
            if tried.returncode != 0:
                problems.append(f"the kernel cannot make {what}: {tried.stderr.strip()}")
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
    return problems


def missing_packages(problems: list[str]) -> list[str]:
    """The package names mentioned in `problems` (for one combined install line)."""
    return [p.rsplit("apt-get install ", 1)[1] for p in problems if "apt-get install " in p]
