"""The storage tests' etcd fixtures (tests/unit/storage/conftest.py), for the slow ones here."""

from __future__ import annotations

from tests.unit.storage.conftest import _no_etcd_left_running, etcd_server

__all__ = ["_no_etcd_left_running", "etcd_server"]
