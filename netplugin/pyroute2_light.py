"""pyroute2 without its package __init__: only the netlink families tinykube uses.

Why: `import pyroute2` runs the package __init__, which imports every netlink
family the library knows -- IPDB, NDB (with sqlite), IPVS, nl80211,
WireGuard, devlink, ethtool, plan9, ... -- about 160 modules and 20 MB of
heap, and 0.15 s of start-up. The network plugin needs two classes of it:
IPRoute (rtnetlink: links, addresses, routes, neighbours, FDB) and Conntrack
(nfnetlink conntrack), plus NetlinkError. Both of our pyroute2
processes pay for the rest: `tinykube-cni`, which containerd waits for on
every pod start, and `tinykube netplugin`, which lives as long as the node.

How: `load()` registers `pyroute2` in sys.modules as the real package object
(same spec, same __path__) whose __init__ has *not* run. Submodule imports
(`from pyroute2.netlink.exceptions import NetlinkError`) then work as usual,
loading just that submodule and what it imports. Top-level names are served
by a module `__getattr__` (PEP 562):

- a name in LIGHT_NAMES imports the one module that defines it:

      from pyroute2 import IPRoute      # imports pyroute2.iproute.linux only
      from pyroute2 import Conntrack    # imports pyroute2.conntrack only

- a name that is a submodule (`from pyroute2 import config`) raises
  AttributeError, which tells the import system to import the submodule;
- any other name (`from pyroute2 import NDB`) runs the real __init__ in the
  same module object, after which the package is the full one: the fallback
  never changes behaviour, it only gives up the saving.

Failure modes: pyroute2 already imported (a test imported it, or some import
ran before load()) -> load() does nothing and returns False; pyroute2 not
installed -> False, and the caller's own `from pyroute2 import ...` raises the
usual ImportError; a pyroute2 release that moved a class -> LIGHT_NAMES lists
the known homes (0.7 kept NetNS in pyroute2.nslink.nslink), and a name found
in none of them falls back to the full package.

Call load() before anything imports pyroute2: at the top of the `tinykube
netplugin` command and in the CNI plugin's ADD/DEL/CHECK path.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

PACKAGE = "pyroute2"

# Top-level name -> the modules that define it, newest pyroute2 layout first.
LIGHT_NAMES: dict[str, tuple[str, ...]] = {
    "IPRoute": ("pyroute2.iproute.linux",),
    "AsyncIPRoute": ("pyroute2.iproute.linux",),
    "NetNS": ("pyroute2.iproute.linux", "pyroute2.nslink.nslink"),
    "Conntrack": ("pyroute2.conntrack",),
    "ConntrackEntry": ("pyroute2.conntrack",),
    "NetlinkError": ("pyroute2.netlink.exceptions",),
    "NetlinkDecodeError": ("pyroute2.netlink.exceptions",),
    "NetlinkDumpInterrupted": ("pyroute2.netlink.exceptions",),
}

_full_lock = threading.RLock()


def load() -> bool:
    """Install the light `pyroute2` package; True if installed, False if left as is."""
    if PACKAGE in sys.modules:
        return False
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return False
    package = importlib.util.module_from_spec(spec)
    state: dict[str, bool] = {"full": False}

    def full() -> None:
        """Run the real __init__ in the light module: it becomes the full package."""
        with _full_lock:
            if state["full"]:
                return
            state["full"] = True
            assert spec.loader is not None
            spec.loader.exec_module(package)

    def getattr_(name: str) -> Any:
        if name.startswith("__") or state["full"]:
            raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")
        for module_name in LIGHT_NAMES.get(name, ()):
            if importlib.util.find_spec(module_name) is None:
                continue
            value = getattr(importlib.import_module(module_name), name, None)
            if value is not None:
                setattr(package, name, value)
                return value
        if name not in LIGHT_NAMES and _is_submodule(name):
            raise AttributeError(name)  # the import system then imports pyroute2.<name>
        full()
        try:
            return package.__dict__[name]
        except KeyError:
            raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}") from None

    package.__getattr__ = getattr_  # type: ignore[method-assign]
    package.__dict__["_tinykube_light"] = True
    sys.modules[PACKAGE] = package
    # The package __init__ gives the 'pyroute2' logger a NullHandler; keep that.
    importlib.import_module("pyroute2.config.log")
    return True


def is_light() -> bool:
    """True while `pyroute2` is the light package (load() ran, no fallback yet)."""
    package = sys.modules.get(PACKAGE)
    if not isinstance(package, types.ModuleType) or not package.__dict__.get("_tinykube_light"):
        return False
    return "modules" not in package.__dict__  # the real __init__ defines `modules`


def _is_submodule(name: str) -> bool:
    try:
        return importlib.util.find_spec(f"{PACKAGE}.{name}") is not None
    except (ImportError, ValueError):
        return False
