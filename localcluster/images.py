"""Container images built offline, in Python: pause, busybox and nginx as OCI archives.

No registry is reachable from these machines (DESIGN §6), so the images a
cluster needs are made from what the host has: one layer tar of host files,
an image config, a manifest and an index, packed as an OCI image layout in a
tar archive, which `ctr images import` loads into containerd's content store.

The OCI image layout, as written here (every blob named by its sha256):

    oci-layout                   {"imageLayoutVersion": "1.0.0"}
    index.json                   one manifest descriptor per tag, annotated with
                                 io.containerd.image.name = "docker.io/library/nginx:1.25"
    blobs/sha256/<layer>         an uncompressed tar of the root filesystem
    blobs/sha256/<config>        {"architecture", "os", "config": {Entrypoint, Cmd, Env, ...},
                                  "rootfs": {"diff_ids": [sha256 of the layer tar]}}
    blobs/sha256/<manifest>      {"config": descriptor, "layers": [descriptor]}

Worked example: the pause image. `pause.c` (below) is compiled with
`gcc -static` into a ~700 KiB binary with no libraries; the layer holds
/pause alone; the config says Entrypoint ["/pause"]; the index names it
`registry.k8s.io/pause:3.9`, the name containerd's `sandbox_image` is set
to, so RunPodSandbox finds it without pulling.

The images:

* pause: the sandbox's first process: it holds the namespaces, reaps
  zombies (it is PID 1 when the pod shares a PID namespace), and exits on
  SIGTERM/SIGINT.
* busybox (`docker.io/library/busybox:latest` and `:1.36`): Debian's
  busybox-static with a symlink per applet in /bin: `sh`, `httpd`, `sleep`,
  `cat`, `wget`... for tests.
* nginx (`docker.io/library/nginx:latest` and `:1.25`): Debian's nginx
  binary, the shared libraries `ldd` lists, a minimal /etc (passwd and group
  with www-data), an nginx.conf running in the foreground (`daemon off;`)
  on port 80, and a default page saying "Welcome to nginx!" and, through
  nginx's SSI, "Served by pod <hostname> at <address>" -- the pod's name
  and IP, so a test can tell which replica answered; busybox's
  applets are included so `tinykube exec ... -- cat /etc/nginx/nginx.conf`
  works as on the real image.

Layers are deterministic (sorted entries, mtime 0, uid 0), so building twice
gives the same digests and containerd keeps one copy.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from localcluster.containerd import K8S_NAMESPACE

log = logging.getLogger(__name__)

PAUSE_IMAGE = "registry.k8s.io/pause:3.9"
BUSYBOX_IMAGES = ("docker.io/library/busybox:latest", "docker.io/library/busybox:1.36")
NGINX_IMAGES = ("docker.io/library/nginx:latest", "docker.io/library/nginx:1.25")
NGINX_WELCOME = "Welcome to nginx!"

BUSYBOX_BINARY = "/bin/busybox"  # Debian's busybox-static
NGINX_BINARY = "/usr/sbin/nginx"  # Debian's nginx-light / nginx-core
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"

PAUSE_C = r"""
/* tinykube's pause: hold the pod's namespaces, reap orphans, stop on request. */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }

static void reap(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = reap;
    sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
    sigaction(SIGCHLD, &sa, NULL);
    for (;;)
        pause();
    return 0;
}
"""

NGINX_CONF = """# tinykube's offline nginx image: one worker, in the foreground, port 80.
user www-data;
worker_processes 1;
daemon off;
pid /run/nginx.pid;
error_log /dev/stderr notice;

events {
    worker_connections 256;
}

http {
    types {
        text/html html htm;
        text/plain txt;
        text/css css;
        application/javascript js;
    }
    default_type application/octet-stream;
    access_log /dev/stdout;
    sendfile on;
    keepalive_timeout 65;

    server {
        listen 80 default_server;
        server_name _;
        root /usr/share/nginx/html;
        index index.html;
        ssi on;  # the page names the pod serving it: $hostname is the pod's name
    }
}
"""

NGINX_INDEX = """<!DOCTYPE html>
<html>
<head><title>Welcome to nginx!</title></head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. This copy was built offline by tinykube from the host's nginx.</p>
<p>Served by pod <!--# echo var="hostname" --> at <!--# echo var="server_addr" -->.</p>
</body>
</html>
"""


class ImageBuildError(RuntimeError):
    """A host tool or file an image needs is missing."""


@dataclass
class Layer:
    """A root filesystem under construction: path in the image -> entry."""

    entries: dict[str, tarfile.TarInfo] = field(default_factory=dict)
    data: dict[str, bytes] = field(default_factory=dict)

    def _parents(self, path: str) -> None:
        parts = path.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            self.add_dir("/".join(parts[:i]))

    def add_dir(self, path: str, mode: int = 0o755) -> None:
        name = path.strip("/")
        if not name or name in self.entries:
            return
        self._parents(name)
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        info.mode = mode
        self.entries[name] = info

    def add_bytes(self, path: str, content: bytes, mode: int = 0o644) -> None:
        name = path.strip("/")
        self._parents(name)
        info = tarfile.TarInfo(name)
        info.size = len(content)
        info.mode = mode
        self.entries[name] = info
        self.data[name] = content

    def add_host_file(self, path: str, source: str | Path = "") -> None:
        """Copy a host file (following symlinks) to `path`, keeping its mode."""
        src = Path(source or path)
        try:
            content = src.read_bytes()
            mode = src.stat().st_mode & 0o7777
        except OSError as err:
            raise ImageBuildError(f"cannot read {src}: {err}") from err
        self.add_bytes(path, content, mode)

    def add_symlink(self, path: str, target: str) -> None:
        name = path.strip("/")
        self._parents(name)
        info = tarfile.TarInfo(name)
        info.type = tarfile.SYMTYPE
        info.linkname = target
        info.mode = 0o777
        self.entries[name] = info

    def tar(self) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in sorted(self.entries):
                info = self.entries[name]
                info.mtime = 0
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                content = self.data.get(name)
                tar.addfile(info, io.BytesIO(content) if content is not None else None)
        return buf.getvalue()


@dataclass
class Image:
    """An image to write: names (full references), one layer, the runtime config."""

    names: Sequence[str]
    layer: Layer
    entrypoint: Sequence[str] = ()
    cmd: Sequence[str] = ()
    env: Sequence[str] = (f"PATH={DEFAULT_PATH}",)
    working_dir: str = ""
    exposed_ports: Sequence[str] = ()  # "80/tcp"
    stop_signal: str = ""


def _descriptor(media_type: str, blob: bytes) -> dict[str, object]:
    return {
        "mediaType": media_type,
        "digest": "sha256:" + hashlib.sha256(blob).hexdigest(),
        "size": len(blob),
    }


def _json(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def oci_blobs(image: Image) -> tuple[dict[str, bytes], dict[str, object]]:
    """The image's blobs by digest, and index.json."""
    layer = image.layer.tar()
    layer_desc = _descriptor(MEDIA_LAYER, layer)
    runtime: dict[str, object] = {"Env": list(image.env)}
    if image.entrypoint:
        runtime["Entrypoint"] = list(image.entrypoint)
    if image.cmd:
        runtime["Cmd"] = list(image.cmd)
    if image.working_dir:
        runtime["WorkingDir"] = image.working_dir
    if image.exposed_ports:
        runtime["ExposedPorts"] = {port: {} for port in image.exposed_ports}
    if image.stop_signal:
        runtime["StopSignal"] = image.stop_signal
    config = _json(
        {
            "architecture": _goarch(),
            "os": "linux",
            "config": runtime,
            "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]},
            "history": [{"created_by": "tinykube localcluster/images.py"}],
        }
    )
    config_desc = _descriptor(MEDIA_CONFIG, config)
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": config_desc,
            "layers": [layer_desc],
        }
    )
    manifest_desc = _descriptor(MEDIA_MANIFEST, manifest)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                **manifest_desc,
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1],
                },
            }
            for name in image.names
        ],
    }
    blobs = {
        str(desc["digest"]): blob
        for desc, blob in ((layer_desc, layer), (config_desc, config), (manifest_desc, manifest))
    }
    return blobs, index


def write_archive(image: Image, path: Path) -> Path:
    """Write the image as an OCI layout in a tar archive (what `ctr images import` reads)."""
    blobs, index = oci_blobs(image)
    files = {"oci-layout": _json({"imageLayoutVersion": "1.0.0"}), "index.json": _json(index)}
    for digest, blob in blobs.items():
        files["blobs/sha256/" + digest.split(":", 1)[1]] = blob
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    with tarfile.open(tmp, mode="w") as tar:
        for name in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    tmp.replace(path)
    return path


def _goarch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


# ---- the three images ------------------------------------------------------------------------


def _minimal_etc(layer: Layer, users: Iterable[tuple[str, int]] = ()) -> None:
    passwd = ["root:x:0:0:root:/root:/bin/sh"]
    group = ["root:x:0:"]
    for name, uid in users:
        passwd.append(f"{name}:x:{uid}:{uid}:{name}:/nonexistent:/usr/sbin/nologin")
        group.append(f"{name}:x:{uid}:")
    passwd.append("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin")
    group.append("nogroup:x:65534:")
    layer.add_bytes("/etc/passwd", ("\n".join(passwd) + "\n").encode())
    layer.add_bytes("/etc/group", ("\n".join(group) + "\n").encode())
    layer.add_bytes("/etc/nsswitch.conf", b"passwd: files\ngroup: files\nhosts: files dns\n")
    layer.add_dir("/tmp", 0o1777)
    layer.add_dir("/root", 0o700)
    for name in ("proc", "sys", "dev", "run", "var", "etc"):
        layer.add_dir(name)


def _add_busybox(layer: Layer, binary: str = BUSYBOX_BINARY) -> None:
    """The static busybox plus a /bin symlink per applet it has (not overwriting files)."""
    if not Path(binary).exists():
        raise ImageBuildError(f"{binary} is missing: install busybox-static")
    layer.add_host_file("/bin/busybox", binary)
    listed = subprocess.run([binary, "--list"], capture_output=True, text=True, check=True)
    for applet in listed.stdout.split():
        if "/" in applet or applet == "busybox":
            continue
        path = f"bin/{applet}"
        if path not in layer.entries:
            layer.add_symlink(path, "busybox")


def compile_pause(workdir: Path) -> Path:
    """Build the static pause binary with gcc; returns its path."""
    if shutil.which("gcc") is None:
        raise ImageBuildError("gcc is missing: install gcc and libc6-dev")
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / "pause.c"
    source.write_text(PAUSE_C)
    binary = workdir / "pause"
    result = subprocess.run(
        ["gcc", "-static", "-Os", "-s", "-o", str(binary), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ImageBuildError(f"gcc -static failed (libc6-dev installed?): {result.stderr}")
    return binary


def pause_image(workdir: Path, name: str = PAUSE_IMAGE) -> Image:
    layer = Layer()
    layer.add_host_file("/pause", compile_pause(workdir))
    return Image(names=(name,), layer=layer, entrypoint=("/pause",), env=())


def busybox_image(names: Sequence[str] = BUSYBOX_IMAGES) -> Image:
    layer = Layer()
    _minimal_etc(layer)
    _add_busybox(layer)
    layer.add_dir("/www")
    return Image(names=names, layer=layer, cmd=("sh",))


def shared_libraries(binary: str) -> list[str]:
    """The absolute paths `ldd` prints for `binary`: its libraries and the loader."""
    result = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ImageBuildError(f"ldd {binary} failed: {result.stderr.strip()}")
    paths = []
    for line in result.stdout.splitlines():
        words = line.split()
        for word in words:
            if word.startswith("/"):
                paths.append(word)
                break
    return paths


def nginx_image(names: Sequence[str] = NGINX_IMAGES, binary: str = NGINX_BINARY) -> Image:
    if not Path(binary).exists():
        raise ImageBuildError(f"{binary} is missing: install nginx-light")
    layer = Layer()
    _minimal_etc(layer, users=[("www-data", 33)])
    _add_busybox(layer)
    layer.add_host_file("/usr/sbin/nginx", binary)
    for lib in shared_libraries(binary):
        layer.add_host_file(lib)
    layer.add_bytes("/etc/nginx/nginx.conf", NGINX_CONF.encode())
    layer.add_bytes("/usr/share/nginx/html/index.html", NGINX_INDEX.encode())
    for path in ("/var/log/nginx", "/var/lib/nginx", "/var/cache/nginx"):
        layer.add_dir(path)
    return Image(
        names=names,
        layer=layer,
        cmd=("nginx",),
        exposed_ports=("80/tcp",),
        stop_signal="SIGQUIT",
    )


# ---- building and importing ------------------------------------------------------------------


def build_all(out_dir: Path, which: Sequence[str] = ("pause", "busybox", "nginx")) -> list[Path]:
    """Write the chosen images' archives to `out_dir` (reused when already there)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind in which:
        path = out_dir / f"{kind}.oci.tar"
        if not path.exists():
            if kind == "pause":
                with tempfile.TemporaryDirectory() as tmp:
                    image = pause_image(Path(tmp))
                    write_archive(image, path)
            elif kind == "busybox":
                write_archive(busybox_image(), path)
            elif kind == "nginx":
                write_archive(nginx_image(), path)
            else:
                raise ValueError(f"unknown image {kind!r}")
            log.info("image built", extra={"image": kind, "path": str(path)})
        paths.append(path)
    return paths


def import_archive(archive: Path, socket: str | Path, namespace: str = K8S_NAMESPACE) -> None:
    """`ctr -a SOCKET -n k8s.io images import ARCHIVE` (the CRI plugin's namespace)."""
    result = subprocess.run(
        ["ctr", "-a", str(socket), "-n", namespace, "images", "import", str(archive)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ImageBuildError(f"ctr images import {archive.name} failed: {result.stderr.strip()}")
