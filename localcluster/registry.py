"""A local image registry on a test address, so CRI PullImage works without the internet.

Importing an archive puts an image into containerd, but a kubelet asked for
`nginx:latest` (pull policy Always) still calls PullImage, which resolves the
name at docker.io. With no registry reachable (DESIGN §6) that fails, so a
cluster built offline serves its images from Debian's `docker-registry`
(distribution 2.8) and tells containerd to use it as the mirror of docker.io
and registry.k8s.io, through a hosts.toml per upstream registry:

    <config_path>/docker.io/hosts.toml
        server = "https://registry-1.docker.io"
        [host."http://127.0.0.1:PORT"]
          capabilities = ["pull", "resolve"]

containerd tries the mirror first and the upstream after it, so an image the
mirror lacks fails as it would offline anyway ("no such host"). `hosts_toml`
writes that file; nodeconfig puts one per mirrored host into each node's
containerd configuration, `write_hosts` into this registry's own directory.

Pushing uses the registry's HTTP API directly (it is small, and no tool
such as skopeo is needed); per blob of an OCI archive from images.py:

    HEAD /v2/<repo>/blobs/<digest>                    200: already there
    POST /v2/<repo>/blobs/uploads/                    202, Location: <upload url>
    PUT  <upload url>&digest=<digest>  (the bytes)    201

then `PUT /v2/<repo>/manifests/<tag>` with the OCI manifest media type. The
repository comes from the image name: `docker.io/library/nginx:latest` is
repository `library/nginx`, tag `latest`, served for host docker.io.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from localcluster.processes import free_port

log = logging.getLogger(__name__)

MIRRORED_HOSTS = {"docker.io": "https://registry-1.docker.io", "registry.k8s.io": ""}


def hosts_toml(upstream: str, mirror: str) -> str:
    """One registry's hosts.toml: try the plain-HTTP `mirror` first, then `upstream`."""
    server = f'server = "{upstream}"\n' if upstream else ""
    return f'{server}\n[host."http://{mirror}"]\n  capabilities = ["pull", "resolve"]\n'


class RegistryError(RuntimeError):
    """The registry would not start, or refused a push."""


def split_name(name: str) -> tuple[str, str, str]:
    """`docker.io/library/nginx:latest` -> ("docker.io", "library/nginx", "latest")."""
    host, _, rest = name.partition("/")
    repo, _, tag = rest.rpartition(":")
    if not repo or "/" in tag:
        repo, tag = rest, "latest"
    return host, repo, tag


class LocalRegistry:
    """`docker-registry serve` on 127.0.0.1:<free port> with its storage under `base`."""

    def __init__(self, base: Path, port: int = 0) -> None:
        self.base = base
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def hosts_dir(self) -> Path:
        """containerd's registry.config_path for this mirror."""
        return self.base / "hosts"

    def write_config(self) -> Path:
        """<base>/config.yml: listen on `address`, store under <base>/data, log warnings only."""
        self.base.mkdir(parents=True, exist_ok=True)
        config = self.base / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.base / 'data'}\n"
            f"http:\n  addr: {self.address}\n"
        )
        return config

    def start(self, timeout: float = 10.0) -> None:
        config = self.write_config()
        with (self.base / "registry.log").open("ab") as out:
            self.proc = subprocess.Popen(
                ["docker-registry", "serve", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RegistryError(f"docker-registry exited: {self._log_tail()}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"http://{self.address}/v2/", timeout=1),
            ):
                break
            time.sleep(0.05)
        else:
            self.stop()
            raise RegistryError(f"docker-registry did not answer: {self._log_tail()}")
        self.write_hosts()
        log.info("registry started", extra={"address": self.address})

    def _log_tail(self) -> str:
        try:
            return (self.base / "registry.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def write_hosts(self) -> None:
        """A hosts.toml per mirrored registry under `hosts_dir` (the nodes' own files' text)."""
        for host, upstream in MIRRORED_HOSTS.items():
            directory = self.hosts_dir / host
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "hosts.toml").write_text(hosts_toml(upstream, self.address))

    # ---- pushing ---------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        url: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str]]:
        if not url.startswith("http"):
            url = f"http://{self.address}{url}"
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, dict(resp.headers)
        except urllib.error.HTTPError as err:
            if method == "HEAD" and err.code == 404:
                return 404, {}
            raise RegistryError(f"{method} {url}: {err.code} {err.read()[:300]!r}") from None

    def push_blob(self, repo: str, digest: str, blob: bytes) -> None:
        status, _ = self._request("HEAD", f"/v2/{repo}/blobs/{digest}")
        if status == 200:
            return
        _, headers = self._request("POST", f"/v2/{repo}/blobs/uploads/", b"")
        location = headers.get("Location", "")
        sep = "&" if "?" in location else "?"
        self._request(
            "PUT",
            f"{location}{sep}digest={digest}",
            blob,
            {"Content-Type": "application/octet-stream"},
        )

    def push_archive(self, archive: Path) -> list[str]:
        """Push every tagged image of an OCI archive (images.write_archive); returns the names."""
        with tarfile.open(archive) as tar:
            files = {}
            for member in tar.getmembers():
                handle = tar.extractfile(member) if member.isfile() else None
                if handle is not None:
                    files[member.name] = handle.read()
        index = json.loads(files["index.json"])
        pushed = []
        for entry in index["manifests"]:
            name = entry["annotations"]["io.containerd.image.name"]
            _, repo, tag = split_name(name)
            manifest = files["blobs/sha256/" + entry["digest"].split(":", 1)[1]]
            doc = json.loads(manifest)
            for desc in [doc["config"], *doc["layers"]]:
                blob = files["blobs/sha256/" + desc["digest"].split(":", 1)[1]]
                self.push_blob(repo, desc["digest"], blob)
            self._request(
                "PUT",
                f"/v2/{repo}/manifests/{tag}",
                manifest,
                {"Content-Type": entry["mediaType"]},
            )
            pushed.append(name)
        return pushed
