"""Pod addresses from the node's podCIDR, reserved on disk: the CNI host-local plugin's store.

Each CNI call is a fresh process, so the allocator keeps no state in memory: it
is a directory, dataDir/<network name>/, e.g. /var/lib/tinykube/cni/tinykube/:

    10.244.1.2          one file per reserved address: "<container id>\\n<ifname>\\n"
    10.244.1.3
    last_reserved_ip    "10.244.1.3": where the next search starts
    lock                flock()ed around every allocate and release

A reservation is the creation of the address's file with O_CREAT|O_EXCL: the
kernel guarantees that only one creator succeeds, and the flock serializes the
read-modify-write of last_reserved_ip among parallel ADDs (containerd starts
pods in parallel). Nothing lives only in memory, so a restart of anything
(containerd, the node agent, the node's tinykube) loses no reservation, and
releasing means unlinking a file. `ls` shows who has which address.

The policy is host-local's, and the same as the fake runtime's in-memory
kubelet/runtime/ipam.py. Layout of 10.244.1.0/24:

    10.244.1.0     network address, never handed out
    10.244.1.1     the gateway: the bridge tk0 holds it (a gateway elsewhere is skipped too)
    10.244.1.2 ..  pods
    10.244.1.255   broadcast, never handed out

Allocation walks upward from just after the last reserved address and wraps
around ("round robin"), so an address freed by a deleted pod is not reused by
the very next pod: a stale Endpoints entry or a client's cached connection then
points at nothing rather than at the wrong pod. Worked example, 10.0.0.0/29
(.2 .. .6 usable):

    allocate a -> .2   allocate b -> .3   release a   allocate c -> .4
    allocate d -> .5   allocate e -> .6   allocate f -> .2 (wrapped; .3 is b's)
    allocate g -> AddressesExhausted "no free address left in subnet 10.0.0.0/29"

A reservation is keyed by (container id, ifname): allocating again for the same
pair returns the same address (a runtime retrying an ADD), and releasing is
idempotent (DEL runs again and again, also for pods whose ADD never happened).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import os
import time
from collections.abc import Iterator
from pathlib import Path

from netplugin.cni.errors import AddressesExhausted, IOFailure, TryAgainLater

LAST_RESERVED = "last_reserved_ip"
LOCK = "lock"
LOCK_TIMEOUT = 30.0  # seconds; a holder this slow is stuck, and the runtime retries later


class DiskIPAM:
    """Reservations of `subnet`'s addresses in data_dir/network/ (created on demand)."""

    def __init__(
        self,
        data_dir: str,
        network: str,
        subnet: ipaddress.IPv4Network,
        gateway: ipaddress.IPv4Address | None = None,
    ) -> None:
        self.dir = Path(data_dir) / network
        self.subnet = subnet
        self.gateway = gateway if gateway is not None else subnet.network_address + 1

    def allocate(self, container_id: str, ifname: str) -> ipaddress.IPv4Address:
        """Reserve an address for (container_id, ifname); the same one if it has one."""
        with self._locked():
            have = self._find(container_id, ifname)
            if have is not None:
                return have
            owner = f"{container_id}\n{ifname}\n".encode()
            for address in self._candidates(self._last_reserved()):
                if self._reserve(address, owner):
                    self._write_last_reserved(address)
                    return address
        usable = len(list(self._candidates(None)))
        raise AddressesExhausted(
            f"no free address left in subnet {self.subnet}",
            f"all {usable} pod addresses of {self.subnet} are reserved (see {self.dir})",
        )

    def release(self, container_id: str, ifname: str) -> ipaddress.IPv4Address | None:
        """Give back the address of (container_id, ifname); None if it had none."""
        if not self.dir.exists():
            return None
        with self._locked():
            address = self._find(container_id, ifname, anywhere=True)
            if address is not None:
                (self.dir / str(address)).unlink(missing_ok=True)
            return address

    def lookup(self, container_id: str, ifname: str) -> ipaddress.IPv4Address | None:
        """The address reserved for (container_id, ifname), if any (no lock: a read)."""
        if not self.dir.exists():
            return None
        return self._find(container_id, ifname)

    def reserved(self) -> dict[ipaddress.IPv4Address, tuple[str, str]]:
        """address -> (container id, ifname) for every reservation on disk."""
        out: dict[ipaddress.IPv4Address, tuple[str, str]] = {}
        for address, owner in self._reservations():
            out[address] = owner
        return out

    # -- internals ---------------------------------------------------------------

    def _candidates(self, last: ipaddress.IPv4Address | None) -> Iterator[ipaddress.IPv4Address]:
        """Pod addresses in round-robin order, starting just after `last`."""
        base = self.subnet.network_address
        first, final = 2, self.subnet.num_addresses - 2
        span = final - first + 1
        start = int(last) - int(base) if last is not None and last in self.subnet else first - 1
        for step in range(1, span + 1):
            address = base + first + (start - first + step) % span
            if address != self.gateway:
                yield address

    def _reserve(self, address: ipaddress.IPv4Address, owner: bytes) -> bool:
        path = self.dir / str(address)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        except OSError as e:
            raise IOFailure(f"cannot reserve {address} in {self.dir}", str(e)) from e
        try:
            os.write(fd, owner)
        except OSError as e:
            path.unlink(missing_ok=True)  # no half-written reservation
            raise IOFailure(f"cannot reserve {address} in {self.dir}", str(e)) from e
        finally:
            os.close(fd)
        return True

    def _reservations(self) -> Iterator[tuple[ipaddress.IPv4Address, tuple[str, str]]]:
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return
        for name in names:
            try:
                address = ipaddress.IPv4Address(name)
            except ValueError:
                continue  # lock, last_reserved_ip, temporary files
            try:
                lines = (self.dir / name).read_text().splitlines()
            except FileNotFoundError:
                continue  # released meanwhile
            lines += ["", ""]
            yield address, (lines[0].strip(), lines[1].strip())

    def _find(
        self, container_id: str, ifname: str, anywhere: bool = False
    ) -> ipaddress.IPv4Address | None:
        for address, owner in self._reservations():
            if owner == (container_id, ifname) and (anywhere or address in self.subnet):
                return address
        return None

    def _last_reserved(self) -> ipaddress.IPv4Address | None:
        try:
            return ipaddress.IPv4Address((self.dir / LAST_RESERVED).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _write_last_reserved(self, address: ipaddress.IPv4Address) -> None:
        tmp = self.dir / f".{LAST_RESERVED}.{os.getpid()}"
        try:
            tmp.write_text(f"{address}\n")
            os.replace(tmp, self.dir / LAST_RESERVED)
        except OSError as e:
            raise IOFailure(f"cannot write {self.dir / LAST_RESERVED}", str(e)) from e

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise IOFailure(f"cannot use IPAM directory {self.dir}", str(e)) from e
        try:
            deadline = time.monotonic() + LOCK_TIMEOUT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as e:
                    if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                        raise IOFailure(f"cannot lock {self.dir / LOCK}", str(e)) from e
                    if time.monotonic() > deadline:
                        raise TryAgainLater(
                            f"IPAM lock {self.dir / LOCK} held for over {LOCK_TIMEOUT:.0f}s"
                        ) from e
                    time.sleep(0.005)
            yield
        finally:
            os.close(fd)  # closing the last descriptor drops the flock
