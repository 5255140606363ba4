"""cli.main's LazyGroup: verbs are imported on demand, help and dispatch unchanged.

Import checks run in a fresh interpreter: this test process has long since
imported every command module, so sys.modules here proves nothing.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from cli.main import CLUSTER_META, LAZY_COMMANDS, LazyGroup, cli

COMMAND_MODULES = sorted({module for module, _, _ in LAZY_COMMANDS.values()})


def _modules_after(code: str) -> set[str]:
    """The names in sys.modules after running `code` in a new interpreter."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


@pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
def test_table_matches_the_command(name: str) -> None:
    module, attribute, short_help = LAZY_COMMANDS[name]
    command = getattr(importlib.import_module(module), attribute)
    assert isinstance(command, click.Command)
    assert command.name == name
    assert not command.hidden
    for limit in (20, 45, 60, 200):
        table = click.Command(name, help=short_help).get_short_help_str(limit)
        assert table == command.get_short_help_str(limit), (name, limit)


def test_every_verb_is_listed_once() -> None:
    ctx = click.Context(cli)
    names = cli.list_commands(ctx)
    assert names == sorted(set(names))
    assert set(names) == set(LAZY_COMMANDS) | {"apiserver"}
    for name in names:
        assert cli.get_command(ctx, name) is not None
    assert cli.get_command(ctx, "no-such-verb") is None


def test_cluster_meta_key_matches_cmd_up() -> None:
    from cli import cmd_up

    assert CLUSTER_META == cmd_up.CLUSTER_META


def test_help_lists_every_verb_with_its_short_help() -> None:
    result = CliRunner().invoke(cli, ["--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    listed = result.output.split("Commands:", 1)[1]
    for name, (_, _, short_help) in LAZY_COMMANDS.items():
        assert f"  {name} " in listed
        assert short_help in listed


def test_unknown_verb_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["no-such-verb"])
    assert result.exit_code == 2
    assert "No such command 'no-such-verb'" in result.output


def test_a_verb_that_is_not_a_command_is_a_clear_error() -> None:
    group = LazyGroup("g", lazy={"bad": ("cli.main", "main", "Not a command.")})
    with pytest.raises(TypeError, match=r"cli\.main\.main is not a click command"):
        group.get_command(click.Context(group), "bad")


def test_importing_main_imports_no_command_module() -> None:
    loaded = _modules_after("import cli.main")
    assert not loaded & set(COMMAND_MODULES)
    assert "yaml" not in loaded


def test_help_imports_no_command_module() -> None:
    code = (
        "import sys\nfrom cli.main import cli\n"
        "try:\n    cli(['--help'], prog_name='tinykube')\nexcept SystemExit:\n    pass"
    )
    assert not _modules_after(code) & set(COMMAND_MODULES)


def test_a_verb_imports_its_own_module_only() -> None:
    code = (
        "import sys\nfrom cli.main import cli\n"
        "try:\n    cli(['kubelet', '--help'], prog_name='tinykube')\nexcept SystemExit:\n    pass"
    )
    loaded = _modules_after(code) & set(COMMAND_MODULES)
    assert loaded == {"cli.cmd_kubelet"}
