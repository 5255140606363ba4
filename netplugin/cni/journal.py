"""The plugin's journal: what one ADD did to the kernel, kept for the kubelet's trace.

The runtime (containerd's CRI plugin) runs `tinykube-cni`, not the kubelet,
and keeps nothing of what the plugin did but the result's IP. So that a
traced pod's timeline can show the network step with its kernel changes
(kubelet/podtrace.py, the span "CNI ADD"), every ADD leaves one file, named
after the container id (the sandbox id the kubelet gets back from
RunPodSandbox), in the plugin's data directory:

    <dataDir>/journal/4f1c....json
    {"command": "ADD", "container": "4f1c...", "pod": "default/web-app-744c89f59d-x9vnh",
     "netns": "/var/run/netns/cni-1234", "ifname": "eth0", "ip": "10.244.0.2/24",
     "start_ns": 1764921600123456789, "end_ns": 1764921600163456789,
     "commands": ["ip link add veth3f9c0d2e7a1 mtu 1450 type veth peer name eth0 ...", ...],
     "error": ""}

The commands are CommandLog's lines (netplugin/commands.py), the same the
plugin logs to stderr. A failed ADD is journaled too, with its error and
the commands made before the failure (which the plugin then undid). DEL
removes the file, so the journal holds one entry per sandbox on the node.
Writing is atomic (a temporary file renamed) and best effort: a journal
that cannot be written is logged, never a failed ADD.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("netplugin.cni")

JOURNAL = "journal"


def path(data_dir: str, container_id: str) -> Path:
    return Path(data_dir) / JOURNAL / f"{container_id}.json"


def record(data_dir: str, container_id: str, entry: dict[str, Any]) -> None:
    """Write one ADD's entry (replacing an earlier one for the same container)."""
    target = path(data_dir, container_id)
    # pid and thread: the agent runs calls on many threads of one process (server.py)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp.write_text(json.dumps(entry, separators=(",", ":")))
        os.replace(tmp, target)
    except OSError as exc:
        log.warning("journal not written", extra={"path": str(target), "error": str(exc)})
        tmp.unlink(missing_ok=True)


def remove(data_dir: str, container_id: str) -> None:
    """Forget a container's entry (DEL); nothing to forget is fine."""
    try:
        path(data_dir, container_id).unlink(missing_ok=True)
    except OSError as exc:
        log.warning("journal entry not removed", extra={"error": str(exc)})


def ip_of(result: dict[str, Any] | None) -> str:
    """The first address of an ADD result (CNI 1.0 `ips[].address`)."""
    for entry in (result or {}).get("ips", []):
        if isinstance(entry, dict) and entry.get("address"):
            return str(entry["address"])
    return ""
