"""`sudo make demo`: a two-node cluster on this machine, the seed manifest on it, and the proof.

The session a user would type, run for real and printed command by command:

    tinykube up --nodes 2 --name demo          nodes are network namespaces on an underlay
                                               bridge, each with containerd and a kubelet (the
                                               netplugin agent in its process); the API server
                                               runs on node1, TLS with the cluster's own
                                               certificates, and namespace default enforces
                                               Pod Security's baseline level
    tinykube get nodes -o wide                 Ready, with podCIDRs, addresses, VTEPs
    tinykube apply -f examples/web-app.yaml    the seed, unchanged
    tinykube get pods -o wide                  one nginx replica on each node
    tinykube apply -f examples/web-app-nodeport.yaml   the seed's Service is ClusterIP only
    node-shell node1/node2 -- curl ClusterIP   the Service from each node: both replicas answer
    run probe --rm --image busybox -- wget     from a pod, by the Service's DNS name
    node-shell underlay -- curl NODE:NODEPORT  from outside the cluster, through each node

The nginx image's page ends with "Served by pod <name> at <IP>", so every
answer says which replica gave it; the demo fails unless both replicas answer
on each path. The cluster is left running for the reader to explore (the demo
prints what to try next); `sudo tinykube down --name demo` removes it, and
running the demo again reuses it. Nothing leaves the machine: the cluster's
addresses exist only inside its namespaces.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable

from localcluster.processes import REPO, cluster_env, tinykube_cmd

NAME = "demo"
SEED = "examples/web-app.yaml"
SERVED_BY = re.compile(r"Served by pod ([a-z0-9-]+)")
NODE_IPS = {"node1": "10.201.0.11", "node2": "10.201.0.12"}
NODEPORT = 30080
NODEPORT_SERVICE = "examples/web-app-nodeport.yaml"  # nodePort 30080


class DemoFailed(SystemExit):
    def __init__(self, message: str) -> None:
        logs = f"/var/lib/tinykube/clusters/{NAME}/logs"
        super().__init__(f"\ndemo failed: {message}\n(the cluster's logs: {logs})")


def tk(*args: str, show: bool = True, stdin: str | None = None, check: bool = True) -> str:
    """Run `tinykube ARGS`; print the command and its output like a terminal when `show`."""
    if show:
        print(f"\n$ tinykube {shlex.join(args)}", flush=True)
    proc = subprocess.run(
        [*tinykube_cmd(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=cluster_env(NAME),
        timeout=180,
    )
    if show:
        sys.stdout.write(proc.stdout + proc.stderr)
        sys.stdout.flush()
    if check and proc.returncode != 0:
        raise DemoFailed(f"tinykube {shlex.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc.stdout


def wait_for(check: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise DemoFailed(f"timed out waiting for {what}")
        time.sleep(1)


def running_pods() -> dict[str, str]:
    """web-app pod name -> node, for the Running ones that are not being deleted."""
    listed = json.loads(tk("get", "pods", "-l", "app=web-app", "-o", "json", show=False))
    return {
        pod["metadata"]["name"]: pod["spec"].get("nodeName", "")
        for pod in listed.get("items", [])
        if pod.get("status", {}).get("phase") == "Running"
        and "deletionTimestamp" not in pod["metadata"]
    }


def settled() -> bool:
    """Two web-app pods, both Running, none on its way out (a rollout has finished)."""
    listed = json.loads(tk("get", "pods", "-l", "app=web-app", "-o", "json", show=False))
    return len(listed.get("items", [])) == 2 and len(running_pods()) == 2


def replicas_answering(argv_prefix: list[str], url: str, tries: int = 12) -> set[str]:
    """Ask `url` several times (through `tinykube ...argv_prefix curl`); the pods that answered."""
    seen: set[str] = set()
    for _ in range(tries):
        out = tk(*argv_prefix, "curl", "-s", "-m", "3", url, show=False, check=False)
        seen.update(SERVED_BY.findall(out))
    return seen


def prove(path: str, seen: set[str], want: set[str]) -> None:
    mark = "ok  " if seen == want else "FAIL"
    print(f"  {mark} {path}: answered by {', '.join(sorted(seen)) or 'nobody'}", flush=True)
    if seen != want:
        raise DemoFailed(f"{path}: expected answers from {sorted(want)}, got {sorted(seen)}")


def main() -> None:
    if os.geteuid() != 0:
        raise SystemExit("the demo builds network namespaces and runs containerd: run it as root")
    print("tinykube demo: a two-node cluster on this machine, running examples/web-app.yaml")
    tk("up", "--nodes", "2", "--name", NAME)
    tk("get", "nodes", "-o", "wide")
    tk("apply", "-f", SEED)
    tk("rollout", "status", "deployment/web-app")  # on a rerun, the seed may change the app back
    wait_for(settled, "exactly two web-app replicas Running")
    pods = running_pods()
    if len(set(pods.values())) != 2:  # a rerun after a node failure: spread them again
        tk("rollout", "restart", "deployment/web-app", check=False)
        wait_for(lambda: settled() and len(set(running_pods().values())) == 2, "one per node")
        pods = running_pods()
    tk("get", "pods", "-o", "wide")
    tk("apply", "-f", NODEPORT_SERVICE)
    tk("get", "services")
    service = json.loads(tk("get", "service", "web-app-service", "-o", "json", show=False))
    cluster_ip = service["spec"]["clusterIP"]
    want = set(pods)

    print("\nProof: every path reaches both replicas (the page names the pod that served it)")
    for node in ("node1", "node2"):
        seen = replicas_answering(["node-shell", node, "--"], f"http://{cluster_ip}/")
        prove(f"ClusterIP {cluster_ip} from {node}", seen, want)
    loop = "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do wget -qO- http://web-app-service/; done"
    seen = set()
    for _ in range(3):
        out = tk("run", "probe", "--rm", "--image", "busybox", "--", "sh", "-c", loop, show=False)
        seen.update(SERVED_BY.findall(out))
        if seen == want:
            break
    prove("http://web-app-service/ (DNS) from a pod", seen, want)
    for node, address in NODE_IPS.items():
        url = f"http://{address}:{NODEPORT}/"
        seen = replicas_answering(["node-shell", "underlay", "--"], url)
        prove(f"NodePort {url} from the underlay, via {node}", seen, want)

    print(
        f"""
The cluster "{NAME}" keeps running. Try:
  tinykube get pods -o wide
  tinykube describe pod {sorted(pods)[0]}          # the scheduler's placement record, events
  tinykube node-shell node1 -- curl -s http://{cluster_ip}/
  tinykube run probe --rm -it --image busybox -- wget -qO- http://web-app-service/
  tinykube logs {sorted(pods)[0]}
  tinykube scale deployment/web-app --replicas 4 && tinykube get pods -o wide
  tinykube set image deployment/web-app web-app=nginx:1.25 && tinykube rollout status deploy/web-app
  tinykube node-shell node1 -- nft list table ip tinykube     # the Service rules
  sudo tinykube node-shell underlay -- tinykube --kubeconfig ~/.tinykube/config get nodes
                                              # the admin over TLS, from the cluster's network
  tinykube status
  sudo tinykube down --name {NAME}                            # removes all of it
(with sudo, or as the user who ran `sudo make demo`: the CLI finds the cluster by itself)"""
    )


if __name__ == "__main__":
    main()
