"""vagrant/: what can be checked without VMs.

* the Vagrantfile parses (`ruby -c`) and, evaluated against a recording stand-in
  for Vagrant's configuration object, defines node1 and node2 with the
  private addresses, boxes, resources and provisioner arguments asked for
  (environment overrides included, bad ones refused by name);
* every shell script is shellcheck-clean, strict (`set -euo pipefail`) and
  executable;
* every systemd unit passes `systemd-analyze verify` (in a scratch root that
  holds the host's stock units and a stand-in for /opt/tinykube/bin/tinykube,
  so the check needs neither a running systemd nor an installed tinykube),
  and reads the EnvironmentFile and variable that localcluster/nodeconfig.py
  renders;
* verify.sh, driven by a stand-in `tinykube` CLI, prints PASS on a healthy
  cluster and FAIL naming the check for each fault.

The tools come from the Makefile's APT_PACKAGES (ruby, shellcheck, systemd);
a test whose tool is missing is skipped with its name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from localcluster import nodeconfig

REPO = Path(__file__).resolve().parents[2]
VAGRANT = REPO / "vagrant"
SCRIPTS = sorted(
    [
        VAGRANT / "verify.sh",
        *(p for d in ("provision", "box", "test") for p in VAGRANT.glob(f"{d}/*.sh")),
    ]
)
UNITS = sorted(VAGRANT.glob("systemd/*.service"))
UNIT_ENV = {
    "tinykube-apiserver.service": ("apiserver.env", nodeconfig.APISERVER_ENV, "apiserver"),
    "tinykube-kubelet.service": ("kubelet.env", nodeconfig.KUBELET_ENV, "kubelet"),
}


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (the Makefile's APT_PACKAGES brings it)")
    return path


# ---- Vagrantfile ---------------------------------------------------------------------------

RECORDER = r"""
require "json"

# Records what a Vagrantfile sets and calls, in place of Vagrant's config object.
class Recorder
  def initialize
    @attrs = {}
    @calls = []
  end

  def method_missing(name, *args, **kw, &blk)
    key = name.to_s
    if key.end_with?("=")
      @attrs[key.chomp("=")] = args.first
      return args.first
    end
    return (@attrs[key] ||= Recorder.new) if args.empty? && kw.empty? && blk.nil?

    call = { "call" => key, "args" => args, "kw" => kw }
    if blk
      inner = Recorder.new
      override = Recorder.new
      blk.arity == 2 ? blk.call(inner, override) : blk.call(inner)
      call["block"] = inner.to_h
      call["override"] = override.to_h if blk.arity == 2
    end
    @calls << call
    nil
  end

  def respond_to_missing?(*)
    true
  end

  def to_h
    { "attrs" => @attrs.transform_values { |v| v.is_a?(Recorder) ? v.to_h : v },
      "calls" => @calls }
  end
end

module Vagrant
  def self.configure(_version)
    config = Recorder.new
    yield config
    puts JSON.generate(config.to_h)
  end
end

Dir.chdir(File.dirname(ARGV[0]))
load File.basename(ARGV[0])
"""


def evaluate_vagrantfile(tmp_path: Path, **env: str) -> dict[str, Any]:
    ruby = need("ruby")
    script = tmp_path / "recorder.rb"
    script.write_text(RECORDER)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TINYKUBE_")}
    proc = subprocess.run(
        [ruby, str(script), str(VAGRANT / "Vagrantfile")],
        capture_output=True,
        text=True,
        env={**clean, **env},
        check=False,
        timeout=60,
    )
    if proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def calls(recorded: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [c for c in recorded["calls"] if c["call"] == name]


def machines(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    vm = config["attrs"]["vm"]
    return {c["args"][0]: c for c in calls(vm, "define")}


def test_vagrantfile_syntax() -> None:
    ruby = need("ruby")
    proc = subprocess.run(
        [ruby, "-c", str(VAGRANT / "Vagrantfile")], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "Syntax OK" in proc.stdout


def test_vagrantfile_two_nodes_with_defaults(tmp_path: Path) -> None:
    config = evaluate_vagrantfile(tmp_path)
    vm = config["attrs"]["vm"]
    assert vm["attrs"]["box"] == "ubuntu/jammy64"
    synced = calls(vm, "synced_folder")
    assert synced[0]["args"] == ["..", "/vagrant"]
    providers = {c["args"][0]: c for c in calls(vm, "provider")}
    vbox = providers["virtualbox"]["block"]["attrs"]
    assert (vbox["cpus"], vbox["memory"]) == (2, 2048)
    libvirt = providers["libvirt"]
    assert libvirt["override"]["attrs"]["vm"]["attrs"]["box"] == "generic/ubuntu2204"
    assert libvirt["block"]["attrs"]["memory"] == 2048

    nodes = machines(config)
    assert list(nodes) == ["node1", "node2"]
    assert nodes["node1"]["kw"] == {"primary": True}
    for name, ip in (("node1", "192.168.56.11"), ("node2", "192.168.56.12")):
        machine = nodes[name]["block"]["attrs"]["vm"]
        assert machine["attrs"]["hostname"] == name
        network = calls(machine, "network")
        assert network[0]["args"] == ["private_network"]
        assert network[0]["kw"] == {"ip": ip}
        provisioners = {c["args"][0]: c["kw"] for c in calls(machine, "provision")}
        assert list(provisioners) == ["prerequisites", "tinykube", "node"]
        for kw in provisioners.values():
            assert kw["type"] == "shell"
            assert (VAGRANT / kw["path"]).is_file()
        assert provisioners["prerequisites"]["args"] == ["containerd"]
        args = provisioners["node"]["args"]
        assert args[args.index("--node-name") + 1] == name
        assert args[args.index("--node-ip") + 1] == ip
        assert args[args.index("--server") + 1] == "192.168.56.11:6443"
        assert ("--control-plane" in args) == (name == "node1")
        assert "--cluster-dns" in args
        # node1's pki init covers both nodes (their kubelets' serving certificates)
        peers = [args[i + 1] for i, arg in enumerate(args) if arg == "--cluster-node"]
        want = ["node1=192.168.56.11", "node2=192.168.56.12"] if name == "node1" else []
        assert peers == want


def test_vagrantfile_environment_overrides(tmp_path: Path) -> None:
    config = evaluate_vagrantfile(
        tmp_path,
        TINYKUBE_BOX="example/jammy",
        TINYKUBE_CPUS="4",
        TINYKUBE_MEMORY="4096",
        TINYKUBE_NODE1_IP="10.20.0.21",
        TINYKUBE_NODE2_IP="10.20.0.22",
        TINYKUBE_RUNTIME="docker",
    )
    vm = config["attrs"]["vm"]
    assert vm["attrs"]["box"] == "example/jammy"
    providers = {c["args"][0]: c for c in calls(vm, "provider")}
    assert providers["libvirt"]["override"]["attrs"]["vm"]["attrs"]["box"] == "example/jammy"
    assert providers["virtualbox"]["block"]["attrs"]["cpus"] == 4
    assert providers["virtualbox"]["block"]["attrs"]["memory"] == 4096
    node2 = machines(config)["node2"]["block"]["attrs"]["vm"]
    assert calls(node2, "network")[0]["kw"] == {"ip": "10.20.0.22"}
    provisioners = {c["args"][0]: c["kw"] for c in calls(node2, "provision")}
    assert provisioners["prerequisites"]["args"] == ["docker"]
    args = provisioners["node"]["args"]
    assert args[args.index("--server") + 1] == "10.20.0.21:6443"
    assert args[args.index("--runtime") + 1] == "docker"
    node1 = machines(config)["node1"]["block"]["attrs"]["vm"]
    node1_args = {c["args"][0]: c["kw"] for c in calls(node1, "provision")}["node"]["args"]
    assert "node2=10.20.0.22" in node1_args and "node1=10.20.0.21" in node1_args


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TINYKUBE_RUNTIME": "crio"}, 'TINYKUBE_RUNTIME="crio" is not one of containerd, docker'),
        ({"TINYKUBE_NODE2_IP": "192.168.56"}, 'TINYKUBE_NODE2_IP="192.168.56" is not an IP'),
        ({"TINYKUBE_MEMORY": "2G"}, 'TINYKUBE_MEMORY="2G" is not a whole number'),
    ],
)
def test_vagrantfile_bad_overrides_are_named(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    with pytest.raises(AssertionError, match=re.escape(message)):
        evaluate_vagrantfile(tmp_path, **env)


# ---- shell scripts -------------------------------------------------------------------------


def test_scripts_exist() -> None:
    names = {p.name for p in SCRIPTS}
    assert {"prerequisites.sh", "tinykube.sh", "node.sh", "verify.sh"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_is_shellcheck_clean(script: Path) -> None:
    shellcheck = need("shellcheck")
    proc = subprocess.run(
        # -x -P SCRIPTDIR: the files a script sources are checked with it
        [shellcheck, "--shell=bash", "--severity=style", "-x", "-P", "SCRIPTDIR", script.name],
        cwd=script.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_is_strict_and_executable(script: Path) -> None:
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text
    assert script.stat().st_mode & stat.S_IXUSR, f"{script} is not executable"


# ---- systemd units -------------------------------------------------------------------------


def test_units_exist() -> None:
    assert {p.name for p in UNITS} == set(UNIT_ENV)


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_reads_what_nodeconfig_renders(unit: Path) -> None:
    env_name, variable, verb = UNIT_ENV[unit.name]
    text = unit.read_text()
    env_path = f"{nodeconfig.NodePaths().env_dir}/{env_name}"
    assert f"\nEnvironmentFile={env_path}\n" in text
    assert f"\nExecStart=/opt/tinykube/bin/tinykube {verb} ${variable}\n" in text
    cfg = nodeconfig.NodeConfig(node_name="node1", node_ip="192.168.56.11", control_plane=True)
    assert nodeconfig.render_all(cfg)[env_path].startswith(f"{variable}=")


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = need("systemd-analyze")
    stock = Path("/usr/lib/systemd/system")
    if not (stock / "multi-user.target").exists():
        pytest.skip("no stock systemd units in /usr/lib/systemd/system to verify against")
    root = tmp_path / "root"
    shutil.copytree(stock, root / "usr/lib/systemd/system", symlinks=True)
    stub = root / "opt/tinykube/bin/tinykube"  # what vagrant/provision/tinykube.sh installs
    stub.parent.mkdir(parents=True)
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    (root / "etc/systemd/system").mkdir(parents=True)
    for unit in UNITS:
        shutil.copy(unit, root / "etc/systemd/system" / unit.name)
    for unit in UNITS:
        proc = subprocess.run(
            [analyze, "verify", "--man=no", f"--root={root}", f"/etc/systemd/system/{unit.name}"],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert proc.returncode == 0 and not proc.stderr.strip(), (
            f"{unit.name}: {proc.stdout}{proc.stderr}"
        )


# ---- verify.sh against a stand-in CLI ------------------------------------------------------

FAKE_CLI = r"""
import json, os, re, sys

NODES = {"node1": "10.201.0.11", "node2": "10.201.0.12"}
PODS = {"web-app-7d4b9-aaaaa": "10.244.1.2", "web-app-7d4b9-bbbbb": "10.244.2.2"}
CLUSTER_IP = "10.96.0.10"
env = os.environ.get


def counter():
    path = env("FAKE_STATE")
    n = int(open(path).read() or "0") if os.path.exists(path) else 0
    open(path, "w").write(str(n + 1))
    return n


def listed(items):
    return {"apiVersion": "v1", "kind": "List", "items": items}


def pods():
    out = []
    for i, (name, ip) in enumerate(PODS.items()):
        status = {"phase": "Pending"}
        if env("FAKE_PODS_PENDING") != "1":
            status = {"phase": "Running", "podIP": ip,
                      "conditions": [{"type": "Ready", "status": "True"}]}
        node = "node1" if env("FAKE_SAME_NODE") == "1" else f"node{i + 1}"
        out.append({"kind": "Pod", "metadata": {"name": name}, "spec": {"nodeName": node},
                    "status": status})
    return out


def get(kind, name):
    if kind == "nodes":
        return listed([{"kind": "Node", "metadata": {"name": n}, "status": {"addresses": [
            {"type": "InternalIP", "address": ip}]}} for n, ip in NODES.items()])
    if kind == "pods":
        return listed(pods())
    if kind == "pod":
        return {"kind": "Pod", "metadata": {"name": name}, "status": {"phase": "Running"}}
    if kind == "service" and name.startswith("verify-nodeport-"):
        return {"kind": "Service", "metadata": {"name": name}, "spec": {
            "clusterIP": "10.96.0.99", "ports": [{"port": 80, "nodePort": 30080}]}}
    if kind == "service" and name == "web-app-service":
        return {"kind": "Service", "metadata": {"name": name},
                "spec": {"clusterIP": CLUSTER_IP, "ports": [{"port": 80}]}}
    sys.exit(f'Error from server (NotFound): {kind} "{name}" not found')


args = sys.argv[1:]
open(env("FAKE_LOG"), "a").write(" ".join(args) + "\n")
if args[:1] == ["-n"]:  # the global namespace flag (the probes' namespace)
    args = args[2:]
verb = args[0]
if verb == "apply":
    text = sys.stdin.read() if args[-1] == "-" else open(args[-1]).read()
    print("applied", " ".join(re.findall(r"name: (\S+)", text)))
elif verb == "get":
    name = args[2] if len(args) > 2 and not args[2].startswith("-") else ""
    print(json.dumps(get(args[1], name)))
elif verb == "exec":
    probe, host, port, count = args[1], args[-3], args[-2], int(args[-1])
    assert args[2:5] == ["--", "sh", "-c"] and "nc -w 5" in args[5] and port == "80", args
    down = env("FAKE_CLUSTERIP_DOWN", "")
    if env("FAKE_EXEC_BROKEN") == "1":
        sys.exit("error: pod exec: connection refused")
    for _ in range(count):
        print("HTTP/1.1 200 OK")
        if down and f"-{down}-" in probe and host == CLUSTER_IP:
            print("FETCH-FAILED")
        elif env("FAKE_BODY", "named") == "named" and host == CLUSTER_IP:
            print(f"<p>Served by pod {list(PODS)[counter() % 2]}</p>")
        else:
            print("<h1>Welcome to nginx!</h1>")
        print("===END===")
elif verb == "logs":
    if env("FAKE_LOGS_SILENT") != "1":
        for _ in range(counter()):
            print('10.201.0.11 - - [01/Jan/2026] "GET / HTTP/1.1" 200 615')
elif verb == "delete":
    print("deleted")
else:
    sys.exit(f"fake tinykube: unexpected {args}")
"""


def run_verify(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], str]:
    bash = need("bash")
    cli = tmp_path / "fake_tinykube.py"
    cli.write_text(FAKE_CLI)
    log = tmp_path / "cli.log"
    external = tmp_path / "external.sh"
    external.write_text('#!/bin/sh\necho "$@" >>"$EXTERNAL_LOG"\nexit "${FAKE_EXTERNAL_RC:-0}"\n')
    external.chmod(0o755)
    manifest = REPO / "examples" / "web-app.yaml"
    proc = subprocess.run(
        [bash, str(VAGRANT / "verify.sh"), str(manifest)],
        capture_output=True,
        text=True,
        env={
            "PATH": os.environ["PATH"],
            "TINYKUBE": f"{sys.executable} {cli}",
            "VERIFY_EXTERNAL": str(external),
            "PYTHON": sys.executable,
            "VERIFY_RETRIES": "2",
            "VERIFY_INTERVAL": "0.1",
            "VERIFY_TIMEOUT": "3",
            "VERIFY_REQUESTS": "6",
            "FAKE_LOG": str(log),
            "FAKE_STATE": str(tmp_path / "state"),
            "EXTERNAL_LOG": str(tmp_path / "external.log"),
            **env,
        },
        check=False,
        timeout=120,
    )
    return proc, log.read_text() if log.exists() else ""


def test_verify_passes_on_a_healthy_cluster(tmp_path: Path) -> None:
    proc, log = run_verify(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert out.rstrip().endswith("PASS")
    assert "FAIL" not in out
    assert "replicas spread over 2 node(s) of 2" in out
    assert "from node1: ClusterIP http://10.96.0.10:80/ answered 6 of 6" in out
    assert "from node2: pod web-app-7d4b9-aaaaa at 10.244.1.2 (on node1)" in out
    assert "replica web-app-7d4b9-bbbbb answered through the ClusterIP (named" in out
    assert "NodePort http://10.201.0.12:30080/ (node node2) from outside" in out
    external = (tmp_path / "external.log").read_text().split()
    assert external == ["http://10.201.0.11:30080/", "http://10.201.0.12:30080/"]
    # probes pinned to each node on the host network, in a namespace of their own (baseline
    # Pod Security refuses host networking in `default`), then everything of its own deleted
    assert re.search(r"^apply -f \S+web-app.yaml$", log, re.M)
    assert re.search(r"^-n tinykube-verify exec verify-probe-node2-\S+ -- sh -c ", log, re.M)
    assert re.search(r"^-n tinykube-verify delete pod -l app=tinykube-verify .*--now", log, re.M)
    assert re.search(r"^delete service verify-nodeport-\S+ --ignore-not-found", log, re.M)


def test_verify_counts_access_logs_when_pages_name_no_pod(tmp_path: Path) -> None:
    proc, _ = run_verify(tmp_path, FAKE_BODY="plain")
    assert proc.returncode == 0, proc.stdout
    assert "answered through the ClusterIP (" in proc.stdout
    assert "new access-log lines)" in proc.stdout


@pytest.mark.parametrize(
    ("env", "failure"),
    [
        ({"FAKE_SAME_NODE": "1"}, "one replica per node: web-app-7d4b9-aaaaa on node1;"),
        ({"FAKE_PODS_PENDING": "1"}, "2 Running replicas of app=web-app within 3s (have: 0)"),
        (
            {"FAKE_CLUSTERIP_DOWN": "node2"},
            "from node2: ClusterIP http://10.96.0.10:80/ answered 0",
        ),
        ({"FAKE_EXTERNAL_RC": "7"}, "NodePort http://10.201.0.11:30080/ (node node1) from outside"),
        ({"FAKE_EXEC_BROKEN": "1"}, "from node1: ClusterIP http://10.96.0.10:80/ answered 0 of 6"),
        (
            {"FAKE_BODY": "plain", "FAKE_LOGS_SILENT": "1"},
            "replica web-app-7d4b9-aaaaa never answered through the ClusterIP",
        ),
    ],
)
def test_verify_fails_naming_the_check(tmp_path: Path, env: dict[str, str], failure: str) -> None:
    proc, log = run_verify(tmp_path, **env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"FAIL  {failure}" in proc.stdout
    assert "\nFAIL: " in proc.stdout
    assert "PASS" not in proc.stdout
    assert "delete pod -l app=tinykube-verify" in log  # cleaned up on failure too
