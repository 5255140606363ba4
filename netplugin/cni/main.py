"""The full CNI plugin: the CNI protocol around plugin.py, in a process or in the agent.

run() is the plugin. It runs in its own process as `tinykube-cni-full` (the
venv's `tinykube-cni` console script) on a node without the network agent,
and inside the agent for each call the thin `tinykube-cni` (thin.py) hands
over (server.py) -- same input, same output, same journal.

The runtime runs the plugin once per operation, as the CNI spec 1.0 says:

    CNI_COMMAND=ADD CNI_CONTAINERID=4f1c... CNI_NETNS=/run/netns/cni-1234 \\
    CNI_IFNAME=eth0 CNI_PATH=/opt/cni/bin CNI_ARGS='K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0' \\
        tinykube-cni < <network configuration JSON>

and reads stdout: for ADD the result object (result.py), for DEL and CHECK
nothing, for VERSION the versions it speaks; on failure an error object
(errors.py) and a non-zero exit status. Everything else -- the commands the
plugin runs, as `ip`/`bridge` lines, and what it decided -- goes to stderr,
which containerd copies into its own log: stdout must stay pure JSON. Each
ADD also leaves a journal entry (journal.py) that the kubelet reads into the
pod's trace; DEL removes it.

Required variables: CNI_COMMAND always; CNI_CONTAINERID and CNI_IFNAME for
ADD, DEL and CHECK; CNI_NETNS for ADD and CHECK (DEL may come after the
namespace is gone). CNI_PATH is accepted and unused: this plugin delegates to
no other plugin.

Start-up time matters: containerd waits for this process on every pod
start, so VERSION and the argument checks import nothing heavy, and pyroute2
is loaded only for ADD, DEL and CHECK, without the parts of it (its package
__init__ imports every netlink family it knows) this plugin never uses.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Mapping
from typing import IO, Any

from netplugin.cni import journal
from netplugin.cni.config import SUPPORTED_VERSIONS, NetConf, parse_netconf
from netplugin.cni.errors import CNIError, IncompatibleVersion, InvalidEnvironment, IOFailure
from netplugin.constants import CNI_VERSION

log = logging.getLogger("netplugin.cni")

COMMANDS = ("ADD", "DEL", "CHECK", "VERSION")
_CONTAINER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


class _Formatter(logging.Formatter):
    """`tinykube-cni INFO message key=value ...`: structured fields after the message."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in record.__dict__.items() if k not in _STANDARD)
        text = f"tinykube-cni[{record.process}] {record.levelname} {record.getMessage()}"
        return f"{text} {fields}" if fields else text


def main() -> None:
    """Console-script entry point."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    sys.exit(run(os.environ, sys.stdin.buffer, sys.stdout))


def run(environ: Mapping[str, str], stdin: IO[bytes], stdout: IO[str]) -> int:
    """One CNI invocation; the exit status."""
    version = CNI_VERSION
    try:
        command = environ.get("CNI_COMMAND", "")
        if command not in COMMANDS:
            raise InvalidEnvironment(f"CNI_COMMAND {command!r} is not one of {', '.join(COMMANDS)}")
        if command == "VERSION":
            _print(stdout, {"cniVersion": CNI_VERSION, "supportedVersions": SUPPORTED_VERSIONS})
            return 0
        container_id = _container_id(environ)
        ifname = _ifname(environ)
        netns = environ.get("CNI_NETNS", "")
        if command != "DEL" and not netns:
            raise InvalidEnvironment(f"CNI_NETNS is required for {command}")
        cni_args = _cni_args(environ.get("CNI_ARGS", ""))
        try:
            raw = stdin.read()
        except OSError as e:
            raise IOFailure("cannot read the network configuration from stdin", str(e)) from e
        conf = parse_netconf(raw)
        version = conf.cni_version
        if command == "CHECK" and version.startswith("0.3."):
            raise IncompatibleVersion(f"CHECK needs cniVersion 0.4.0 or later, got {version}")
        pod = f"{cni_args.get('K8S_POD_NAMESPACE', '')}/{cni_args.get('K8S_POD_NAME', '')}"
        log.info(
            command,
            extra={
                "container": container_id,
                "netns": netns,
                "ifname": ifname,
                "pod": pod,
            },
        )
        started = time.time_ns()
        done: list[str] = []
        try:
            result = _dispatch(command, conf, container_id, netns, ifname, done)
        except CNIError as e:
            if command == "ADD":  # the failure and what was made (and undone) before it
                entry = _entry(container_id, pod, netns, ifname, started, done, None, e.msg)
                journal.record(conf.data_dir, container_id, entry)
            raise
        if command == "ADD":  # for the kubelet's trace (journal.py)
            entry = _entry(container_id, pod, netns, ifname, started, done, result, "")
            journal.record(conf.data_dir, container_id, entry)
        elif command == "DEL":
            journal.remove(conf.data_dir, container_id)
        if result is not None:
            _print(stdout, result)
        return 0
    except CNIError as e:
        log.error("failed", extra={"code": e.code, "error": e.msg})
        _print(stdout, e.to_json(version))
        return 1
    except Exception as e:  # a bug or an unexpected kernel answer: still the spec's JSON
        log.exception("unexpected error")
        _print(stdout, CNIError(f"{type(e).__name__}: {e}").to_json(version))
        return 1


def _dispatch(
    command: str, conf: NetConf, container_id: str, netns: str, ifname: str, done: list[str]
) -> dict[str, Any] | None:
    """Run the command; `done` receives the kernel changes made, as commands."""
    _light_pyroute2()
    from netplugin.cni import plugin
    from netplugin.commands import CommandLog

    cmds = CommandLog()
    try:
        if command == "ADD":
            return plugin.add(conf, container_id, netns, ifname, cmds)
        if command == "DEL":
            plugin.delete(conf, container_id, netns, ifname, cmds)
        else:
            plugin.check(conf, container_id, netns, ifname)
        return None
    finally:
        done.extend(cmds.commands)


def _entry(
    container_id: str,
    pod: str,
    netns: str,
    ifname: str,
    started: int,
    done: list[str],
    result: dict[str, Any] | None,
    error: str,
) -> dict[str, Any]:
    """One ADD's journal entry (journal.py shows one)."""
    return {
        "command": "ADD",
        "container": container_id,
        "pod": pod,
        "netns": netns,
        "ifname": ifname,
        "ip": journal.ip_of(result),
        "start_ns": started,
        "end_ns": time.time_ns(),
        "commands": done,
        "error": error,
    }


def _light_pyroute2() -> None:
    """Load only the parts of pyroute2 this plugin uses (netplugin.pyroute2_light)."""
    from netplugin import pyroute2_light

    pyroute2_light.load()


def _container_id(environ: Mapping[str, str]) -> str:
    value = environ.get("CNI_CONTAINERID", "")
    if not _CONTAINER_ID.match(value):
        raise InvalidEnvironment(
            f"CNI_CONTAINERID {value!r} must be non-empty: letters, digits, '_', '.' and '-'"
        )
    return value


def _ifname(environ: Mapping[str, str]) -> str:
    value = environ.get("CNI_IFNAME", "")
    if not 0 < len(value) <= 15 or value in (".", "..") or any(c in value for c in "/: \t\n"):
        raise InvalidEnvironment(
            f"CNI_IFNAME {value!r} must be an interface name of 1-15 characters "
            "without '/', ':' or spaces"
        )
    return value


def _cni_args(value: str) -> dict[str, str]:
    """CNI_ARGS "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0" as a dict."""
    out: dict[str, str] = {}
    for pair in filter(None, value.split(";")):
        key, sep, val = pair.partition("=")
        if not sep or not key:
            raise InvalidEnvironment(f"CNI_ARGS item {pair!r} is not KEY=VALUE")
        out[key] = val
    return out


def _print(stdout: IO[str], obj: Mapping[str, Any]) -> None:
    stdout.write(json.dumps(obj) + "\n")
    stdout.flush()


if __name__ == "__main__":
    main()
