"""`sudo make demo`: what tinykube can do today, run for real and shown command by command.

Today that is the control plane's foundation: an API server over its SQLite
store, and the seed's session typed as a user types it —

    tinykube create node node1 / node2        (the seed's `kubectl create node`)
    tinykube apply -f examples/web-app.yaml   (created, then unchanged)
    tinykube get deployments,services -o wide
    tinykube get deployment web-app -o yaml
    tinykube delete -f examples/web-app.yaml

The API server runs on a free loopback port with its data in a temporary
directory; both are gone when the demo ends, even when a step fails. Every
command is printed before its output, so the run reads like a terminal
session. The demo grows with the project until it is the two-node cluster
serving the seed's nginx across nodes.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from localcluster.processes import REPO, ApiServerProcess, tinykube_cmd

SEED = "examples/web-app.yaml"


def step(server: str, *args: str, expect_ok: bool = True) -> str:
    print(f"\n$ tinykube {shlex.join(args)}", flush=True)
    proc = subprocess.run(
        [*tinykube_cmd(), "--server", server, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    sys.stdout.write(proc.stdout)
    sys.stdout.write(proc.stderr)
    sys.stdout.flush()
    if expect_ok and proc.returncode != 0:
        raise SystemExit(f"demo step failed (exit {proc.returncode}): tinykube {shlex.join(args)}")
    if not expect_ok and proc.returncode == 0:
        raise SystemExit(f"demo step should have failed: tinykube {shlex.join(args)}")
    return proc.stdout


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tinykube-demo-") as tmp:
        srv = ApiServerProcess(Path(tmp) / "data")
        print(f"$ tinykube apiserver --data-dir {srv.data_dir} --listen {srv.address} &")
        srv.start()
        try:
            server = srv.address
            step(server, "version")
            step(server, "create", "node", "node1")
            step(server, "create", "node", "node2")
            out = step(server, "apply", "-f", SEED)
            assert "created" in out
            out = step(server, "apply", "-f", SEED)
            assert out.count("unchanged") == 2, "a second apply must change nothing"
            step(server, "get", "nodes")
            step(server, "get", "deployments,services", "-o", "wide")
            step(server, "get", "deployment", "web-app", "-o", "yaml")
            step(server, "describe", "service", "web-app-service")
            print("\n# bad input is refused with the field named, and nothing is stored:")
            bad = (REPO / SEED).read_text().replace("name: web-app\n", "name: Web_App\n", 1)
            bad_file = Path(tmp) / "bad.yaml"
            bad_file.write_text(bad)
            step(server, "apply", "-f", str(bad_file), expect_ok=False)
            step(server, "delete", "-f", SEED)
            step(server, "get", "deployments,services")
        finally:
            srv.stop()
            print("\n# apiserver stopped; its temporary data directory is removed")
    print("\ndemo: OK")


if __name__ == "__main__":
    main()
