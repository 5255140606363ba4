"""Reading and writing kubeconfig files: tinykube's client-go clientcmd loader.

A kubeconfig is the file kubectl reads (`~/.kube/config`, `admin.conf`): named
clusters (where and whom to trust), named users (who I am), and contexts that
pair one of each; `current-context` says which pair is meant:

    apiVersion: v1
    kind: Config
    clusters:
    - name: kubernetes
      cluster:
        server: https://10.0.0.1:6443
        certificate-authority-data: LS0tLS1CRUdJTi...      # base64 of the CA's PEM
    users:
    - name: kubernetes-admin
      user:
        client-certificate-data: LS0tLS1CRUdJTi...         # base64 PEM
        client-key-data: LS0tLS1CRUdJTi...
    contexts:
    - name: kubernetes-admin@kubernetes
      context: {cluster: kubernetes, user: kubernetes-admin}
    current-context: kubernetes-admin@kubernetes

`load(path)` picks the context (current-context unless one is named), follows
it to its cluster and user, and returns one small `ClientConfig`: the gRPC
target, the CA, the client certificate and key, the bearer token. Every
`*-data` field has a path form (`certificate-authority`, `client-certificate`,
`client-key`, and `tokenFile` beside `token`); relative paths are relative to
the kubeconfig's own directory, as client-go resolves them. Setting both forms
of one field is an error, as client-go's validation makes it.

The server is a URL because kubectl expects one; gRPC dials `HOST:PORT`, so
the scheme is stripped: `https://10.0.0.1:6443` -> target `10.0.0.1:6443`,
with TLS. A URL without a port means 443 (https) or 80 (http), as URLs do. A
server with no scheme uses TLS exactly when the cluster or user carries TLS
material (client-go's DefaultServerURL rule); `http://` with credentials is an
error rather than a token sent in the clear. `unix:PATH` (a local cluster's
socket) is dialed as it is. `insecure-skip-tls-verify` is refused: this
client always verifies the server.

A tinykube extension: `server` may list several API servers, comma-separated
(`https://10.0.0.1:6443,https://10.0.0.2:6443`), all with the same scheme;
the client fails over between them (apimachinery/channel_failover.py).
Kubernetes' kubeconfig holds one URL, of a load balancer in front of the API
servers; kubectl would refuse such a list.

Failure modes: each problem is a `KubeconfigError` naming the file and the
field, in the file's own words:

    kubeconfig /etc/tinykube/admin.conf: users[0].user.client-key-data: not valid base64
    kubeconfig /root/.kube/config: context "prod" not found
    kubeconfig admin.conf: contexts[0].context.cluster: cluster "kube" not found

`new_config` + `write` produce such a file with everything embedded (as
kubeadm writes admin.conf), mode 0600 since it holds a private key.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml

from apimachinery import certs
from apimachinery.channel import Credentials

DEFAULT_CLUSTER = "kubernetes"
T = TypeVar("T")


class KubeconfigError(Exception):
    """A kubeconfig that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class ClientConfig:
    """Where the chosen context's API server is and how to reach it: target, TLS, identity."""

    server: str
    target: str
    tls: bool = False
    ca_pem: bytes | None = None
    cert_pem: bytes | None = field(default=None, repr=False)
    key_pem: bytes | None = field(default=None, repr=False)
    token: str = field(default="", repr=False)
    server_name: str = ""
    namespace: str = ""
    context: str = ""

    def credentials(self) -> Credentials | None:
        """The channel credentials, or None for a plain channel."""
        if not self.tls:
            return None
        return Credentials(
            ca_pem=self.ca_pem,
            cert_pem=self.cert_pem,
            key_pem=self.key_pem,
            token=self.token,
            server_name=self.server_name,
        )


def load(path: str | Path, *, context: str | None = None) -> ClientConfig:
    """Read the kubeconfig at `path` and resolve `context` (default: current-context)."""
    source = Path(path)
    try:
        text = source.read_text()
    except OSError as err:
        raise KubeconfigError(f"kubeconfig {path}: {err.strerror or err}") from None
    return loads(text, source=str(path), context=context, base_dir=source.parent)


def loads(
    text: str,
    *,
    source: str = "<string>",
    context: str | None = None,
    base_dir: str | Path = ".",
) -> ClientConfig:
    """Like `load`, for text already read; paths in it are relative to `base_dir`."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise KubeconfigError(f"kubeconfig {source}: not valid YAML: {err}") from None
    return _Reader(source, Path(base_dir)).client_config(document, context)


class _Reader:
    """One file's fields, read with their paths for error messages."""

    def __init__(self, source: str, base_dir: Path) -> None:
        self.source = source
        self.base_dir = base_dir

    def fail(self, where: str, message: str) -> KubeconfigError:
        prefix = f"kubeconfig {self.source}: "
        return KubeconfigError(prefix + (f"{where}: {message}" if where else message))

    def client_config(self, document: Any, wanted: str | None) -> ClientConfig:
        if not isinstance(document, dict):
            raise self.fail("", "not a YAML mapping")
        for key, expected in (("apiVersion", "v1"), ("kind", "Config")):
            value = document.get(key, expected)
            if value != expected:
                raise self.fail(key, f'must be "{expected}", not "{value}"')
        name = wanted or self.string(document, "current-context", "")
        if not name:
            raise self.fail("current-context", "not set, and no context was named")
        index, ctx = self.entry(document, "contexts", "context", name)
        if index < 0:
            raise self.fail("", f'context "{name}" not found')
        where = f"contexts[{index}].context"
        cluster_name = self.string(ctx, "cluster", where=where)
        c_index, cluster = self.entry(document, "clusters", "cluster", cluster_name)
        if c_index < 0:
            raise self.fail(f"{where}.cluster", f'cluster "{cluster_name}" not found')
        user_name = self.string(ctx, "user", "", where=where)
        user: dict[str, Any] = {}
        u_where = ""
        if user_name:
            u_index, user = self.entry(document, "users", "user", user_name)
            if u_index < 0:
                raise self.fail(f"{where}.user", f'user "{user_name}" not found')
            u_where = f"users[{u_index}].user"
        config = self.cluster(cluster, f"clusters[{c_index}].cluster", user, u_where)
        namespace = self.string(ctx, "namespace", "", where=where)
        return dataclasses.replace(config, namespace=namespace, context=name)

    def entry(
        self, document: dict[str, Any], section: str, key: str, name: str
    ) -> tuple[int, dict[str, Any]]:
        """(index, body) of the named entry of a section; (-1, {}) when absent."""
        items = document.get(section) or []
        if not isinstance(items, list):
            raise self.fail(section, "must be a list")
        for index, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise self.fail(f"{section}[{index}]", "must be a mapping with a name")
            if item["name"] == name:
                body = item.get(key) or {}
                if not isinstance(body, dict):
                    raise self.fail(f"{section}[{index}].{key}", "must be a mapping")
                return index, body
        return -1, {}

    def string(
        self, mapping: dict[str, Any], key: str, default: str | None = None, *, where: str = ""
    ) -> str:
        path = f"{where}.{key}" if where else key
        value = mapping.get(key, default)
        if value is None:
            raise self.fail(path, "missing")
        if not isinstance(value, str):
            raise self.fail(path, "must be a string")
        return value

    def material(self, mapping: dict[str, Any], data_key: str, path_key: str, where: str) -> bytes:
        """The bytes of a `*-data` field (base64) or of its path form; b"" when neither."""
        data = self.string(mapping, data_key, "", where=where)
        path = self.string(mapping, path_key, "", where=where)
        if data and path:
            raise self.fail(f"{where}.{data_key}", f"{path_key} is set too; use one of them")
        if data:
            try:
                return base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                raise self.fail(f"{where}.{data_key}", "not valid base64") from None
        if path:
            try:
                return (self.base_dir / path).read_bytes()
            except OSError as err:
                reason = err.strerror or str(err)
                raise self.fail(f"{where}.{path_key}", f"cannot read {path}: {reason}") from None
        return b""

    def cluster(
        self, cluster: dict[str, Any], where: str, user: dict[str, Any], u_where: str
    ) -> ClientConfig:
        """The ClientConfig of one cluster and one user entry."""
        server = self.string(cluster, "server", where=where)
        if cluster.get("insecure-skip-tls-verify"):
            raise self.fail(f"{where}.insecure-skip-tls-verify", "not supported")
        ca = self.material(cluster, "certificate-authority-data", "certificate-authority", where)
        if ca:
            self.check(certs.load_cert_pem, ca, f"{where}.certificate-authority-data")
        cert, key, token = self.user(user, u_where)
        scheme, target = self.split_servers(server, f"{where}.server")
        has_material = bool(ca or cert or token)
        tls = scheme == "https" or (not scheme and has_material and target[:5] != "unix:")
        if not tls and has_material:
            raise self.fail(f"{where}.server", f'"{server}" is not https://, but TLS is configured')
        return ClientConfig(
            server=server,
            target=target,
            tls=tls,
            ca_pem=ca or None,
            cert_pem=cert or None,
            key_pem=key or None,
            token=token,
            server_name=self.string(cluster, "tls-server-name", "", where=where),
        )

    def user(self, user: dict[str, Any], where: str) -> tuple[bytes, bytes, str]:
        """The client certificate, key and token of a user entry (empty when absent)."""
        cert = self.material(user, "client-certificate-data", "client-certificate", where)
        key = self.material(user, "client-key-data", "client-key", where)
        if cert and not key:
            raise self.fail(f"{where}.client-key-data", "missing: the client certificate needs it")
        if key and not cert:
            raise self.fail(f"{where}.client-certificate-data", "missing: the key needs it")
        if cert:
            parsed = self.check(certs.load_cert_pem, cert, f"{where}.client-certificate-data")
            private = self.check(certs.load_key_pem, key, f"{where}.client-key-data")
            if certs.spki_der(parsed.public_key()) != certs.spki_der(private.public_key()):
                raise self.fail(where, "the client certificate does not match the client key")
        token = self.string(user, "token", "", where=where)
        token_file = self.string(user, "tokenFile", "", where=where)
        if not token and token_file:
            try:
                token = (self.base_dir / token_file).read_text().strip()
            except OSError as err:
                reason = err.strerror or str(err)
                raise self.fail(
                    f"{where}.tokenFile", f"cannot read {token_file}: {reason}"
                ) from None
        return cert, key, token

    def check(self, parse: Callable[[bytes], T], data: bytes, where: str) -> T:
        try:
            return parse(data)
        except certs.CertError as err:
            raise self.fail(where, str(err)) from None

    def split_servers(self, server: str, where: str) -> tuple[str, str]:
        """(scheme, targets) of a server field that may list several servers (a tinykube
        extension): `https://a:6443,https://b:6443` -> ("https", "a:6443,b:6443")."""
        parts = [part.strip() for part in server.split(",")]
        if len(parts) == 1:
            return self.split_server(server, where)
        if not all(parts):
            raise self.fail(where, f'"{server}" has an empty entry in its list of servers')
        split = [self.split_server(part, where) for part in parts]
        schemes = {scheme or "https" for scheme, target in split if not target.startswith("unix:")}
        if len(schemes) > 1:
            raise self.fail(where, f'"{server}" mixes http:// and https:// servers')
        return split[0][0], ",".join(target for _, target in split)

    def split_server(self, server: str, where: str) -> tuple[str, str]:
        """(scheme, gRPC target): `https://h:6443` -> ("https", "h:6443")."""
        if server.startswith("unix:"):
            return "", server
        url = urlsplit(server if "://" in server else f"//{server}")
        try:
            port = url.port
        except ValueError:
            raise self.fail(where, f'"{server}" has an invalid port') from None
        if url.scheme not in ("", "http", "https") or not url.hostname:
            raise self.fail(where, f'"{server}" is not https://HOST[:PORT]')
        if url.path.strip("/") or url.query or url.username:
            raise self.fail(where, f'"{server}" has a path or user; only HOST[:PORT] is dialed')
        host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
        if port is None:
            port = 80 if url.scheme == "http" else 443
        return url.scheme, f"{host}:{port}"


# ---- writing --------------------------------------------------------------------------------


def new_config(
    *,
    server: str,
    ca_pem: bytes,
    user: str,
    cert_pem: bytes | None = None,
    key_pem: bytes | None = None,
    token: str = "",
    cluster: str = DEFAULT_CLUSTER,
) -> dict[str, Any]:
    """A kubeconfig with one cluster, one user and their context, everything embedded."""
    credentials: dict[str, str] = {}
    if cert_pem is not None:
        credentials["client-certificate-data"] = _b64(cert_pem)
    if key_pem is not None:
        credentials["client-key-data"] = _b64(key_pem)
    if token:
        credentials["token"] = token
    context = f"{user}@{cluster}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster,
                "cluster": {"certificate-authority-data": _b64(ca_pem), "server": server},
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": cluster, "user": user}}],
        "current-context": context,
        "preferences": {},
        "users": [{"name": user, "user": credentials}],
    }


def dumps(config: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(config), sort_keys=False, default_flow_style=False)


def write(path: str | Path, config: Mapping[str, Any]) -> None:
    """Write a kubeconfig, mode 0600 (it may hold a private key or a token)."""
    certs.write_file(path, dumps(config).encode(), mode=0o600)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
