"""The agent's masquerade table (netplugin/masquerade.py): the script, and no rewrite when right."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from netplugin import masquerade
from netplugin.commands import CommandLog


def test_script_replaces_the_table_in_one_transaction() -> None:
    script = masquerade.render("10.244.1.0/24")
    lines = script.splitlines()
    assert lines[:3] == [
        "table ip tinykube-nat {}",
        "delete table ip tinykube-nat",
        "table ip tinykube-nat {",
    ]
    assert "type nat hook postrouting priority srcnat; policy accept;" in script
    assert (
        "ip saddr 10.244.1.0/24 ip daddr != 10.244.0.0/16 ip daddr != 224.0.0.0/4 "
        'masquerade fully-random comment "tinykube: pods 10.244.1.0/24 leaving 10.244.0.0/16"'
    ) in script


class FakeNft:
    """Stands in for the `nft` binary: a listed table, and the calls made."""

    def __init__(self, listed: str | None) -> None:
        self.listed = listed
        self.calls: list[list[str]] = []

    def __call__(self, args: list[str], stdin: str | None = None) -> Any:
        self.calls.append(args)
        if args[:2] == ["list", "table"]:
            ok = self.listed is not None
            return subprocess.CompletedProcess(args, 0 if ok else 1, self.listed or "", "")
        return subprocess.CompletedProcess(args, 0, "", "")


@pytest.fixture
def nft(monkeypatch: pytest.MonkeyPatch) -> FakeNft:
    fake = FakeNft(None)
    monkeypatch.setattr(masquerade, "_nft", fake)
    return fake


def test_written_when_missing(nft: FakeNft) -> None:
    cmds = CommandLog()
    assert masquerade.ensure("10.244.1.0/24", cmds)
    assert nft.calls[-1] == ["-f", "-"]
    assert cmds.commands[0].startswith("nft -f - <<'EOF'\ntable ip tinykube-nat {}")


def test_left_alone_when_already_right(nft: FakeNft) -> None:
    nft.listed = masquerade.render("10.244.1.0/24").split("delete table ip tinykube-nat\n")[1]
    cmds = CommandLog()
    assert not masquerade.ensure("10.244.1.0/24", cmds)
    assert cmds.commands == [] and nft.calls == [["list", "table", "ip", "tinykube-nat"]]


def test_rewritten_for_another_pod_cidr(nft: FakeNft) -> None:
    nft.listed = masquerade.render("10.244.9.0/24")
    assert masquerade.ensure("10.244.1.0/24", CommandLog())


def test_dry_run_logs_without_running(nft: FakeNft) -> None:
    cmds = CommandLog(dry_run=True)
    assert masquerade.ensure("10.244.1.0/24", cmds)
    assert ["-f", "-"] not in nft.calls and len(cmds.commands) == 1


def test_cleanup_is_idempotent(nft: FakeNft) -> None:
    assert not masquerade.cleanup(CommandLog())  # nothing there
    nft.listed = "table ip tinykube-nat {}"
    cmds = CommandLog()
    assert masquerade.cleanup(cmds)
    assert cmds.commands == ["nft delete table ip tinykube-nat"]
