"""The local cluster's image registry, in the underlay namespace on 10.201.0.1:5000.

A Vagrant VM pulls `nginx:latest` from Docker Hub; a namespace node has no
route to the internet (DESIGN §5), so `tinykube up` runs Debian's
`docker-registry` where "the host on the private network" would be -- the
underlay namespace, on its bridge address -- and every node's containerd
mirrors docker.io and registry.k8s.io to it (nodeconfig.render_registry_hosts).
Pulls then go through CRI PullImage exactly as on a VM, and a pod with
`imagePullPolicy: Always` works.

Why not localcluster.registry.LocalRegistry as it is: it listens on the
host's loopback, which node namespaces cannot reach. `UnderlayRegistry`
reuses its push code (the registry's HTTP API) and changes where it runs:

    nsenter --net=/run/netns/tk-demo-ul -- docker-registry serve <dir>/registry/config.yml
        http.addr: 10.201.0.1:5000, storage: <dir>/registry/data

The host has no address on the underlay either, so readiness and pushes run
inside the namespace too: readiness is `busybox wget http://10.201.0.1:5000/v2/`,
and the push is this module run as a program in the namespace:

    nsenter --net=/run/netns/tk-demo-ul -- python -m localcluster.mirror push \\
        10.201.0.1:5000 /var/lib/tinykube/images/nginx.oci.tar ...

The images are built once per host (localcluster.images, cached under
/var/lib/tinykube/images) and pushed once per cluster.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from localcluster import images
from localcluster.clusterstate import ProcessRecord
from localcluster.netns import NetNS
from localcluster.node import NodeError, spawn, stop_process
from localcluster.registry import LocalRegistry

REGISTRY_PORT = 5000
IMAGE_CACHE = Path("/var/lib/tinykube/images")  # + a hash of images.py: rebuilt when it changes


class UnderlayRegistry(LocalRegistry):
    """`docker-registry serve` inside `ns`, on host:port, storage under `base`."""

    def __init__(self, base: Path, ns: NetNS, host: str, port: int = REGISTRY_PORT) -> None:
        super().__init__(base, port)
        self.ns = ns
        self.host = host

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def ready(self) -> bool:
        probe = ["busybox", "wget", "-q", "-O", "/dev/null", f"http://{self.address}/v2/"]
        return self.ns.exec(probe, check=False, timeout=5).returncode == 0

    def start_in_namespace(
        self, log_path: Path, timeout: float = 15.0
    ) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
        config = self.write_config()
        proc, record = spawn(["docker-registry", "serve", str(config)], log_path, self.ns)
        deadline = time.monotonic() + timeout
        while not self.ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_process(record, 2.0)
                raise NodeError("registry", str(log_path), "did not answer on /v2/")
            time.sleep(0.1)
        return proc, record

    def push_in_namespace(self, archives: Sequence[Path]) -> list[str]:
        """Push the archives from inside the namespace; the image names pushed."""
        argv = [
            *self.ns.prefix(),
            sys.executable,
            "-m",
            "localcluster.mirror",
            "push",
            self.address,
            *map(str, archives),
        ]
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
        if result.returncode != 0:
            raise NodeError("registry push", "", result.stderr.strip()[-2000:])
        return result.stdout.split()


def image_cache() -> Path:
    """Where the archives of this images.py and these host binaries are kept.

    The key hashes images.py and the size and mtime of the binaries copied in
    (nginx, busybox): a change to either builds the images again.
    """
    import hashlib

    digest = hashlib.sha256(Path(images.__file__).read_bytes())
    for binary in (images.NGINX_BINARY, images.BUSYBOX_BINARY):
        try:
            info = Path(binary).stat()
            digest.update(f"{binary}:{info.st_size}:{info.st_mtime_ns}".encode())
        except OSError:
            pass
    return IMAGE_CACHE / digest.hexdigest()[:12]


def build_images() -> list[Path]:
    """The offline images' archives, built once per host (under a lock: two `up`s at once)."""
    import fcntl

    cache = image_cache()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return images.build_all(cache)


class _Pusher(LocalRegistry):
    """LocalRegistry's push code aimed at an address (run inside the underlay namespace)."""

    def __init__(self, address: str) -> None:
        super().__init__(Path("/nonexistent"), int(address.rsplit(":", 1)[1]))
        self._address = address

    @property
    def address(self) -> str:
        return self._address


def main(argv: Sequence[str]) -> int:
    if len(argv) < 2 or argv[0] != "push":
        print("usage: python -m localcluster.mirror push HOST:PORT ARCHIVE...", file=sys.stderr)
        return 2
    pusher = _Pusher(argv[1])
    for archive in argv[2:]:
        for name in pusher.push_archive(Path(archive)):
            print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
