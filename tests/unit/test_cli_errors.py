"""Every verb of `tinykube`, fed bad input, fails cleanly: a non-zero exit and no traceback.

The verbs are read from cli.main.LAZY_COMMANDS when the tests are collected,
and a group's subcommands (`rollout status`, `config view`, ...) are each a
verb here, so a verb added to the table later is covered without editing
this file. Each one gets, against a real API server:

- wrong arguments: an unknown flag, and seven stray words;
- an unknown resource type: `nosuchtype`, `nosuchtype/x`;
- a wrong kind for the verb, or one that does not exist: `deploy/x`, `cm/x`
  (`logs deploy/x` where there is no such Deployment);

and, against a dead server (a unix socket that nothing listens on), the
shapes a real call takes: `VERB x`, `VERB pods x`, `VERB pod/x`.

Each must exit non-zero, raise nothing but click's exit (so a shell would
have printed no traceback), and print no "Traceback". Commands run in a
temporary directory with HOME and KUBECONFIG there, so a verb that writes
files (config, pki) writes only there.

Some inputs are valid for some verbs, and then success is right: each such
case is in ACCEPTED with the reason. The long-running daemons are not run
at all (DAEMONS).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from cli.main import LAZY_COMMANDS, cli
from tests.unit.cli_node import ClusterProcess

pytestmark = pytest.mark.timeout(120)

# Verbs not run here, and why.
DAEMONS: dict[str, str] = {
    "apiserver": "a daemon: serves until signalled (tests/unit/test_cli_daemons.py)",
    "kubelet": "a daemon: runs a node until signalled (tests/unit/test_cli_daemons.py)",
    "netplugin": "a daemon: programs the node's network until signalled",
    "controller-manager": "a daemon of the control plane: runs until signalled",
    "scheduler": "a daemon of the control plane: runs until signalled",
    "up": "starts a whole local cluster (root, namespaces): tests/e2e",
    "down": "tears down a local cluster's processes and namespaces (root): tests/e2e",
}

# (verb, argument) pairs where the "bad" input is in fact valid, and why.
ACCEPTED: dict[tuple[str, str], str] = {
    ("create namespace", "nosuchtype"): "any DNS label is a namespace name",
    ("create ns", "nosuchtype"): "any DNS label is a namespace name",
    ("create node", "nosuchtype"): "any DNS name is a node name",
    ("config set-context", "*"): "any word names the context it creates, as in kubectl",
    ("snapshot save", "nosuchtype"): "any path names the file the snapshot is written to",
}

STRAY = ("a", "b", "c", "d", "e", "f", "g")
WRONG = [("--no-such-flag",), STRAY]
UNKNOWN_TYPE = [("nosuchtype",), ("nosuchtype/x",)]
WRONG_KIND = [("deploy/x",), ("cm/x",)]
DEAD_SERVER = [("x",), ("pods", "x"), ("pod/x",)]


def verbs() -> list[tuple[str, ...]]:
    """Every runnable verb path: `get`, `rollout status`, ... (DAEMONS left out)."""
    ctx = click.Context(cli)
    paths: list[tuple[str, ...]] = []
    for name in sorted(LAZY_COMMANDS):
        if name in DAEMONS:
            continue
        command = cli.get_command(ctx, name)
        assert command is not None, name
        paths.extend(_expand((name,), command))
    return paths


def _expand(path: tuple[str, ...], command: click.Command) -> list[tuple[str, ...]]:
    if not isinstance(command, click.Group):
        return [path]
    found: list[tuple[str, ...]] = []
    for sub in sorted(command.commands):
        found.extend(_expand((*path, sub), command.commands[sub]))
    return found


def check(result: Result, verb: tuple[str, ...], args: tuple[str, ...]) -> str | None:
    """What is wrong with how the command ended, or None."""
    shown = " ".join((*verb, *args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return f"{shown}: raised {result.exception!r}"
    if "Traceback" in result.output:
        return f"{shown}: printed a traceback: {result.output[-500:]}"
    if result.exit_code == 0 and not accepted(" ".join(verb), args):
        return f"{shown}: exited 0: {result.output[-300:]}"
    return None


def accepted(verb: str, args: tuple[str, ...]) -> bool:
    """Whether success is right for these arguments (ACCEPTED; `*`: any first word)."""
    first = args[0] if args else ""
    if (verb, first) in ACCEPTED:
        return True
    return (verb, "*") in ACCEPTED and args not in WRONG


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    """A fresh API server per verb, so what one verb rightly created (ACCEPTED) cannot make
    another's bad input valid."""
    c = ClusterProcess(tmp_path_factory.mktemp("errors"))
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def dead_server(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A unix socket path that was bound and closed: connections are refused."""
    path = tmp_path_factory.mktemp("dead") / "api.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.close()
    return f"unix:{path}"


def run(tmp_path: Path, server: str, *args: str) -> Result:
    env = {
        "HOME": str(tmp_path),
        "KUBECONFIG": str(tmp_path / "kubeconfig"),
        "TINYKUBE_CONFIG": str(tmp_path / "config"),
        "TINYKUBE_SERVER": "",
        "TINYKUBE_CLUSTER": "",
        "EDITOR": "false",
        "KUBE_EDITOR": "false",
    }
    return CliRunner(env=env).invoke(cli, ["--server", server, *args], input="")


@pytest.mark.parametrize("verb", verbs(), ids=" ".join)
def test_bad_input_fails_cleanly(
    verb: tuple[str, ...],
    server: ClusterProcess,
    dead_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    problems = []
    for args in [*WRONG, *UNKNOWN_TYPE, *WRONG_KIND]:
        problems.append(check(run(tmp_path, server.address, *verb, *args), verb, args))
    for args in DEAD_SERVER:
        problems.append(check(run(tmp_path, dead_server, *verb, *args), verb, args))
    assert [p for p in problems if p] == []


def test_every_verb_is_covered_or_explained() -> None:
    covered = {path[0] for path in verbs()}
    assert covered | set(DAEMONS) == set(LAZY_COMMANDS)
    assert set(DAEMONS) <= set(LAZY_COMMANDS), "a daemon listed here left the table"


# The streaming verbs in the shapes they are used (exec -i, port-forward, cp both ways),
# against a server without the pod and against a dead one: each fails cleanly.
STREAMING = [
    ("exec", "-i", "x", "--", "cat"),
    ("exec", "-it", "x", "--", "sh"),
    ("port-forward", "x", "8080:80"),
    ("port-forward", "svc/x", "http"),
    ("port-forward", "x", ":80", "--address", "not-an-ip"),
    ("cp", "x:/etc/hostname", "out"),
    ("cp", "in.txt", "x:/tmp"),
    ("cp", "ns/x:/etc", "out"),
]


@pytest.mark.parametrize("args", STREAMING, ids=" ".join)
def test_streaming_verbs_fail_cleanly(
    args: tuple[str, ...],
    server: ClusterProcess,
    dead_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.txt").write_text("x\n")
    for address in (server.address, dead_server):
        result = run(tmp_path, address, *args)
        assert check(result, args[:1], args[1:]) is None
        assert result.exit_code == 1, result.output
        assert result.output.splitlines()[-1].startswith(("error: ", "Error from server")), (
            result.output
        )
