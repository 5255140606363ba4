"""Installing the CNI executables where containerd looks for them.

containerd's CRI plugin runs CNI plugins from one directory (`bin_dir`,
/opt/cni/bin by default; each `tinykube up` node has its own). It needs:

    tinykube-cni  the thin client (thin.py): a four-line script this module writes,
                  run by the venv's python with -I -S (no site-packages, no
                  environment: ~10 ms), which hands the call to the node's agent
    tinykube-cni-full
                  the full plugin (main.py): the console script in the venv, which
                  the thin client execs on a node without the agent (its shebang
                  names the venv's python, so the symlink runs the right interpreter)
    loopback      brings `lo` up in every sandbox: containerd 1.6 runs it itself,
                  before the conflist's plugins; Debian ships it in containernetworking-plugins
    host-local, portmap
                  linked too when the system has them (handy for experiments)

Equivalent commands:

    mkdir -p /opt/cni/bin
    cat > /opt/cni/bin/tinykube-cni <<'EOF'      # then chmod 755
    #!/work/main/.venv/bin/python3 -IS
    import sys
    sys.path.insert(0, '/work/main')
    from netplugin.cni.thin import main
    main()
    EOF
    ln -sfn /work/main/.venv/bin/tinykube-cni /opt/cni/bin/tinykube-cni-full
    ln -sfn /usr/lib/cni/loopback /opt/cni/bin/loopback

(The venv's own `tinykube-cni` console script stays the full plugin, for running by
hand.) The script imports the thin module from the installed package, so it follows
the code as a symlink would; it is rewritten only when its text would change.
Files and links are replaced atomically (a temporary one renamed over the old), so a
plugin run during an install finds either the old or the new one; running
install_bin_dir() again changes nothing.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import netplugin
from netplugin.cni.thin import FULL_PLUGIN
from netplugin.constants import CNI_PLUGIN_TYPE

THIN_MARKER = "# tinykube-cni: the thin CNI client"
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


def thin_client_script(python: str = sys.executable) -> str:
    """The text of the thin tinykube-cni: `python -IS` importing thin.py from this install."""
    root = str(Path(netplugin.__file__).resolve().parent.parent)
    return (
        f"#!{python} -IS\n"
        f"{THIN_MARKER} (netplugin/cni/thin.py), written by netplugin/cni/install.py\n"
        "import sys\n"
        f"sys.path.insert(0, {root!r})\n"
        "from netplugin.cni.thin import main\n"
        "main()\n"
    )


def install_bin_dir(dest: str) -> None:
    """Install the thin tinykube-cni, link the full plugin as tinykube-cni-full and the
    system's loopback (+ host-local, portmap) into `dest`."""
    directory = Path(dest)
    directory.mkdir(parents=True, exist_ok=True)
    _link(directory / FULL_PLUGIN, plugin_executable())
    _write_script(directory / CNI_PLUGIN_TYPE, thin_client_script())
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


def _write_script(path: Path, text: str) -> None:
    """`path` (ours: a former symlink, or a script with THIN_MARKER) holds `text`, mode 755."""
    if path.is_symlink() or not path.exists():
        pass  # a link to the full plugin, as installs before the thin client made
    else:
        current = path.read_text(errors="replace")
        if current == text:
            return
        if THIN_MARKER not in current:
            raise FileExistsError(f"{path} exists and is not tinykube's; refusing to replace it")
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    tmp.chmod(0o755)
    os.replace(tmp, path)
