"""`tinykube pki init` through click's CliRunner: the files, their SANs and modes, idempotence."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from apimachinery import certs, kubeconfig
from apimachinery.certs import Identity
from cli.main import cli

CERT_FILES = ("ca", "apiserver", "apiserver-kubelet-client", "kubelet-node1")
KUBECONFIGS = ("admin.conf", "scheduler.conf", "controller-manager.conf", "kubelet-node1.conf")
ARGS = [
    "--apiserver-address",
    "192.168.56.10",
    "--apiserver-address",
    "10.0.2.15",
    "--hostname",
    "api.example.com",
    "--node",
    "node1=192.168.56.11,fd00::11",
]


def init(directory: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["pki", "init", "--dir", str(directory), *args])


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*.*")}


@pytest.fixture
def made(tmp_path: Path) -> Path:
    directory = tmp_path / "etc" / "tinykube"
    result = init(directory, *ARGS)
    assert result.exit_code == 0, result.output
    return directory


def test_init_writes_kubeadms_layout_with_private_modes(made: Path) -> None:
    assert mode(made) == mode(made.parent) == mode(made / "pki") == 0o700
    for base in CERT_FILES:
        assert mode(made / "pki" / f"{base}.crt") == 0o644
        assert mode(made / "pki" / f"{base}.key") == 0o600
    for name in KUBECONFIGS:
        assert mode(made / name) == 0o600
    names = sorted(p.name for p in made.iterdir())
    assert names == sorted([*KUBECONFIGS, "pki"])
    assert len(list((made / "pki").iterdir())) == 2 * len(CERT_FILES)


def test_init_prints_each_file_and_the_ca_hash(tmp_path: Path) -> None:
    result = init(tmp_path / "d")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"[certs] wrote {tmp_path / 'd' / 'pki' / 'ca.crt'}"
    assert f"[kubeconfig] wrote {tmp_path / 'd' / 'admin.conf'}" in lines
    ca = certs.read_cert(tmp_path / "d" / "pki" / "ca.crt")
    assert lines[-1] == f"CA hash: {certs.ca_hash(ca)}"
    assert len(lines) == 2 * 3 + 3 + 1  # ca, apiserver, kubelet client; 3 kubeconfigs; hash


def test_the_apiserver_certificate_holds_every_name(made: Path) -> None:
    cert = certs.read_cert(made / "pki" / "apiserver.crt")
    ca = certs.read_cert(made / "pki" / "ca.crt")
    certs.verify_signed_by(cert, ca)
    assert certs.identity(ca) == Identity("tinykube-ca")
    assert certs.identity(cert) == Identity("kube-apiserver")
    ips, dns = certs.subject_alt_names(cert)
    want_ips = ["192.168.56.10", "10.0.2.15", "127.0.0.1", "::1", "10.96.0.1"]
    assert ips == [ipaddress.ip_address(ip) for ip in want_ips]
    assert dns == [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "localhost",
        "api.example.com",
    ]
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_kubelet_certificates(made: Path) -> None:
    ca = certs.read_cert(made / "pki" / "ca.crt")
    client = certs.read_cert(made / "pki" / "apiserver-kubelet-client.crt")
    certs.verify_signed_by(client, ca)
    assert certs.identity(client) == Identity("kube-apiserver-kubelet-client", ("system:masters",))
    serving = certs.read_cert(made / "pki" / "kubelet-node1.crt")
    certs.verify_signed_by(serving, ca)
    assert certs.identity(serving) == Identity("system:node:node1", ("system:nodes",))
    assert certs.subject_alt_names(serving) == (
        [ipaddress.ip_address("192.168.56.11"), ipaddress.ip_address("fd00::11")],
        ["node1"],
    )


@pytest.mark.parametrize(
    ("name", "user", "groups"),
    [
        ("admin.conf", "kubernetes-admin", ("system:masters",)),
        ("scheduler.conf", "system:kube-scheduler", ()),
        ("controller-manager.conf", "system:kube-controller-manager", ()),
        ("kubelet-node1.conf", "system:node:node1", ("system:nodes",)),
    ],
)
def test_kubeconfigs_embed_the_ca_and_the_users_certificate(
    made: Path, name: str, user: str, groups: tuple[str, ...]
) -> None:
    config = kubeconfig.load(made / name)
    assert config.server == "https://192.168.56.10:6443"
    assert config.target == "192.168.56.10:6443"
    assert config.tls
    assert config.ca_pem == (made / "pki" / "ca.crt").read_bytes()
    assert config.cert_pem is not None and config.key_pem is not None
    cert = certs.load_cert_pem(config.cert_pem)
    certs.verify_signed_by(cert, certs.load_cert_pem(config.ca_pem))
    assert certs.identity(cert) == Identity(user, groups)
    assert config.context == f"{user}@kubernetes"
    text = (made / name).read_text()
    assert "certificate-authority-data: " in text and "client-key-data: " in text


def test_init_again_keeps_every_file(made: Path) -> None:
    before = snapshot(made)
    result = init(made, *ARGS)
    assert result.exit_code == 0, result.output
    assert snapshot(made) == before
    lines = result.stdout.splitlines()[:-1]
    assert lines and all(" kept " in line for line in lines)


def test_a_new_node_writes_only_its_files(made: Path) -> None:
    before = snapshot(made)
    result = init(made, *ARGS, "--node", "node2")
    assert result.exit_code == 0, result.output
    after = snapshot(made)
    added = sorted(set(after) - set(before))
    assert added == ["kubelet-node2.conf", "pki/kubelet-node2.crt", "pki/kubelet-node2.key"]
    assert all(after[name] == data for name, data in before.items())
    serving = certs.read_cert(made / "pki" / "kubelet-node2.crt")
    assert certs.subject_alt_names(serving) == ([], ["node2"])


def test_force_writes_everything_anew(made: Path) -> None:
    old_hash = certs.ca_hash(certs.read_cert(made / "pki" / "ca.crt"))
    before = snapshot(made)
    result = init(made, *ARGS, "--force")
    assert result.exit_code == 0, result.output
    after = snapshot(made)
    assert set(after) == set(before)
    assert all(after[name] != before[name] for name in before)
    assert result.stdout.splitlines()[-1] != f"CA hash: {old_hash}"
    config = kubeconfig.load(made / "admin.conf")
    assert config.ca_pem == (made / "pki" / "ca.crt").read_bytes()


def test_kept_files_that_no_longer_fit_are_errors(made: Path) -> None:
    result = init(made, *ARGS, "--apiserver-address", "10.1.1.1")
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {made / 'pki' / 'apiserver.crt'}: "
        "not valid for 10.1.1.1 (use --force to add them)\n"
    )
    assert init(made, *ARGS, "--apiserver-address", "10.1.1.1", "--force").exit_code == 0


def test_a_ca_without_its_key_is_an_error(made: Path) -> None:
    (made / "pki" / "ca.key").unlink()
    result = init(made, *ARGS)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {made / 'pki' / 'ca.crt'} exists but ")
    assert "(use --force for a new CA)" in result.stderr


def test_leaves_of_another_ca_are_errors(made: Path) -> None:
    for name in ("ca.crt", "ca.key"):
        (made / "pki" / name).unlink()
    result = init(made, *ARGS)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {made / 'pki' / 'apiserver.crt'}: certificate ")
    assert "is not signed by CA" in result.stderr


def test_a_kubeconfig_for_another_server_is_an_error(tmp_path: Path) -> None:
    assert init(tmp_path, "--apiserver-address", "10.0.0.1").exit_code == 0
    (tmp_path / "pki" / "apiserver.crt").unlink()  # so that the kubeconfig is what differs
    result = init(tmp_path, "--apiserver-address", "10.0.0.2", "--apiserver-address", "10.0.0.1")
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {tmp_path / 'admin.conf'}: its server is https://10.0.0.1:6443, "
        "not https://10.0.0.2:6443 (--force)\n"
    )


def test_defaults_and_ipv6_servers(tmp_path: Path) -> None:
    assert init(tmp_path / "a").exit_code == 0
    assert kubeconfig.load(tmp_path / "a" / "admin.conf").server == "https://127.0.0.1:6443"
    result = init(tmp_path / "b", "--apiserver-address", "fd00::1", "--apiserver-port", "7443")
    assert result.exit_code == 0, result.output
    assert kubeconfig.load(tmp_path / "b" / "admin.conf").target == "[fd00::1]:7443"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--apiserver-address", "foo"], 'error: --apiserver-address "foo": not an IP address'),
        (["--service-cluster-ip", "10.96.0"], 'error: --service-cluster-ip "10.96.0": not an IP'),
        (["--node", "n1=10.0.0.1,nope"], 'error: --node "nope": not an IP address'),
        (["--node", "n1="], 'error: --node "n1=": no IP address after "="'),
        (["--node", "Node_1"], 'error: --node "Node_1": a lowercase RFC 1123 subdomain'),
        (["--node", "n1", "--node", "n1=10.0.0.1"], 'error: --node "n1": given more than once'),
        (["--hostname", "-bad"], 'error: --hostname "-bad": a lowercase RFC 1123 subdomain'),
    ],
)
def test_bad_input_is_one_line_and_exit_1(tmp_path: Path, args: list[str], message: str) -> None:
    result = init(tmp_path / "d", *args)
    assert result.exit_code == 1
    assert result.stderr.startswith(message)
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "d").exists()  # nothing written before the input is checked


def test_an_unwritable_directory_is_one_line_and_exit_1(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = init(blocker / "sub")
    assert result.exit_code == 1
    assert result.stderr == f"error: {blocker / 'sub'}: Not a directory\n"
