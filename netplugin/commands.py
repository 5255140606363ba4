"""The network plugin's kernel changes, logged as the shell commands that make them.

The plugin changes the kernel through pyroute2 (netlink) and `nft -f -`, not by
running `ip`; but a reader wants to see, and be able to replay, what it did.
So every change first goes through `CommandLog.change()`, which logs the
equivalent command at INFO on the `netplugin.commands` logger:

    >>> cmds = CommandLog(dry_run=True)
    >>> if cmds.change("ip", "link", "add", "tk0", "type", "bridge"):
    ...     ipr.link("add", ifname="tk0", kind="bridge")   # skipped: a dry run
    >>> cmds.commands
    ['ip link add tk0 type bridge']

With `dry_run=True` (`tinykube netplugin --dry-run`) `change()` returns False:
the caller skips the change and the log is the list of commands it would run.
Reads (listing links, routes, rules) are never logged: they change nothing.
"""

from __future__ import annotations

import logging
import shlex

log = logging.getLogger("netplugin.commands")


class CommandLog:
    """Log each kernel change as a shell command; keep them for a dry run's report."""

    def __init__(self, dry_run: bool = False, keep: int | None = None) -> None:
        self.dry_run = dry_run
        self.commands: list[str] = []
        # A dry run's report keeps (almost) everything; a long-running agent keeps only the
        # latest few -- its log has them all, and a proxy script can be megabytes.
        self._keep = keep if keep is not None else (10_000 if dry_run else 50)

    def _remember(self, text: str) -> None:
        if self._keep <= 0:
            return
        self.commands.append(text)
        if len(self.commands) > self._keep:
            if self.dry_run:
                self.commands.pop()  # the report's first commands matter most
            else:
                del self.commands[0]

    def change(self, *argv: str) -> bool:
        """Record the command `argv`; True when the caller should now make the change."""
        text = shlex.join(argv)
        self._remember(text)
        log.info("%s%s", "(dry run) " if self.dry_run else "", text)
        return not self.dry_run

    def script(self, command: str, body: str) -> bool:
        """Record a command fed a script on stdin (`nft -f -` with the ruleset)."""
        shown = f"{command} <<'EOF'\n{body.rstrip()}\nEOF"
        self._remember(shown)
        log.info("%s%s", "(dry run) " if self.dry_run else "", shown)
        return not self.dry_run
