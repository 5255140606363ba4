"""`tinykube kubelet`'s security flags: what goes together, what is refused before anything runs.

A kubelet with a --kubeconfig serves logs and exec over mutual TLS only, so
the three server TLS flags come as a set and are required then (a unix
socket needs none); --bootstrap-kubeconfig needs the --kubeconfig path it
writes; --server and --kubeconfig exclude each other. A bootstrap that cannot
start (no such file) ends the command with exit 1 and one line.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from tests.unit.kubelet.test_server_tls import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _kubelet(tmp_path: Path, *extra: str) -> tuple[int, str]:
    args = ["kubelet", "--node-name", "node1", "--root-dir", str(tmp_path), *extra]
    result = CliRunner().invoke(cli, args)
    return result.exit_code, result.output


def _tls(pki: Pki) -> list[str]:
    base = pki.directory / "pki"
    return [
        "--tls-cert-file", str(base / "kubelet-node1.crt"),
        "--tls-private-key-file", str(base / "kubelet-node1.key"),
        "--client-ca-file", str(base / "ca.crt"),
    ]  # fmt: skip


def test_a_kubeconfig_needs_the_server_tls_flags(pki: Pki, tmp_path: Path) -> None:
    conf = str(pki.directory / "kubelet-node1.conf")
    code, output = _kubelet(tmp_path, "--kubeconfig", conf)
    assert code == 2
    assert "the kubelet server on 0.0.0.0:10250 needs --tls-cert-file" in output
    assert "served over mutual TLS only" in output
    code, output = _kubelet(tmp_path, "--kubeconfig", conf, _tls(pki)[0], _tls(pki)[1])
    assert code == 2
    assert "also needs --tls-private-key-file, --client-ca-file" in output


def test_flags_that_exclude_or_need_each_other(pki: Pki, tmp_path: Path) -> None:
    conf = str(pki.directory / "kubelet-node1.conf")
    code, output = _kubelet(tmp_path, "--kubeconfig", conf, "--server", "10.0.0.1:6443")
    assert code == 2 and "--server and --kubeconfig: give one" in output
    code, output = _kubelet(tmp_path, "--bootstrap-kubeconfig", conf)
    assert code == 2 and "--bootstrap-kubeconfig needs --kubeconfig" in output


def test_server_tls_files_are_checked(pki: Pki, tmp_path: Path) -> None:
    tls = _tls(pki)
    tls[3] = str(pki.directory / "pki" / "ca.key")  # not the certificate's key
    code, output = _kubelet(tmp_path, "--server", "127.0.0.1:1", *tls)
    assert code == 1 and "is not the key of" in output
    tls[3] = str(tmp_path / "missing.key")
    code, output = _kubelet(tmp_path, "--server", "127.0.0.1:1", *tls)
    assert code == 1 and f"error: {tmp_path / 'missing.key'}: No such file" in output


def test_a_missing_bootstrap_kubeconfig_is_one_line(pki: Pki, tmp_path: Path) -> None:
    args = ["--kubeconfig", str(tmp_path / "kubelet.conf"), *_tls(pki)]
    args += ["--bootstrap-kubeconfig", str(tmp_path / "nope.conf"), "--kubelet-port", "0"]
    args += ["--address", "127.0.0.1", "--cert-dir", str(tmp_path / "pki")]
    code, output = _kubelet(tmp_path, *args)
    assert code == 1
    assert f"error: kubeconfig {tmp_path / 'nope.conf'}: No such file or directory" in output
