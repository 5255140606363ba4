"""What `tinykube status` shows of a local cluster's processes, and `up`'s progress helpers.

`ComponentStatus.of(key, record, log)` is one row of `tinykube status`: the
process's key (`apiserver`, `node2-kubelet`, `node2-etcd`), its node, pid,
whether the very process `up` recorded still runs (clusterstate's pid + start
time identity) and its resident memory. The progress helpers keep `up`'s
output from ever stopping `up` itself: `tinykube up | head` closes stdout,
and the rest of `up` -- or its cleanup -- must go on regardless.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from localcluster.clusterstate import ProcessRecord

Progress = Callable[[str], None]


@dataclass
class ComponentStatus:
    """One process of the cluster as `tinykube status` shows it."""

    key: str
    node: str
    pid: int
    alive: bool
    log: str
    rss_kib: int = 0  # resident memory of the process (its group leader), 0 when dead

    @classmethod
    def of(cls, key: str, record: ProcessRecord | None, log: str) -> ComponentStatus:
        if record is None:
            return cls(key, "", 0, False, log)
        alive = record.alive()
        rss = record.rss_kib() if alive else 0
        return cls(key, record.node, record.pid, alive, record.log, rss)


def tail(path: Path, lines: int) -> list[str]:
    """The last `lines` lines of a log; [] when it cannot be read."""
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def quiet(_: str) -> None:
    """A progress sink that says nothing."""


def tolerant(progress: Progress) -> Progress:
    """`progress` that cannot fail: a closed stdout (`tinykube up | head`) must not stop
    `up` half-way, nor its cleanup."""

    def say(line: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            progress(line)

    return say
