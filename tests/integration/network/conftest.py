"""Fixtures for network tests: machines made of network namespaces, all removed afterwards.

Every test here builds its own world: an underlay namespace with a bridge, node
namespaces plugged into it (localcluster/netns.py), and pod namespaces inside
nodes. Traffic goes only between addresses in those namespaces; the host gets no
link, address, route or rule. Names carry the test process's pid so that two
runs on one machine cannot collide, and the fixtures delete everything with that
prefix even when the test fails.

The tests need root, iproute2 and nftables; without them they are skipped with
the reason, so `make test` as a normal user still runs the rest.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcluster.netns import Underlay, delete_namespaces

NEEDED = ("ip", "nft", "nsenter", "sysctl")
_counter = itertools.count(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    reason = ""
    if os.geteuid() != 0:
        reason = "needs root (network namespaces, nftables)"
    elif missing := [t for t in NEEDED if shutil.which(t) is None]:
        reason = "missing: " + ", ".join(missing) + " (sudo make system-deps)"
    if not reason:
        return
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def ns_prefix() -> Iterator[str]:
    """A prefix unique to this test ("tkn<pid>x<n>"); every namespace with it is removed after."""
    prefix = f"tkn{os.getpid()}x{next(_counter)}"
    try:
        yield prefix
    finally:
        delete_namespaces(prefix)


@pytest.fixture
def underlay(ns_prefix: str) -> Iterator[Underlay]:
    """An underlay bridge namespace with nothing on it yet; `add_machine` plugs in nodes."""
    net = Underlay(ns_prefix)
    net.create()
    try:
        yield net
    finally:
        net.destroy()
