"""netplugin.pyroute2_light: the names tinykube imports, without pyroute2's __init__.

Each check runs in a fresh interpreter: pyroute2 is imported for real in this
test process already (other tests need it), and then load() stays out of the way.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pyroute2  # noqa: F401  -- loaded for real here: load() must then do nothing

from netplugin import pyroute2_light

NETPLUGIN = Path(pyroute2_light.__file__).parent


def _run(code: str) -> dict[str, object]:
    """Run `code` in a new interpreter after load(); it sets `out`, printed as JSON."""
    script = (
        "import json, sys\nfrom netplugin import pyroute2_light\n"
        "loaded = pyroute2_light.load()\nout = {}\n"
        f"{code}\n"
        "out['loaded'] = loaded\nout['light'] = pyroute2_light.is_light()\n"
        "out['ndb'] = 'pyroute2.ndb.main' in sys.modules\n"
        "print(json.dumps(out))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _pyroute2_imports() -> list[str]:
    """Every `from pyroute2... import NAME` under netplugin/, as import statements."""
    found: set[str] = set()
    for path in NETPLUGIN.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pyroute2"):
                for alias in node.names:
                    found.add(f"from {node.module} import {alias.name}")
    return sorted(found)


def test_load_does_nothing_once_pyroute2_is_imported() -> None:
    assert pyroute2_light.load() is False
    assert not pyroute2_light.is_light()


def test_the_agents_names_load_without_the_package_init() -> None:
    out = _run(
        "from pyroute2 import IPRoute, NetNS, Conntrack\n"
        "from pyroute2.netlink.exceptions import NetlinkError\n"
        "from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple\n"
        "assert issubclass(NetNS, IPRoute) and issubclass(NetlinkError, Exception)\n"
        "with IPRoute() as ipr:\n    out['lo'] = ipr.link_lookup(ifname='lo')\n"
        "out['ipdb'] = 'pyroute2.ipdb' in sys.modules"
    )
    assert out == {"lo": [1], "ipdb": False, "loaded": True, "light": True, "ndb": False}


def test_every_pyroute2_import_under_netplugin_resolves_light() -> None:
    statements = _pyroute2_imports()
    assert "from pyroute2 import Conntrack" in statements
    assert "from pyroute2 import IPRoute" in statements
    out = _run("\n".join(statements))
    assert out == {"loaded": True, "light": True, "ndb": False}


def test_the_agent_and_plugin_modules_import_light() -> None:
    out = _run(
        "import netplugin.agent, netplugin.agent_node, netplugin.proxy, netplugin.dns\n"
        "import netplugin.overlay.kernel, netplugin.cni.plugin, netplugin.proxy.conntrack\n"
        "import netplugin.proxy.nft, netplugin.nodeip"
    )
    assert out == {"loaded": True, "light": True, "ndb": False}


def test_any_other_name_falls_back_to_the_full_package() -> None:
    out = _run(
        "from pyroute2 import IPRoute\n"
        "from pyroute2 import NDB\n"
        "import pyroute2\n"
        "out['same'] = pyroute2.IPRoute is IPRoute and pyroute2.NDB is NDB\n"
        "out['full'] = hasattr(pyroute2, 'IPVS') and hasattr(pyroute2, '__version__')"
    )
    assert out == {"same": True, "full": True, "loaded": True, "light": False, "ndb": True}


def test_a_submodule_import_through_the_package_is_not_a_fallback() -> None:
    out = _run("from pyroute2 import config\nout['has_log'] = hasattr(config, 'log')")
    assert out == {"has_log": True, "loaded": True, "light": True, "ndb": False}


def test_a_name_pyroute2_lacks_is_an_attribute_error() -> None:
    out = _run(
        "import pyroute2\n"
        "try:\n    pyroute2.NoSuchThing\nexcept AttributeError as e:\n    out['error'] = str(e)"
    )
    assert out["error"] == "module 'pyroute2' has no attribute 'NoSuchThing'"
