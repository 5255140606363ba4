"""Helpers for tests that run tinykube as real processes (the way a user does)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from localcluster.processes import REPO, ApiServerProcess, free_port, tinykube_cmd

__all__ = ["REPO", "ApiServerProcess", "apiserver", "free_port", "run_cli", "tinykube_cmd"]


@contextlib.contextmanager
def apiserver(data_dir: Path) -> Iterator[ApiServerProcess]:
    srv = ApiServerProcess(data_dir)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def run_cli(
    server: str | ApiServerProcess, *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`tinykube ARGS` at `server`: an address ($TINYKUBE_SERVER; the server's unix socket is
    its local admin), or an ApiServerProcess, whose admin kubeconfig ($KUBECONFIG) is the
    admin over mutual TLS, as for a user on another machine."""
    outranking = ("TINYKUBE_SERVER", "TINYKUBE_CLUSTER", "TINYKUBE_CONFIG", "KUBECONFIG")
    env = {k: v for k, v in os.environ.items() if k not in outranking}
    if isinstance(server, ApiServerProcess):
        env["KUBECONFIG"] = str(server.admin_kubeconfig)
    else:
        env["TINYKUBE_SERVER"] = server
    return subprocess.run(
        [*tinykube_cmd(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=env,
    )
