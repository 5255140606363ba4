"""The host's side of the offline VM test (`make vm-e2e`): everything the VMs install.

The test's VMs have no route to the internet (their libvirt networks forward
nowhere), so what the provisioning would fetch from Debian, PyPI and Docker
Hub comes from the host, on the host's address on the VMs' private network
only (192.168.56.1 by default), never on a wildcard address:

    http://ADDR:8080/apt/        the flat apt repository vagrant/box/build.sh
                                 made beside the box (prerequisites.sh's
                                 TINYKUBE_APT_MIRROR)
    http://ADDR:8080/wheels/     a pip wheelhouse: tinykube's dependencies,
                                 built for the VMs' CPython 3.11 on x86-64
                                 (tinykube.sh's PIP_FIND_LINKS, with PIP_NO_INDEX)
    ADDR:5000                    Debian's docker-registry with the offline
                                 images (nginx, busybox, pause; localcluster/
                                 images.py), which each node's containerd uses
                                 as the mirror of docker.io and registry.k8s.io
                                 (render-config --registry-mirror)

Run by vagrant/test/vm-e2e.sh:

    python -m localcluster.vmmirror wheels CACHE_DIR       # once per pyproject
    python -m localcluster.vmmirror serve --address 192.168.56.1 --dir CACHE_DIR

`serve` prints "mirror ready" once all three answer and runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import http.server
import importlib.metadata
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType

from localcluster.mirror import REGISTRY_PORT, build_images
from localcluster.registry import LocalRegistry

HTTP_PORT = 8080
REPO = Path(__file__).resolve().parent.parent
# The VMs' interpreter: Debian 12's python3 (3.11) on x86-64, glibc 2.36.
WHEEL_TARGET = [
    "--only-binary=:all:",
    "--implementation=cp",
    "--python-version=3.11",
    "--abi=cp311",
    "--abi=abi3",
    "--abi=none",
    # pip does not widen a --platform to older glibc levels: each level a wheel may carry
    *(f"--platform=manylinux_2_{minor}_x86_64" for minor in range(17, 37)),
    "--platform=manylinux2014_x86_64",
    "--platform=any",
]


def requirements(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """What `pip install /opt/tinykube/src` needs offline: the dependencies and the build's.

    The dependencies as the installed tinykube declares them (not its extras);
    the build's from pyproject.toml's [build-system] `requires` line.
    """
    declared = importlib.metadata.requires("tinykube") or []
    deps = [req for req in declared if "extra ==" not in req]
    build = re.search(r"^requires\s*=\s*\[(.*)\]", pyproject.read_text(), re.MULTILINE)
    build_reqs = re.findall(r'"([^"]+)"', build.group(1)) if build else ["setuptools"]
    return [*deps, *build_reqs, "pip"]


def wheelhouse(cache: Path, reqs: list[str]) -> Path:
    """cache/wheels-<hash of the requirements>: downloaded once, then reused."""
    key = hashlib.sha256("\n".join(sorted(reqs)).encode()).hexdigest()[:12]
    return cache / f"wheels-{key}"


def download_wheels(cache: Path) -> Path:
    """`pip download` the requirements for the VMs into the wheelhouse (if not there yet)."""
    reqs = requirements()
    dest = wheelhouse(cache, reqs)
    if (dest / ".complete").exists():
        return dest
    partial = dest.with_name(dest.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--dest",
            str(partial),
            *WHEEL_TARGET,
            *reqs,
        ],
        check=True,
    )
    (partial / ".complete").write_text("\n".join(reqs) + "\n")
    partial.rename(dest)
    return dest


class AddressedRegistry(LocalRegistry):
    """docker-registry on a given address (the host's end of the VMs' private network)."""

    def __init__(self, base: Path, host: str, port: int = REGISTRY_PORT) -> None:
        super().__init__(base, port)
        self.host = host

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Files and directory listings (pip reads a listing as a find-links page), logged."""

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"vmmirror http: {self.address_string()} {format % args}\n")


def serve_files(address: str, root: Path, port: int = HTTP_PORT) -> http.server.ThreadingHTTPServer:
    """An HTTP server of `root` on address:port, serving from a thread."""
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer((address, port), handler)
    threading.Thread(target=server.serve_forever, name="vmmirror-http", daemon=True).start()
    return server


def link_tree(cache: Path, wheels: Path) -> Path:
    """cache/www: apt/ and wheels/ as the HTTP server shows them (symlinks into the cache)."""
    www = cache / "www"
    www.mkdir(parents=True, exist_ok=True)
    for name, target in (("apt", cache / "apt"), ("wheels", wheels)):
        link = www / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    return www


def serve(address: str, cache: Path) -> int:
    """Serve until SIGTERM or SIGINT; returns the exit status."""
    if not (cache / "apt" / "Packages.gz").exists():
        print(f"vmmirror: no apt repository in {cache / 'apt'} (vagrant/box/build.sh)", flush=True)
        return 1
    www = link_tree(cache, download_wheels(cache))
    registry = AddressedRegistry(cache / "registry", address)
    registry.start(timeout=30)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        pushed = [name for archive in build_images() for name in registry.push_archive(archive)]
        server = serve_files(address, www)
        print(f"mirror ready: http://{address}:{HTTP_PORT}/ and registry {registry.address}")
        print(f"  images: {', '.join(pushed)}", flush=True)
        stop.wait()
        server.shutdown()
    finally:
        registry.stop()
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcluster.vmmirror")
    sub = parser.add_subparsers(dest="command", required=True)
    wheels = sub.add_parser("wheels", help="download the VMs' wheelhouse into CACHE_DIR")
    wheels.add_argument("cache", type=Path)
    serve_cmd = sub.add_parser("serve", help="serve apt, wheels and images on ADDRESS")
    serve_cmd.add_argument("--address", required=True)
    serve_cmd.add_argument("--dir", dest="cache", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "wheels":
        print(download_wheels(args.cache))
        return 0
    return serve(args.address, args.cache)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
