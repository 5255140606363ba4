"""The explain-placement argument and the commands' registration."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from cli.cmd_placement import parse_pod_arg
from cli.context import CommandError
from cli.main import cli


def test_parse_pod_arg() -> None:
    assert parse_pod_arg("pod/web-x") == "web-x"
    assert parse_pod_arg("pods/web-x") == "web-x"
    assert parse_pod_arg("po/web-x") == "web-x"
    assert parse_pod_arg("web-x") == "web-x"
    with pytest.raises(CommandError, match="expected pod/NAME"):
        parse_pod_arg("deploy/web")
    with pytest.raises(CommandError):
        parse_pod_arg("pod/")


def test_commands_are_registered() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["explain-placement", "--help"])
    assert result.exit_code == 0 and "--node" in result.output
    result = runner.invoke(cli, ["scheduler", "--help"])
    assert result.exit_code == 0 and "scheduler" in result.output


def test_explain_placement_reports_a_bad_kind() -> None:
    result = CliRunner().invoke(cli, ["--server", "127.0.0.1:1", "explain-placement", "svc/x"])
    assert result.exit_code == 1
    assert "expected pod/NAME" in result.output
