"""Fixtures of the storage tests: a real etcd member, killed and removed afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .etcd_server import ETCD, EtcdServer, EtcdTLS, make_tls, stop_all


@pytest.fixture(autouse=True)
def _no_etcd_left_running() -> Iterator[None]:
    """Whatever a test started, no etcd outlives it (even when the test failed)."""
    try:
        yield
    finally:
        stop_all()


def _require_etcd() -> None:
    if not Path(ETCD).exists():
        pytest.skip(f"etcd is not installed ({ETCD}: Debian's etcd-server package)")


@pytest.fixture
def etcd_server(tmp_path: Path) -> Iterator[EtcdServer]:
    """One healthy etcd member on loopback, plaintext."""
    _require_etcd()
    server = EtcdServer(tmp_path / "etcd")
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture
def etcd_tls(tmp_path: Path) -> EtcdTLS:
    """A throwaway CA with a serving pair for 127.0.0.1 and a client pair."""
    return make_tls(tmp_path / "pki")


@pytest.fixture
def etcd_tls_server(tmp_path: Path, etcd_tls: EtcdTLS) -> Iterator[EtcdServer]:
    """One etcd member serving https and requiring a client certificate."""
    _require_etcd()
    server = EtcdServer(tmp_path / "etcd-tls", tls=etcd_tls)
    try:
        server.start()
        yield server
    finally:
        server.remove()
