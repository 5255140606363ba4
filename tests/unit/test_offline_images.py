"""Offline images (OCI layout), the private containerd's config and registry names: no root."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from localcluster import images
from localcluster.containerd import ContainerdConfig, mounts_under
from localcluster.registry import split_name


def read_archive(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def test_oci_archive_is_consistent_and_deterministic(tmp_path: Path) -> None:
    layer = images.Layer()
    layer.add_bytes("/etc/hello", b"hi\n")
    layer.add_symlink("/bin/sh", "busybox")
    image = images.Image(
        names=("docker.io/library/demo:1", "docker.io/library/demo:latest"),
        layer=layer,
        cmd=("sh",),
        exposed_ports=("80/tcp",),
    )
    first = images.write_archive(image, tmp_path / "a.tar")
    second = images.write_archive(image, tmp_path / "b.tar")
    files = read_archive(first)
    assert files == read_archive(second)  # same bytes, same digests
    for name, blob in files.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(blob).hexdigest() == name.rsplit("/", 1)[1]
    index = json.loads(files["index.json"])
    assert [m["annotations"]["io.containerd.image.name"] for m in index["manifests"]] == [
        "docker.io/library/demo:1",
        "docker.io/library/demo:latest",
    ]
    manifest = json.loads(files["blobs/sha256/" + index["manifests"][0]["digest"][7:]])
    config = json.loads(files["blobs/sha256/" + manifest["config"]["digest"][7:]])
    assert config["config"]["Cmd"] == ["sh"]
    assert config["rootfs"]["diff_ids"] == [manifest["layers"][0]["digest"]]
    layer_tar = files["blobs/sha256/" + manifest["layers"][0]["digest"][7:]]
    with tarfile.open(fileobj=io.BytesIO(layer_tar)) as tar:
        names = tar.getnames()
        assert names == ["bin", "bin/sh", "etc", "etc/hello"]
        assert tar.getmember("bin/sh").linkname == "busybox"


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_pause_is_static(tmp_path: Path) -> None:
    try:
        binary = images.compile_pause(tmp_path)
    except images.ImageBuildError as err:
        pytest.skip(str(err))
    assert binary.read_bytes()[:4] == b"\x7fELF"
    assert images.pause_image(tmp_path).names == (images.PAUSE_IMAGE,)


def test_containerd_config_is_private(tmp_path: Path) -> None:
    cfg = ContainerdConfig(base=tmp_path, registry_config_path="/x/hosts")
    text = cfg.render()
    for needle in (
        f'root = "{tmp_path}/root"',
        f'state = "{tmp_path}/state"',
        f'address = "{tmp_path}/containerd.sock"',
        f'Root = "{tmp_path}/runc"',
        "restrict_oom_score_adj = true",
        'sandbox_image = "registry.k8s.io/pause:3.9"',
        'snapshotter = "overlayfs"',
        'config_path = "/x/hosts"',
        'stream_server_port = "0"',
    ):
        assert needle in text
    assert cfg.endpoint == f"unix://{tmp_path}/containerd.sock"
    assert mounts_under(tmp_path) == []


def test_registry_names() -> None:
    assert split_name("docker.io/library/nginx:latest") == ("docker.io", "library/nginx", "latest")
    assert split_name("registry.k8s.io/pause:3.9") == ("registry.k8s.io", "pause", "3.9")
    assert split_name("localhost:5000/a/b") == ("localhost:5000", "a/b", "latest")
