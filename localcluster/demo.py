"""`sudo make demo`: what tinykube can do today, run for real and shown command by command.

Today that is the control plane on two *hollow* nodes: an API server over its
SQLite store with the scheduler and controllers beside it, and two kubelets
whose runtime is `fake` (they report pods Running with an IP from their
podCIDR but start no containers: real containers and networking are the next
issues). The seed's session, typed as a user types it:

    tinykube create node node1 / node2        (the seed's `kubectl create node`)
    tinykube kubelet --node-name node1 --runtime fake &   (and node2)
    tinykube apply -f examples/web-app.yaml   (created, then unchanged)
    tinykube get pods -o wide                 (one replica on each node)
    tinykube get endpoints web-app-service    (both pod IPs)
    tinykube describe pod ...                 (why the scheduler chose that node)
    tinykube delete -f examples/web-app.yaml  (the garbage collector removes the pods)

Everything runs on loopback with its data in a temporary directory; all of
it is stopped and removed when the demo ends, even when a step fails. Every
command is printed before its output, so the run reads like a terminal
session. The demo grows with the project until it is the two-node cluster
serving the seed's nginx across nodes.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from localcluster.processes import REPO, ApiServerProcess, KubeletProcess, tinykube_cmd

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


def run_quiet(server: str, *args: str) -> str:
    proc = subprocess.run(
        [*tinykube_cmd(), "--server", server, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    return proc.stdout


def wait_until(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    print(f"\n# waiting until {what} ...", flush=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise SystemExit(f"demo: timed out waiting until {what}")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tinykube-demo-") as tmp:
        srv = ApiServerProcess(Path(tmp) / "data")
        kubelets = [KubeletProcess(n, srv.address, Path(tmp) / "logs") for n in ("node1", "node2")]
        print(f"$ tinykube apiserver --data-dir {srv.data_dir} --listen {srv.address} &")
        srv.start()
        try:
            server = srv.address
            step(server, "version")
            step(server, "create", "node", "node1")
            step(server, "create", "node", "node2")
            for k in kubelets:
                print(f"\n$ tinykube kubelet --node-name {k.node} --runtime fake &")
                k.start()
            wait_until(
                "both nodes are Ready",
                lambda: run_quiet(server, "get", "nodes").count(" Ready ") == 2,
            )
            step(server, "get", "nodes", "-o", "wide")
            out = step(server, "apply", "-f", SEED)
            assert "created" in out
            out = step(server, "apply", "-f", SEED)
            assert out.count("unchanged") == 2, "a second apply must change nothing"
            wait_until(
                "both replicas are Running",
                lambda: run_quiet(server, "get", "pods").count("Running") == 2,
            )
            pods = step(server, "get", "pods", "-o", "wide")
            nodes = {line.split()[6] for line in pods.splitlines()[1:] if line.strip()}
            assert nodes == {"node1", "node2"}, f"replicas must spread over both nodes: {nodes}"
            print("\n# one replica on each node:", ", ".join(sorted(nodes)))
            wait_until(
                "the Service has both endpoints",
                lambda: run_quiet(server, "get", "endpoints", "web-app-service").count(":80") == 2,
            )
            step(server, "get", "deployments,replicasets,services,endpoints", "-o", "wide")
            first_pod = pods.splitlines()[1].split()[0]
            step(server, "describe", "pod", first_pod)
            print("\n# bad input is refused with the field named, and nothing is stored:")
            bad = (REPO / SEED).read_text().replace("name: web-app\n", "name: Web_App\n", 1)
            bad_file = Path(tmp) / "bad.yaml"
            bad_file.write_text(bad)
            step(server, "apply", "-f", str(bad_file), expect_ok=False)
            step(server, "delete", "-f", SEED)
            wait_until(
                "the garbage collector and kubelets removed the pods",
                lambda: "web-app" not in run_quiet(server, "get", "pods"),
            )
            step(server, "get", "all")
        finally:
            for k in kubelets:
                k.stop()
            srv.stop()
            print("\n# kubelets and apiserver stopped; the temporary data directory is removed")
    print("\ndemo: OK")


if __name__ == "__main__":
    main()
