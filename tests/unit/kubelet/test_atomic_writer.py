"""The AtomicWriter: versions in `..<time>` directories, `..data` swapped by rename, user-visible
symlinks, stale entries removed, modes kept, and never a half-written state for a reader."""

from __future__ import annotations

import os
import re
import stat
import threading
import time
from pathlib import Path

import pytest

from kubelet.atomic_writer import DATA_DIR, AtomicWriter, FileProjection, clean_payload
from kubelet.errors import VolumeError

VERSION = re.compile(r"^\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\d{9}$")


def files(**contents: str) -> dict[str, FileProjection]:
    return {k.replace("__", "/"): FileProjection(v.encode(), 0o644) for k, v in contents.items()}


def versions(target: Path) -> list[str]:
    return sorted(e.name for e in target.iterdir() if VERSION.match(e.name))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_layout_links_through_data(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    assert AtomicWriter(target).write(files(a="1", tls__cert="C", tls__key="K"))
    (version,) = versions(target)
    assert os.readlink(target / DATA_DIR) == version  # relative: resolves in a container too
    assert os.readlink(target / "a") == "..data/a"
    assert os.readlink(target / "tls") == "..data/tls"  # only the top component is a link
    assert (target / "tls" / "key").read_text() == "K"
    assert sorted(os.listdir(target)) == sorted([DATA_DIR, version, "a", "tls"])
    assert (target / version / "a").read_text() == "1" and not (target / version / "a").is_symlink()


def test_same_payload_writes_nothing(tmp_path: Path) -> None:
    writer = AtomicWriter(tmp_path)
    assert writer.write(files(a="1", b="2"))
    before = versions(tmp_path)
    assert not writer.write(files(a="1", b="2"))
    assert versions(tmp_path) == before
    assert writer.write(files(a="1", b="3"))  # one byte differs: a new version
    assert versions(tmp_path) != before


def test_swap_replaces_removes_and_adds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = AtomicWriter(tmp_path)
    writer.write(files(x="old", y="gone soon", d__inner="i"))
    (old,) = versions(tmp_path)
    renames: list[tuple[str, str]] = []
    real_rename = os.rename

    def rename(src: str | Path, dst: str | Path) -> None:
        renames.append((Path(src).name, Path(dst).name))
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    assert writer.write(files(x="new", z="added"))
    (new,) = versions(tmp_path)
    assert new != old and os.readlink(tmp_path / DATA_DIR) == new
    assert ("..data_tmp", DATA_DIR) in renames  # the switch is one rename of a symlink
    assert (tmp_path / "x").read_text() == "new" and (tmp_path / "z").read_text() == "added"
    assert not (tmp_path / "y").is_symlink() and not (tmp_path / "d").is_symlink()
    assert sorted(os.listdir(tmp_path)) == sorted([DATA_DIR, new, "x", "z"])


def test_stale_entries_and_an_older_layout_are_cleared(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("a plain file of the older layout")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "f").write_text("a plain directory of the older layout")
    (tmp_path / ".key.tmp").write_text("a temporary file of the older layout")
    (tmp_path / "..2020_01_01_00_00_00.000000001").mkdir()  # a crash's unused version
    (tmp_path / "..data_tmp").symlink_to("..2020_01_01_00_00_00.000000001")
    (tmp_path / "orphan").symlink_to("..data/orphan")
    assert AtomicWriter(tmp_path).write(files(key="new", dir__f="nested"))
    (version,) = versions(tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted([DATA_DIR, version, "key", "dir"])
    assert (tmp_path / "key").is_symlink() and (tmp_path / "key").read_text() == "new"
    assert (tmp_path / "dir").is_symlink() and (tmp_path / "dir" / "f").read_text() == "nested"


def test_modes_whatever_the_umask(tmp_path: Path) -> None:
    payload = {
        "secret": FileProjection(b"s", 0o400),
        "script": FileProjection(b"#!/bin/sh", 0o755),
        "sub/conf": FileProjection(b"c", 0o640),
    }
    old = os.umask(0o077)
    try:
        AtomicWriter(tmp_path).write(payload)
    finally:
        os.umask(old)
    (version,) = versions(tmp_path)
    assert mode(tmp_path / version) == 0o755 and mode(tmp_path / version / "sub") == 0o755
    assert (mode(tmp_path / "secret"), mode(tmp_path / "script")) == (0o400, 0o755)
    assert mode(tmp_path / "sub" / "conf") == 0o640


def test_set_perms_runs_before_the_switch(tmp_path: Path) -> None:
    seen: list[tuple[str, str | None]] = []

    def set_perms(version: Path) -> None:
        current = os.readlink(tmp_path / DATA_DIR) if (tmp_path / DATA_DIR).is_symlink() else None
        seen.append((version.name, current))
        os.chmod(version / "f", 0o440)

    AtomicWriter(tmp_path).write(files(f="1"))
    (first,) = versions(tmp_path)
    AtomicWriter(tmp_path).write(files(f="2"), set_perms)
    (second,) = versions(tmp_path)
    assert seen == [(second, first)]  # containers still saw the first version meanwhile
    assert mode(tmp_path / "f") == 0o440


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/etc/passwd", "must be relative path"),
        ("a/../../b", "must not contain '..'"),
        ("..data", "must not start with '..'"),
        ("x" * 256, "longer than 255"),
        ("", "must not be empty"),
    ],
)
def test_bad_paths_write_nothing(tmp_path: Path, path: str, words: str) -> None:
    target = tmp_path / "vol"
    with pytest.raises(VolumeError, match=re.escape(words)):
        AtomicWriter(target).write(
            {"good": FileProjection(b"", 0o644), path: FileProjection(b"", 0o644)}
        )
    assert not target.exists()


def test_a_file_cannot_be_a_directory_too() -> None:
    with pytest.raises(VolumeError, match="a parent is also a file"):
        clean_payload(files(a="1", a__b="2"))
    assert list(clean_payload({"./a//b/": FileProjection(b"", 0o644)})) == ["a/b"]


def read_visible(path: Path) -> bytes | None:
    """Read through the links; opened again if the version resolved was retired meanwhile.

    The window is Kubernetes' too: `..data` resolved just before the switch,
    the old version removed just after, then the open finds nothing there.
    A new open resolves `..data` afresh and finds the new version.
    """
    for _ in range(5):
        try:
            return path.read_bytes()
        except FileNotFoundError:
            continue
    return None


def test_a_reader_never_sees_a_partial_state(tmp_path: Path) -> None:
    """Rewrites race a reader: each file read is whole, and one `..data` gives a consistent set."""
    size = 256 * 1024
    payloads = [
        {name: FileProjection(ch.encode() * size, 0o644) for name in ("cert", "key")} for ch in "AB"
    ]
    writer = AtomicWriter(tmp_path)
    writer.write(payloads[0])
    done = threading.Event()
    problems: list[str] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not done.is_set():
            data = read_visible(tmp_path / "cert")
            if data is None:
                problems.append("the visible file was missing, even when opened again")
                continue
            reads += 1
            if len(data) != size or len(set(data)) != 1:
                problems.append(f"partial file: {len(data)} bytes")
            try:
                version = os.readlink(tmp_path / DATA_DIR)
                pair = [(tmp_path / version / n).read_bytes() for n in ("cert", "key")]
            except FileNotFoundError:
                continue  # that version was retired between readlink and open: fine
            if pair[0] != pair[1]:
                problems.append("a mixed pair through one ..data")

    thread = threading.Thread(target=reader)
    thread.start()
    deadline = time.monotonic() + 20
    rounds = 0
    try:
        # Enough swaps, and enough reads among them, however busy the machine is.
        while (rounds < 60 or reads < 50) and time.monotonic() < deadline:
            rounds += 1
            writer.write(payloads[rounds % 2])
    finally:
        done.set()
        thread.join()
    assert problems == [], problems[:5]
    assert reads >= 50, (reads, rounds)
