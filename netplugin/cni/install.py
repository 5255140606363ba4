"""Installing the CNI executables where containerd looks for them.

containerd's CRI plugin runs CNI plugins from one directory (`bin_dir`,
/opt/cni/bin by default; each `tinykube up` node has its own). It needs:

    tinykube-cni  our plugin: the console script in the venv (its shebang names the
                  venv's python, so the symlink runs with the right interpreter)
    loopback      brings `lo` up in every sandbox: containerd 1.6 runs it itself,
                  before the conflist's plugins; Debian ships it in containernetworking-plugins
    host-local, portmap
                  linked too when the system has them (handy for experiments)

Equivalent commands:

    mkdir -p /opt/cni/bin
    ln -sfn /work/main/.venv/bin/tinykube-cni /opt/cni/bin/tinykube-cni
    ln -sfn /usr/lib/cni/loopback /opt/cni/bin/loopback

Links are replaced atomically (a temporary link renamed over the old one), so a
plugin run during an install finds either the old or the new target; running
install_bin_dir() again changes nothing.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from netplugin.constants import CNI_PLUGIN_TYPE

SYSTEM_CNI_DIRS = (Path("/usr/lib/cni"), Path("/opt/cni/bin"))
REQUIRED_SYSTEM_PLUGINS = ("loopback",)
OPTIONAL_SYSTEM_PLUGINS = ("host-local", "portmap")


def plugin_executable() -> Path:
    """The tinykube-cni console script of the running interpreter's environment."""
    beside = Path(sys.executable).parent / CNI_PLUGIN_TYPE
    if beside.exists():
        return beside
    found = shutil.which(CNI_PLUGIN_TYPE)
    if found is None:
        raise FileNotFoundError(
            f"{CNI_PLUGIN_TYPE} is not installed next to {sys.executable} nor on PATH "
            "(run `pip install -e .` in the venv)"
        )
    return Path(found)


def system_plugin(name: str) -> Path | None:
    """A system CNI plugin (/usr/lib/cni/NAME), or None when the system lacks it."""
    for directory in SYSTEM_CNI_DIRS:
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def install_bin_dir(dest: str) -> None:
    """Link tinykube-cni and the system's loopback (+ host-local, portmap) into `dest`."""
    directory = Path(dest)
    directory.mkdir(parents=True, exist_ok=True)
    _link(directory / CNI_PLUGIN_TYPE, plugin_executable())
    for name in REQUIRED_SYSTEM_PLUGINS + OPTIONAL_SYSTEM_PLUGINS:
        target = system_plugin(name)
        if target is None:
            if name in REQUIRED_SYSTEM_PLUGINS:
                raise FileNotFoundError(
                    f"CNI plugin {name!r} not found in "
                    + " or ".join(str(d) for d in SYSTEM_CNI_DIRS)
                    + " (install containernetworking-plugins)"
                )
            continue
        _link(directory / name, target)


def _link(path: Path, target: Path) -> None:
    if path.is_symlink() and os.readlink(path) == str(target):
        return
    if path.exists() and not path.is_symlink():
        if path.samefile(target):
            return  # dest is the system directory itself
        raise FileExistsError(f"{path} exists and is not a symlink; refusing to replace it")
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, path)
