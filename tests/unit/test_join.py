"""`tinykube join`: the CA from the handshake is checked against the pin before the token goes out.

The server is a fake token port: a gRPC server whose TLS chain is the API
server's certificate followed by the CA (as apiserver/listeners.py sends it),
answering Version only to the right bearer token and recording every call,
so a refused pin can be shown to have sent nothing.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner
from cryptography import x509

from apimachinery import certs, errors, kubeconfig
from cli.cmd_join import choose_ca, parse_address
from cli.cmd_pki import PkiOptions, init_pki
from cli.main import cli
from protos import api_pb2

TOKEN = "abcdef.0123456789abcdef"


class TokenPort:
    """Version for the right token, Unauthorized for any other; every call recorded."""

    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []
        self.lock = threading.Lock()

    def Version(
        self, request: api_pb2.VersionRequest, context: grpc.ServicerContext
    ) -> api_pb2.VersionInfo:
        metadata = {key: str(value) for key, value in context.invocation_metadata()}
        with self.lock:
            self.calls.append(metadata)
        if metadata.get("authorization") != f"Bearer {TOKEN}":
            context.abort_with_status(errors.to_grpc_status(errors.Unauthorized()))
        return api_pb2.VersionInfo(git_version="v0.1.0")


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    init_pki(PkiOptions(directory=directory), echo=lambda _line: None)
    return directory


@pytest.fixture
def token_port(pki_dir: Path) -> Iterator[tuple[TokenPort, int]]:
    pki = pki_dir / "pki"
    chain = (pki / "apiserver.crt").read_bytes() + (pki / "ca.crt").read_bytes()
    credentials = grpc.ssl_server_credentials([((pki / "apiserver.key").read_bytes(), chain)])
    servicer = TokenPort()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    version = grpc.unary_unary_rpc_method_handler(
        servicer.Version,
        request_deserializer=api_pb2.VersionRequest.FromString,
        response_serializer=api_pb2.VersionInfo.SerializeToString,
    )
    handler = grpc.method_handlers_generic_handler("tinykube.api.Resources", {"Version": version})
    server.add_generic_rpc_handlers((handler,))
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield servicer, port
    finally:
        server.stop(0)


def _pin(pki_dir: Path) -> str:
    return certs.ca_hash(certs.read_cert(pki_dir / "pki" / "ca.crt"))


def _join(port: int, pin: str, out: Path, token: str = TOKEN) -> tuple[int, str]:
    args = ["join", f"127.0.0.1:{port}", "--token", token, "--node-name", "node3"]
    args += ["--discovery-token-ca-cert-hash", pin, "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    return result.exit_code, result.output


def test_the_right_pin_writes_a_bootstrap_kubeconfig(
    token_port: tuple[TokenPort, int], pki_dir: Path, tmp_path: Path
) -> None:
    servicer, port = token_port
    out = tmp_path / "etc" / "bootstrap-kubelet.conf"
    code, output = _join(port, _pin(pki_dir), out)
    assert code == 0, output
    assert "its public key hash matches the pin" in output
    assert [call["authorization"] for call in servicer.calls] == [f"Bearer {TOKEN}"]
    assert os.stat(out).st_mode & 0o777 == 0o600
    written = kubeconfig.load(out)
    assert written.server == f"https://127.0.0.1:{port}"
    assert written.token == TOKEN and written.tls
    assert written.ca_pem == (pki_dir / "pki" / "ca.crt").read_bytes()


def test_a_wrong_pin_sends_nothing(
    token_port: tuple[TokenPort, int], pki_dir: Path, tmp_path: Path
) -> None:
    servicer, port = token_port
    wrong = "sha256:" + "0" * 64
    out = tmp_path / "bootstrap.conf"
    code, output = _join(port, wrong, out)
    assert code == 1
    assert f"the CA's public key hash {_pin(pki_dir)} does not match the pin {wrong}" in output
    assert servicer.calls == []  # no RPC: the token never left the node
    assert not out.exists()


def test_a_refused_token_is_unauthorized(
    token_port: tuple[TokenPort, int], pki_dir: Path, tmp_path: Path
) -> None:
    servicer, port = token_port
    out = tmp_path / "bootstrap.conf"
    code, output = _join(port, _pin(pki_dir), out, token="zzzzzz.0123456789abcdef")
    assert code == 1
    assert "error: the bootstrap token was refused: Unauthorized" in output
    assert len(servicer.calls) == 1 and not out.exists()


def test_arguments_are_checked_before_any_connection(tmp_path: Path) -> None:
    code, output = _join(1, "sha256:abc", tmp_path / "x")
    assert code == 2 and "is not sha256:<64 hex digits>" in output
    assert parse_address("[::1]:6444") == ("::1", 6444)
    assert parse_address("10.0.0.1:6444") == ("10.0.0.1", 6444)


def test_a_closed_port_is_a_clear_error(pki_dir: Path, tmp_path: Path) -> None:
    code, output = _join(1, _pin(pki_dir), tmp_path / "x")
    assert code == 1 and "cannot reach the API server at 127.0.0.1:1" in output


def test_the_ca_is_the_last_ca_or_the_leafs_issuer(pki_dir: Path) -> None:
    leaf = certs.read_cert(pki_dir / "pki" / "apiserver.crt")
    ca = certs.read_cert(pki_dir / "pki" / "ca.crt")
    assert choose_ca([leaf, ca]) == ca
    assert choose_ca([leaf, leaf, ca]) == ca
    key = certs.generate_key()
    unmarked = _issuer_without_basic_constraints(key, ca.subject)
    assert choose_ca([leaf, unmarked]) == unmarked
    with pytest.raises(Exception, match="carries no CA certificate"):
        choose_ca([leaf])


def _issuer_without_basic_constraints(
    key: certs.PrivateKey, subject: x509.Name
) -> x509.Certificate:
    """A certificate named as the leaf's issuer but not marked as a CA."""
    import datetime

    from cryptography.hazmat.primitives import hashes

    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
