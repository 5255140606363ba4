"""apimachinery.kubeconfig: data and path forms, contexts, servers, and errors naming the field."""

from __future__ import annotations

import base64
import copy
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from apimachinery import certs, kubeconfig
from apimachinery.certs import CertConfig, CertKeyPair
from apimachinery.channel import Credentials
from apimachinery.kubeconfig import KubeconfigError


@pytest.fixture(scope="module")
def ca() -> CertKeyPair:
    key = certs.generate_key()
    return CertKeyPair(certs.new_self_signed_ca(key), key)


@pytest.fixture(scope="module")
def admin(ca: CertKeyPair) -> CertKeyPair:
    return certs.new_cert_and_key(ca, CertConfig("kubernetes-admin", ("system:masters",)))


@pytest.fixture
def document(ca: CertKeyPair, admin: CertKeyPair) -> dict[str, Any]:
    return kubeconfig.new_config(
        server="https://10.0.0.1:6443",
        ca_pem=certs.encode_cert_pem(ca.cert),
        user="kubernetes-admin",
        cert_pem=certs.encode_cert_pem(admin.cert),
        key_pem=certs.encode_key_pem(admin.key),
    )


def save(tmp_path: Path, document: Any, name: str = "config") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document))
    return path


def load_error(tmp_path: Path, document: Any, context: str | None = None) -> str:
    path = save(tmp_path, document)
    with pytest.raises(KubeconfigError) as info:
        kubeconfig.load(path, context=context)
    message = str(info.value)
    assert message.startswith(f"kubeconfig {path}: "), message
    return message[len(f"kubeconfig {path}: ") :]


def cluster(document: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = document["clusters"][0]["cluster"]
    return body


def user(document: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = document["users"][0]["user"]
    return body


def test_a_written_kubeconfig_reads_back(
    tmp_path: Path, ca: CertKeyPair, admin: CertKeyPair, document: dict[str, Any]
) -> None:
    path = tmp_path / "sub" / "admin.conf"
    kubeconfig.write(path, document)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert text.startswith("apiVersion: v1\nkind: Config\n")
    assert "current-context: kubernetes-admin@kubernetes" in text
    config = kubeconfig.load(path)
    assert config.server == "https://10.0.0.1:6443"
    assert config.target == "10.0.0.1:6443"
    assert config.tls
    assert config.context == "kubernetes-admin@kubernetes"
    assert config.ca_pem == certs.encode_cert_pem(ca.cert)
    assert config.cert_pem == certs.encode_cert_pem(admin.cert)
    assert config.key_pem == certs.encode_key_pem(admin.key)
    assert config.token == ""
    assert config.credentials() == Credentials(
        ca_pem=config.ca_pem, cert_pem=config.cert_pem, key_pem=config.key_pem
    )
    assert "PRIVATE KEY" not in repr(config) and "PRIVATE KEY" not in repr(config.credentials())


def test_path_forms_are_relative_to_the_file(
    tmp_path: Path, ca: CertKeyPair, admin: CertKeyPair, document: dict[str, Any]
) -> None:
    (tmp_path / "pki").mkdir()
    certs.write_cert(tmp_path / "pki" / "ca.crt", ca.cert)
    certs.write_cert(tmp_path / "pki" / "admin.crt", admin.cert)
    certs.write_key(tmp_path / "admin.key", admin.key)
    del cluster(document)["certificate-authority-data"]
    cluster(document)["certificate-authority"] = "pki/ca.crt"
    user(document).clear()
    user(document)["client-certificate"] = "pki/admin.crt"
    user(document)["client-key"] = str(tmp_path / "admin.key")  # absolute works too
    config = kubeconfig.load(save(tmp_path, document))
    assert config.ca_pem == certs.encode_cert_pem(ca.cert)
    assert config.cert_pem == certs.encode_cert_pem(admin.cert)
    assert config.key_pem == certs.encode_key_pem(admin.key)


def test_tokens_and_token_files(tmp_path: Path, document: dict[str, Any]) -> None:
    user(document).clear()
    user(document)["tokenFile"] = "token"
    (tmp_path / "token").write_text("abc.def\n")
    config = kubeconfig.load(save(tmp_path, document))
    assert config.token == "abc.def"
    assert config.cert_pem is None and config.key_pem is None
    credentials = config.credentials()
    assert credentials is not None and credentials.token == "abc.def"
    user(document)["token"] = "given"  # token wins over tokenFile, as in client-go
    assert kubeconfig.load(save(tmp_path, document)).token == "given"


def test_contexts_choose_cluster_user_and_namespace(
    tmp_path: Path, document: dict[str, Any]
) -> None:
    document["clusters"].append({"name": "other", "cluster": {"server": "10.9.9.9:7000"}})
    document["users"].append({"name": "nobody", "user": {}})
    document["contexts"].append(
        {"name": "dev", "context": {"cluster": "other", "user": "nobody", "namespace": "dev"}}
    )
    path = save(tmp_path, document)
    assert kubeconfig.load(path).target == "10.0.0.1:6443"
    dev = kubeconfig.load(path, context="dev")
    assert (dev.target, dev.tls, dev.namespace, dev.context) == (
        "10.9.9.9:7000",
        False,
        "dev",
        "dev",
    )
    assert dev.credentials() is None
    document["current-context"] = "dev"
    assert kubeconfig.load(save(tmp_path, document)).target == "10.9.9.9:7000"


@pytest.mark.parametrize(
    ("server", "target", "tls"),
    [
        ("https://10.0.0.1:6443", "10.0.0.1:6443", True),
        ("https://10.0.0.1:6443/", "10.0.0.1:6443", True),
        ("https://[::1]:6443", "[::1]:6443", True),
        ("https://api.example", "api.example:443", True),
        ("10.0.0.1:6443", "10.0.0.1:6443", True),  # no scheme: TLS since a CA is given
        ("unix:/run/tinykube/api.sock", "unix:/run/tinykube/api.sock", False),
    ],
)
def test_server_urls_become_grpc_targets(
    tmp_path: Path, document: dict[str, Any], server: str, target: str, tls: bool
) -> None:
    cluster(document)["server"] = server
    if server.startswith("unix:"):
        del cluster(document)["certificate-authority-data"]
        user(document).clear()
    config = kubeconfig.load(save(tmp_path, document))
    assert (config.target, config.tls) == (target, tls)


def test_a_plain_server_without_credentials_is_a_plain_channel(
    tmp_path: Path, document: dict[str, Any]
) -> None:
    document = {**document, "clusters": [{"name": "kubernetes", "cluster": {"server": "h:1"}}]}
    document["users"] = [{"name": "kubernetes-admin", "user": {}}]
    config = kubeconfig.load(save(tmp_path, document))
    assert (config.target, config.tls, config.credentials()) == ("h:1", False, None)


def test_tls_server_name_is_carried(tmp_path: Path, document: dict[str, Any]) -> None:
    cluster(document)["tls-server-name"] = "kubernetes"
    credentials = kubeconfig.load(save(tmp_path, document)).credentials()
    assert credentials is not None and credentials.server_name == "kubernetes"


def test_file_level_errors(tmp_path: Path, document: dict[str, Any]) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(KubeconfigError, match=f"kubeconfig {missing}: No such file or directory"):
        kubeconfig.load(missing)
    assert load_error(tmp_path, ["a", "list"]) == "not a YAML mapping"
    broken = tmp_path / "broken"
    broken.write_text("clusters: [\n")
    with pytest.raises(KubeconfigError, match=f"kubeconfig {broken}: not valid YAML"):
        kubeconfig.load(broken)
    assert load_error(tmp_path, {**document, "kind": "Pod"}) == 'kind: must be "Config", not "Pod"'
    assert load_error(tmp_path, {**document, "apiVersion": "v2"}).startswith("apiVersion: must")
    assert load_error(tmp_path, {**document, "clusters": {"a": 1}}) == "clusters: must be a list"
    assert load_error(tmp_path, {**document, "users": ["x"]}) == (
        "users[0]: must be a mapping with a name"
    )


def test_context_errors(tmp_path: Path, document: dict[str, Any]) -> None:
    assert load_error(tmp_path, document, context="foo") == 'context "foo" not found'
    assert load_error(tmp_path, {**document, "current-context": ""}) == (
        "current-context: not set, and no context was named"
    )
    no_cluster = copy.deepcopy(document)
    no_cluster["contexts"][0]["context"]["cluster"] = "kube"
    assert (
        load_error(tmp_path, no_cluster) == 'contexts[0].context.cluster: cluster "kube" not found'
    )
    no_user = copy.deepcopy(document)
    no_user["contexts"][0]["context"]["user"] = "bob"
    assert load_error(tmp_path, no_user) == 'contexts[0].context.user: user "bob" not found'
    unnamed = copy.deepcopy(document)
    del unnamed["contexts"][0]["context"]["cluster"]
    assert load_error(tmp_path, unnamed) == "contexts[0].context.cluster: missing"


def test_cluster_errors(tmp_path: Path, document: dict[str, Any]) -> None:
    def error(**fields: Any) -> str:
        changed = copy.deepcopy(document)
        for key, value in fields.items():
            key = key.replace("_", "-")
            if value is None:
                del cluster(changed)[key]
            else:
                cluster(changed)[key] = value
        return load_error(tmp_path, changed)

    prefix = "clusters[0].cluster."
    assert error(server=None) == prefix + "server: missing"
    assert error(server=6443) == prefix + "server: must be a string"
    assert error(certificate_authority_data="%%%") == (
        prefix + "certificate-authority-data: not valid base64"
    )
    garbage = base64.b64encode(b"not a cert").decode()
    assert error(certificate_authority_data=garbage).startswith(
        prefix + "certificate-authority-data: not a PEM certificate"
    )
    assert error(certificate_authority="ca.crt") == (
        prefix + "certificate-authority-data: certificate-authority is set too; use one of them"
    )
    assert error(certificate_authority_data=None, certificate_authority="nope.crt") == (
        prefix + "certificate-authority: cannot read nope.crt: No such file or directory"
    )
    assert (
        error(insecure_skip_tls_verify=True) == prefix + "insecure-skip-tls-verify: not supported"
    )
    assert error(server="http://10.0.0.1:6443") == (
        prefix + 'server: "http://10.0.0.1:6443" is not https://, but TLS is configured'
    )
    assert error(server="https://10.0.0.1:6443/api") == (
        prefix
        + 'server: "https://10.0.0.1:6443/api" has a path or user; only HOST[:PORT] is dialed'
    )
    assert error(server="https://10.0.0.1:99999") == (
        prefix + 'server: "https://10.0.0.1:99999" has an invalid port'
    )
    assert error(server="ftp://h") == prefix + 'server: "ftp://h" is not https://HOST[:PORT]'


def test_user_errors(tmp_path: Path, ca: CertKeyPair, document: dict[str, Any]) -> None:
    def error(**fields: Any) -> str:
        changed = copy.deepcopy(document)
        for key, value in fields.items():
            key = key.replace("_", "-")
            if value is None:
                del user(changed)[key]
            else:
                user(changed)[key] = value
        return load_error(tmp_path, changed)

    prefix = "users[0].user"
    assert error(client_key_data="!!") == prefix + ".client-key-data: not valid base64"
    assert error(client_key_data=None) == (
        prefix + ".client-key-data: missing: the client certificate needs it"
    )
    assert error(client_certificate_data=None) == (
        prefix + ".client-certificate-data: missing: the key needs it"
    )
    other_key = base64.b64encode(certs.encode_key_pem(certs.generate_key())).decode()
    assert error(client_key_data=other_key) == (
        prefix + ": the client certificate does not match the client key"
    )
    not_a_key = base64.b64encode(certs.encode_cert_pem(ca.cert)).decode()
    assert error(client_key_data=not_a_key).startswith(
        prefix + ".client-key-data: not an unencrypted PEM private key"
    )
    assert error(client_key="k.pem") == (
        prefix + ".client-key-data: client-key is set too; use one of them"
    )
    assert error(token=5) == prefix + ".token: must be a string"
    assert error(tokenFile="nope") == (
        prefix + ".tokenFile: cannot read nope: No such file or directory"
    )
