"""Masquerade for pod traffic that leaves the cluster (flannel's --ip-masq).

A pod's address (10.244.1.7) means nothing outside the cluster: a reply from
the internet, or from a host on the Vagrant private network, would have no
route back. So traffic from this node's pods to anywhere outside the cluster
CIDR leaves with the node's own address, as flannel's `--ip-masq` rules do.
Pod-to-pod traffic (inside the cluster CIDR) keeps its source address: the
other node's pods must see the real client, and the overlay routes replies.

One nftables table, family ip, owned by the plugin; the whole table is
replaced in one `nft -f -` transaction, so it is never half-written:

    table ip tinykube-nat {}                # create it if missing, so the delete cannot fail
    delete table ip tinykube-nat
    table ip tinykube-nat {
        chain postrouting {
            type nat hook postrouting priority srcnat; policy accept;
            ip saddr 10.244.1.0/24 ip daddr != 10.244.0.0/16 ip daddr != 224.0.0.0/4 \\
                masquerade fully-random comment "tinykube: pods 10.244.1.0/24 leaving 10.244.0.0/16"
        }
    }

Multicast (224.0.0.0/4) is left alone as flannel leaves it. `fully-random`
picks source ports at random, avoiding the SNAT port races flannel saw.

Restart: the rule carries a comment naming its podCIDR and cluster CIDR; if
`nft list table ip tinykube-nat` already shows that exact comment the table
is left untouched, so a restarted agent changes nothing. In the local tests
and `tinykube up` masquerade is off (`--no-masquerade`): nothing there may
reach beyond the namespaces the test made. On VMs it is on by default.
"""

from __future__ import annotations

import logging
import subprocess

from netplugin.commands import CommandLog
from netplugin.constants import CLUSTER_CIDR, NFT_NAT_TABLE

log = logging.getLogger(__name__)

MULTICAST = "224.0.0.0/4"


class MasqueradeError(RuntimeError):
    """`nft` failed; the message carries its stderr."""


def _comment(pod_cidr: str, cluster_cidr: str) -> str:
    return f"tinykube: pods {pod_cidr} leaving {cluster_cidr}"


def render(pod_cidr: str, cluster_cidr: str = CLUSTER_CIDR, table: str = NFT_NAT_TABLE) -> str:
    """The `nft -f -` script that replaces the table (see the module docstring)."""
    rule = (
        f"ip saddr {pod_cidr} ip daddr != {cluster_cidr} ip daddr != {MULTICAST} "
        f'masquerade fully-random comment "{_comment(pod_cidr, cluster_cidr)}"'
    )
    return "\n".join(
        [
            f"table ip {table} {{}}",
            f"delete table ip {table}",
            f"table ip {table} {{",
            "    chain postrouting {",
            "        type nat hook postrouting priority srcnat; policy accept;",
            f"        {rule}",
            "    }",
            "}",
            "",
        ]
    )


def _nft(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nft", *args], input=stdin, capture_output=True, text=True, check=False)


def _listed(table: str) -> str | None:
    proc = _nft(["list", "table", "ip", table])
    return proc.stdout if proc.returncode == 0 else None


def ensure(
    pod_cidr: str,
    cmds: CommandLog,
    cluster_cidr: str = CLUSTER_CIDR,
    table: str = NFT_NAT_TABLE,
) -> bool:
    """Make the table hold the masquerade rule for `pod_cidr`; True if it was (re)written."""
    listed = _listed(table)
    if listed is not None and f'"{_comment(pod_cidr, cluster_cidr)}"' in listed:
        return False
    script = render(pod_cidr, cluster_cidr, table)
    if cmds.script("nft -f -", script):
        proc = _nft(["-f", "-"], script)
        if proc.returncode != 0:
            raise MasqueradeError(f"nft -f - (table {table}): {proc.stderr.strip()}")
    return True


def cleanup(cmds: CommandLog, table: str = NFT_NAT_TABLE) -> bool:
    """Delete the table if it exists (`nft delete table ip tinykube-nat`); idempotent."""
    if _listed(table) is None:
        return False
    if cmds.change("nft", "delete", "table", "ip", table):
        proc = _nft(["delete", "table", "ip", table])
        if proc.returncode != 0 and _listed(table) is not None:
            raise MasqueradeError(f"nft delete table ip {table}: {proc.stderr.strip()}")
    return True
