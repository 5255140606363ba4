"""`tinykube netplugin` flag errors: each names what is wrong, before anything is touched."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from cli.main import cli


@pytest.fixture(autouse=True)
def _keep_logging() -> Iterator[None]:
    """The command configures the root logger onto CliRunner's stream: put it back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--node-ip", "10.0.0.1"], "--node-name is required (unless --cleanup)"),
        (["--node-name", "n1"], "give --node-ip or --iface"),
        (["--node-name", "n1", "--iface", "nosuch0", "--dry-run"], "interface nosuch0 not found"),
        (
            ["--node-name", "n1", "--node-ip", "10.0.0.300", "--dry-run"],
            "--node-ip: '10.0.0.300' is not an IPv4 address",
        ),
    ],
)
def test_bad_flags(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["--server", "unix:/nonexistent.sock", "netplugin", *args])
    assert result.exit_code != 0
    assert message in result.output


def test_help_names_every_flag() -> None:
    out = CliRunner().invoke(cli, ["netplugin", "--help"]).output
    for flag in ("--node-name", "--node-ip", "--iface", "--server", "--cni-conf-dir",
                 "--masquerade / --no-masquerade", "--dry-run", "--cleanup"):  # fmt: skip
        assert flag in out
