"""Running `nft` and `ip route` for the proxy, in this network namespace or a named one.

The node agent runs inside its node's network namespace, so by default every
command here runs in the current one. Tests and the benchmark drive a proxy
for a namespace they built from the outside: `netns="tk-node1"` runs the same
commands under `nsenter --net=/run/netns/tk-node1` -- the kernel state is the
same either way. (Not pyroute2's NetNS: it forks a Python child to open its
socket, and a fork of a process full of gRPC and asyncio threads can hang on a
lock some other thread held at the time.)

Every change goes through the CommandLog first (logged at INFO as the shell
command, skipped in a dry run):

    nft -f - <<'EOF'                        # one sync: the whole table, atomically
    add table ip tinykube
    flush table ip tinykube
    ...
    EOF
    ip route replace 10.96.0.0/12 dev tk0   # the node can reach ClusterIPs
    sysctl -w net.bridge.bridge-nf-call-iptables=1

Reads (`nft -j list chains`, `ip -j route show`) change nothing and are not logged.
`nft -f` either applies the whole script or nothing; its error text (line and
column of the offending statement) is kept in NftError.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from netplugin.commands import CommandLog

log = logging.getLogger(__name__)

NETNS_DIR = Path("/run/netns")


class NftError(RuntimeError):
    """`nft` failed; the message carries its stderr (which names the failing line)."""


class Nft:
    """`nft` and the proxy's route, in the current network namespace or in `netns`."""

    def __init__(self, cmds: CommandLog, netns: str | None = None, binary: str = "nft") -> None:
        self.cmds = cmds
        self.netns = netns
        self.binary = binary
        self.last_apply_seconds = 0.0  # the last `nft -f -` run: parsing and the kernel commit

    # ---- running nft ---------------------------------------------------------------------

    def prefix(self) -> list[str]:
        return [] if self.netns is None else ["nsenter", f"--net={NETNS_DIR / self.netns}", "--"]

    def _run(self, args: Sequence[str], stdin: str | None = None) -> str:
        argv = [*self.prefix(), self.binary, *args]
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise NftError(
                f"{' '.join(args)}: {proc.stderr.strip() or 'exit ' + str(proc.returncode)}"
            )
        return proc.stdout

    def apply(self, script: str) -> bool:
        """Run `script` as one transaction (`nft -f -`); False when the log is a dry run."""
        if not self.cmds.script("nft -f -", script):
            return False
        started = time.perf_counter()
        self._run(["-f", "-"], stdin=script)
        self.last_apply_seconds = time.perf_counter() - started
        return True

    def check(self, script: str) -> None:
        """Let nft parse and validate `script` against the kernel without applying it (-c)."""
        self._run(["-c", "-f", "-"], stdin=script)

    def list_table(self, table: str) -> tuple[set[str], set[str]] | None:
        """(chains, sets) of `ip table`, or None when there is no such table."""
        try:
            chains = json.loads(self._run(["-j", "list", "chains", "ip"]))
            sets = json.loads(self._run(["-j", "list", "sets", "ip"]))
        except NftError:
            return None
        found_chains = {
            o["chain"]["name"]
            for o in chains.get("nftables", [])
            if "chain" in o and o["chain"]["table"] == table
        }
        found_sets: set[str] = set()
        for o in sets.get("nftables", []):
            for kind in ("set", "map"):
                if kind in o and o[kind]["table"] == table:
                    found_sets.add(o[kind]["name"])
        if not found_chains and not found_sets and not self.has_table(table):
            return None
        return found_chains, found_sets

    def has_table(self, table: str) -> bool:
        try:
            self._run(["-t", "list", "table", "ip", table])
        except NftError:
            return False
        return True

    def list_ruleset(self, table: str) -> str:
        """The table as nft prints it ("" when absent): for tests and debugging."""
        try:
            return self._run(["list", "table", "ip", table])
        except NftError:
            return ""

    # ---- the route to the service CIDR ---------------------------------------------------

    def _routes(self, cidr: str) -> list[dict[str, object]]:
        out = self._run_ip(["-j", "route", "show", "exact", cidr, "table", "main"])
        routes: list[dict[str, object]] = json.loads(out) if out.strip() else []
        return routes

    def _run_ip(self, args: Sequence[str]) -> str:
        argv = [*self.prefix(), "ip", *args]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise OSError(f"ip {' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
        return proc.stdout

    def _run_ip_ok(self, args: Sequence[str]) -> bool:
        try:
            self._run_ip(args)
        except OSError:
            return False
        return True

    def ensure_route(self, cidr: str, dev: str) -> bool:
        """`ip route replace CIDR dev DEV` unless already so; False if DEV does not exist yet."""
        if not self._run_ip_ok(["link", "show", "dev", dev]):
            if self.cmds.dry_run:  # a dry run creates no bridge: show the route anyway
                self.cmds.change("ip", "route", "replace", cidr, "dev", dev)
                return True
            return False
        if any(r.get("dev") == dev for r in self._routes(cidr)):
            return True
        if self.cmds.change("ip", "route", "replace", cidr, "dev", dev):
            self._run_ip(["route", "replace", cidr, "dev", dev])
        return True

    def delete_route(self, cidr: str) -> None:
        """`ip route del CIDR` if present."""
        if self._routes(cidr) and self.cmds.change("ip", "route", "del", cidr):
            self._run_ip(["route", "del", cidr])

    # ---- sysctl --------------------------------------------------------------------------

    def sysctl_path(self, key: str) -> Path:
        return Path("/proc/sys") / key.replace(".", "/")

    def read_sysctl(self, key: str) -> str | None:
        """A sysctl's value in the target namespace; None when the kernel has no such key."""
        argv = [*self.prefix(), "cat", str(self.sysctl_path(key))]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def set_sysctl(self, key: str, value: str) -> None:
        if self.read_sysctl(key) == value:
            return
        if self.cmds.change("sysctl", "-w", f"{key}={value}"):
            argv = [*self.prefix(), "sysctl", "-q", "-w", f"{key}={value}"]
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise NftError(f"sysctl -w {key}={value}: {proc.stderr.strip()}")
