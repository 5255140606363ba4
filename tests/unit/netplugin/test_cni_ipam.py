"""The on-disk IPAM: round robin, idempotence, exhaustion, restarts, parallel allocators."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from netplugin.cni.errors import AddressesExhausted, IOFailure
from netplugin.cni.ipam import DiskIPAM

NET29 = ipaddress.IPv4Network("10.0.0.0/29")


def ip(last: int, net: ipaddress.IPv4Network = NET29) -> ipaddress.IPv4Address:
    return net.network_address + last


def test_the_docstrings_worked_example(tmp_path: Path) -> None:
    ipam = DiskIPAM(str(tmp_path), "tinykube", NET29)
    assert ipam.allocate("a", "eth0") == ip(2)
    assert ipam.allocate("b", "eth0") == ip(3)
    assert ipam.release("a", "eth0") == ip(2)
    assert ipam.allocate("c", "eth0") == ip(4)  # round robin: not the freed .2
    assert ipam.allocate("d", "eth0") == ip(5)
    assert ipam.allocate("e", "eth0") == ip(6)
    assert ipam.allocate("f", "eth0") == ip(2)  # wrapped; .3 is b's
    with pytest.raises(AddressesExhausted) as info:
        ipam.allocate("g", "eth0")
    assert "10.0.0.0/29" in info.value.msg and info.value.code == 100


def test_files_on_disk(tmp_path: Path) -> None:
    ipam = DiskIPAM(str(tmp_path), "tinykube", NET29)
    ipam.allocate("c1", "eth0")
    network_dir = tmp_path / "tinykube"
    assert (network_dir / "10.0.0.2").read_text() == "c1\neth0\n"
    assert (network_dir / "last_reserved_ip").read_text().strip() == "10.0.0.2"
    assert ipam.reserved() == {ip(2): ("c1", "eth0")}


def test_never_network_gateway_or_broadcast(tmp_path: Path) -> None:
    net = ipaddress.IPv4Network("10.9.0.0/28")
    ipam = DiskIPAM(str(tmp_path), "n", net)
    got = {ipam.allocate(f"c{i}", "eth0") for i in range(13)}
    assert got == {ip(i, net) for i in range(2, 15)}
    with pytest.raises(AddressesExhausted):
        ipam.allocate("one-more", "eth0")


def test_a_gateway_elsewhere_is_skipped_too(tmp_path: Path) -> None:
    ipam = DiskIPAM(str(tmp_path), "n", NET29, gateway=ip(4))
    got = [ipam.allocate(f"c{i}", "eth0") for i in range(4)]
    assert got == [ip(2), ip(3), ip(5), ip(6)]


def test_same_container_twice_gets_the_same_address(tmp_path: Path) -> None:
    ipam = DiskIPAM(str(tmp_path), "tinykube", NET29)
    first = ipam.allocate("c1", "eth0")
    assert ipam.allocate("c1", "eth0") == first
    assert ipam.allocate("c1", "net1") != first  # another interface of the pod
    assert ipam.lookup("c1", "eth0") == first


def test_release_is_idempotent(tmp_path: Path) -> None:
    ipam = DiskIPAM(str(tmp_path), "tinykube", NET29)
    assert ipam.release("never", "eth0") is None  # nothing allocated, no directory yet
    ipam.allocate("c1", "eth0")
    assert ipam.release("c1", "eth0") == ip(2)
    assert ipam.release("c1", "eth0") is None
    assert ipam.lookup("c1", "eth0") is None
    assert ipam.reserved() == {}


def test_restart_is_a_new_object_over_the_same_directory(tmp_path: Path) -> None:
    DiskIPAM(str(tmp_path), "tinykube", NET29).allocate("a", "eth0")
    DiskIPAM(str(tmp_path), "tinykube", NET29).allocate("b", "eth0")
    again = DiskIPAM(str(tmp_path), "tinykube", NET29)
    assert again.lookup("a", "eth0") == ip(2)
    assert again.allocate("b", "eth0") == ip(3)
    assert again.release("a", "eth0") == ip(2)
    assert DiskIPAM(str(tmp_path), "tinykube", NET29).allocate("c", "eth0") == ip(4)


def test_networks_are_separate_directories(tmp_path: Path) -> None:
    a = DiskIPAM(str(tmp_path), "one", NET29)
    b = DiskIPAM(str(tmp_path), "two", NET29)
    assert a.allocate("c", "eth0") == b.allocate("c", "eth0") == ip(2)


def test_a_changed_subnet_releases_old_reservations(tmp_path: Path) -> None:
    DiskIPAM(str(tmp_path), "n", NET29).allocate("c1", "eth0")
    moved = DiskIPAM(str(tmp_path), "n", ipaddress.IPv4Network("10.0.1.0/29"))
    assert moved.lookup("c1", "eth0") is None  # not in the new subnet
    assert moved.release("c1", "eth0") == ip(2)  # but DEL still frees it


WORKER = textwrap.dedent(
    """
    import ipaddress, sys
    from netplugin.cni.ipam import DiskIPAM
    ipam = DiskIPAM(sys.argv[1], "tinykube", ipaddress.IPv4Network("10.1.0.0/24"))
    for i in range(int(sys.argv[3])):
        print(ipam.allocate(f"{sys.argv[2]}-{i}", "eth0"), flush=True)
    """
)


def test_concurrent_allocators_in_several_processes_get_distinct_addresses(
    tmp_path: Path,
) -> None:
    workers, each = 4, 20
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path), f"w{n}", str(each)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(workers)
    ]
    addresses: list[str] = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        addresses += out.split()
    assert len(addresses) == workers * each
    assert len(set(addresses)) == workers * each
    reserved = DiskIPAM(str(tmp_path), "tinykube", ipaddress.IPv4Network("10.1.0.0/24")).reserved()
    assert {str(a) for a in reserved} == set(addresses)
    assert {owner for owner, _ in reserved.values()} == {
        f"w{n}-{i}" for n in range(workers) for i in range(each)
    }


def test_an_unusable_directory_is_an_io_error(tmp_path: Path) -> None:
    (tmp_path / "tinykube").write_text("a file where the directory should be")
    with pytest.raises(IOFailure) as info:
        DiskIPAM(str(tmp_path), "tinykube", NET29).allocate("c1", "eth0")
    assert info.value.code == 5 and str(tmp_path / "tinykube") in info.value.msg
