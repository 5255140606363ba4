"""The VM test's parts that can be checked without VMs (the VMs themselves: `make vm-e2e`).

* the Vagrantfile's test overrides: the QEMU driver and CPU model, the pool,
  the domains' prefix, isolated networks made by the test, the mirrors handed
  to each provisioner, and node2's relay of node1's join files;
* vagrant/provision/steps.sh: a failed step stops with its name, its exit
  status and its output's last lines; one out of time says so;
* vagrant/test/vm-e2e.sh on a host that cannot run VMs says why and fails,
  or skips with TINYKUBE_SKIP_VM=1;
* localcluster/vmmirror.py: what the wheelhouse holds and the files it serves.
"""

from __future__ import annotations

import os
import subprocess
import urllib.request
from pathlib import Path

import pytest

from localcluster import vmmirror
from tests.unit.test_vagrant import VAGRANT, calls, evaluate_vagrantfile, machines

TEST_ENV = {
    "TINYKUBE_BOX": "tinykube/debian12-test",
    "TINYKUBE_LIBVIRT_DRIVER": "qemu",
    "TINYKUBE_CPU_MODEL": "qemu64",
    "TINYKUBE_CPUS": "1",
    "TINYKUBE_MEMORY": "1536",
    "TINYKUBE_BOOT_TIMEOUT": "900",
    "TINYKUBE_SSH_INSERT_KEY": "0",
    "TINYKUBE_LIBVIRT_POOL": "tinykube-e2e",
    "TINYKUBE_LIBVIRT_PREFIX": "tinykube-e2e-",
    "TINYKUBE_LIBVIRT_NETWORK": "tinykube-e2e-private",
    "TINYKUBE_LIBVIRT_MGMT_NETWORK": "tinykube-e2e-mgmt=192.168.123.0/24",
    "TINYKUBE_APT_MIRROR": "http://192.168.56.1:8080/apt/",
    "TINYKUBE_PIP_FIND_LINKS": "http://192.168.56.1:8080/wheels/",
    "TINYKUBE_REGISTRY_MIRROR": "192.168.56.1:5000",
}


# ---- the Vagrantfile -------------------------------------------------------------------------


def test_vagrantfile_takes_the_vm_tests_overrides(tmp_path: Path) -> None:
    config = evaluate_vagrantfile(tmp_path, **TEST_ENV)
    assert config["attrs"]["vm"]["attrs"]["boot_timeout"] == 900
    assert config["attrs"]["ssh"]["attrs"]["insert_key"] is False
    libvirt = {c["args"][0]: c for c in calls(config["attrs"]["vm"], "provider")}["libvirt"]
    lv = libvirt["block"]["attrs"]
    assert (lv["driver"], lv["cpu_mode"], lv["cpu_model"]) == ("qemu", "custom", "qemu64")
    assert (lv["cpus"], lv["memory"]) == (1, 1536)
    assert lv["storage_pool_name"] == "tinykube-e2e"
    assert lv["default_prefix"] == "tinykube-e2e-"
    assert lv["management_network_name"] == "tinykube-e2e-mgmt"
    assert lv["management_network_address"] == "192.168.123.0/24"
    assert lv["management_network_mode"] == "none"  # isolated: no NAT to the outside
    assert libvirt["override"]["attrs"]["vm"]["attrs"]["box"] == "tinykube/debian12-test"

    for name, node in machines(config).items():
        vm = node["block"]["attrs"]["vm"]
        network = calls(vm, "network")[0]["kw"]
        assert network["libvirt__network_name"] == "tinykube-e2e-private"
        assert network["libvirt__forward_mode"] == "none"
        provisioners = {c["args"][0]: c["kw"] for c in calls(vm, "provision")}
        assert provisioners["prerequisites"]["env"] == {
            "TINYKUBE_APT_MIRROR": "http://192.168.56.1:8080/apt/"
        }
        assert provisioners["tinykube"]["env"] == {
            "PIP_NO_INDEX": "1",
            "PIP_FIND_LINKS": "http://192.168.56.1:8080/wheels/",
            "PIP_TRUSTED_HOST": "192.168.56.1",
        }
        args = provisioners["node"]["args"]
        assert args[args.index("--registry-mirror") + 1] == "192.168.56.1:5000"
        # node2 (only) fetches node1's join files before it comes up, reloads or provisions
        triggers = calls(node["block"]["attrs"]["trigger"], "before") if name == "node2" else []
        if name == "node2":
            assert triggers[0]["args"] == ["up", "provision", "reload"]
        else:
            assert "trigger" not in node["block"]["attrs"]


def test_vagrantfile_without_overrides_adds_no_mirror(tmp_path: Path) -> None:
    config = evaluate_vagrantfile(tmp_path)
    libvirt = {c["args"][0]: c for c in calls(config["attrs"]["vm"], "provider")}["libvirt"]
    lv = libvirt["block"]["attrs"]
    assert lv["driver"] == "kvm" and "cpu_model" not in lv and "storage_pool_name" not in lv
    node1 = machines(config)["node1"]["block"]["attrs"]["vm"]
    provisioners = {c["args"][0]: c["kw"] for c in calls(node1, "provision")}
    assert provisioners["tinykube"]["env"] == {}
    assert "--registry-mirror" not in provisioners["node"]["args"]


def test_vagrantfile_refuses_a_bad_management_network(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match='"mgmt" is not NAME=CIDR'):
        evaluate_vagrantfile(tmp_path, TINYKUBE_LIBVIRT_MGMT_NETWORK="mgmt")


# ---- steps.sh --------------------------------------------------------------------------------


def run_step(tmp_path: Path, command: str, **env: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "provision.sh"
    script.write_text(
        "#!/usr/bin/env bash\nset -euo pipefail\nexport STEP_SCRIPT=provision.sh\n"
        f"source {VAGRANT / 'provision/steps.sh'}\n{command}\necho after\n"
    )
    return subprocess.run(
        ["bash", str(script)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=False,
        timeout=60,
    )


def test_a_step_that_works_prints_its_name_only(tmp_path: Path) -> None:
    proc = run_step(tmp_path, "step 'say hello' echo hello")
    assert proc.returncode == 0
    assert proc.stdout == "==> say hello\nafter\n"


def test_a_failed_step_names_itself_and_shows_its_last_lines(tmp_path: Path) -> None:
    command = (
        "step 'apt-get install x' bash -c 'seq 1 40; echo E: Unable to locate package x; exit 100'"
    )
    proc = run_step(tmp_path, command, TINYKUBE_STEP_LINES="3")
    assert proc.returncode == 100
    assert "after" not in proc.stdout
    assert proc.stderr.splitlines() == [
        'provision.sh: step "apt-get install x" failed (exit 100); its last lines:',
        "| 39",
        "| 40",
        "| E: Unable to locate package x",
    ]


def test_a_step_out_of_time_says_so(tmp_path: Path) -> None:
    proc = run_step(tmp_path, "step 'wait forever' sleep 30", TINYKUBE_STEP_TIMEOUT="1")
    assert proc.returncode == 124
    assert 'provision.sh: step "wait forever" ran out of time (1 s)' in proc.stderr


# ---- vm-e2e.sh on a host that cannot run VMs -------------------------------------------------


def bare_path(tmp_path: Path) -> str:
    """A PATH with the basic tools and none of vagrant, virsh, qemu."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "date", "uname", "awk", "cat", "cut", "dirname", "mkdir", "id", "grep"):
        found = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, text=True)
        if found.returncode == 0:
            (bin_dir / tool).symlink_to(found.stdout.strip())
    return str(bin_dir)


@pytest.mark.parametrize("skip", ["", "1"])
def test_vm_e2e_says_why_it_cannot_run(tmp_path: Path, skip: str) -> None:
    env = {"PATH": bare_path(tmp_path), "TINYKUBE_VM_CACHE": str(tmp_path / "cache")}
    if skip:
        env["TINYKUBE_SKIP_VM"] = skip
    proc = subprocess.run(
        ["bash", str(VAGRANT / "test/vm-e2e.sh")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    reason = "it must run as root" if os.geteuid() != 0 else "missing vagrant virsh"
    if skip:
        assert proc.returncode == 0, proc.stderr
        assert "vm-e2e: SKIPPED (TINYKUBE_SKIP_VM=1): " + reason in proc.stdout
    else:
        assert proc.returncode == 1
        assert "vm-e2e: this host cannot run the VM test: " + reason in proc.stderr


# ---- the mirror ------------------------------------------------------------------------------


def test_the_wheelhouse_holds_the_dependencies_and_the_build_backend() -> None:
    reqs = vmmirror.requirements()
    names = {r.split("<")[0].split(">")[0].split("=")[0].split(";")[0].strip() for r in reqs}
    assert {"grpcio", "protobuf", "pyyaml", "cryptography", "setuptools", "pip"} <= names
    assert "pytest" not in names and "mypy" not in names  # the dev extra stays home
    assert vmmirror.wheelhouse(Path("/c"), reqs) == vmmirror.wheelhouse(Path("/c"), reqs[::-1])
    assert vmmirror.wheelhouse(Path("/c"), reqs) != vmmirror.wheelhouse(Path("/c"), reqs[1:])


def test_serve_refuses_without_an_apt_repository(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert vmmirror.serve("127.0.0.1", tmp_path) == 1
    assert "no apt repository in" in capsys.readouterr().out


def test_the_mirror_serves_apt_and_wheels_with_listings(tmp_path: Path) -> None:
    (tmp_path / "apt").mkdir()
    (tmp_path / "apt/Packages.gz").write_bytes(b"packages")
    wheels = tmp_path / "wheels-abc"
    wheels.mkdir()
    (wheels / "demo-1.0-py3-none-any.whl").write_bytes(b"wheel")
    www = vmmirror.link_tree(tmp_path, wheels)
    server = vmmirror.serve_files("127.0.0.1", www, port=0)
    port = server.server_address[1]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/apt/Packages.gz") as resp:
            assert resp.read() == b"packages"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/wheels/") as resp:
            assert 'href="demo-1.0-py3-none-any.whl"' in resp.read().decode()
    finally:
        server.shutdown()
        server.server_close()
