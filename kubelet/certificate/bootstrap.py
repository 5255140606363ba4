"""TLS bootstrapping: a bootstrap kubeconfig becomes the kubelet's own (certificate/bootstrap).

`load_client_cert(kubeconfig, bootstrap_kubeconfig, cert_dir, node_name)` is
what `tinykube kubelet` calls before it builds its client, as the kubelet's
main calls Kubernetes' LoadClientCert. It returns once `kubeconfig` holds a
certificate that has not expired; the steps (see the package docstring):

    kubeconfig valid?            -> nothing to do
    cert-dir holds a valid pair  -> write the kubeconfig around it (a crash
                                    after step 5 last time), no new request
    else                         -> key, CSR sent with the bootstrap token,
                                    wait, store the pair, write the kubeconfig

"Valid" is Kubernetes' isClientConfigStillValid: the file loads, it has a
client certificate, and none of its certificates has expired. A kubeconfig
that is missing, unreadable or expired is replaced -- which is also how a
node whose certificate lapsed while it was off comes back: through the
bootstrap token again, if the operator gives it a fresh one.

The kubeconfig written (mode 0600), in Kubernetes' own names:

    clusters:  default-cluster   server https://HOST:6443, the bootstrap CA
    users:     default-auth      client-certificate and client-key both
                                 <cert-dir>/kubelet-client-current.pem
    contexts:  default-context

The issued certificate is checked before it is stored: it must be for the
key that was sent and name system:node:NAME in system:nodes -- a signer that
answered with anything else would otherwise hand the kubelet an identity it
never asked for.

`request_node_certificate` (steps 2-5) is shared with rotation (manager.py),
which calls it with the node's own client and a new key.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from apimachinery import certs, kubeconfig
from apimachinery.client import Client
from kubelet.certificate.csr import (
    CertificateRequestRefused,
    request_certificate,
    wait_for_certificate,
)
from kubelet.certificate.store import FileStore, still_valid

log = logging.getLogger(__name__)

API_SERVER_PORT = 6443
NODES_GROUP = "system:nodes"
DEFAULT_WAIT = 3600.0


def node_user(node_name: str) -> str:
    return f"system:node:{node_name}"


def secure_server(bootstrap_server: str, port: int = API_SERVER_PORT) -> str:
    """The certificate port beside a token port: https://HOST:6443 for https://HOST:6444."""
    url = urlsplit(bootstrap_server if "://" in bootstrap_server else f"//{bootstrap_server}")
    host = url.hostname or "127.0.0.1"
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def usable_kubeconfig(path: str | Path) -> bool:
    """True when `path` loads and carries a client certificate that has not expired."""
    if not Path(path).exists():
        return False
    try:
        config = kubeconfig.load(path)
        if config.cert_pem is None:
            return False
        return still_valid(certs.load_cert_pem(config.cert_pem))
    except (kubeconfig.KubeconfigError, certs.CertError) as err:
        log.warning("kubeconfig not usable, bootstrapping", extra={"error": str(err)})
        return False


def kubeconfig_document(server: str, ca_pem: bytes | None, pair_path: Path) -> dict[str, Any]:
    """The kubelet's kubeconfig: the CA embedded, the client pair by its path in cert-dir."""
    cluster: dict[str, str] = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode("ascii")
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "default-cluster", "cluster": cluster}],
        "contexts": [
            {
                "name": "default-context",
                "context": {
                    "cluster": "default-cluster",
                    "namespace": "default",
                    "user": "default-auth",
                },
            }
        ],
        "current-context": "default-context",
        "preferences": {},
        "users": [
            {
                "name": "default-auth",
                "user": {"client-certificate": str(pair_path), "client-key": str(pair_path)},
            }
        ],
    }


def write_kubeconfig(path: str | Path, server: str, ca_pem: bytes | None, store: FileStore) -> None:
    """Write the kubelet's kubeconfig (0600) naming the store's current pair."""
    kubeconfig.write(path, kubeconfig_document(server, ca_pem, store.current_path))
    log.info("wrote kubeconfig", extra={"path": str(path), "server": server})


async def request_node_certificate(
    client: Client,
    store: FileStore,
    node_name: str,
    *,
    key: certs.PrivateKey | None = None,
    timeout: float = DEFAULT_WAIT,
) -> certs.CertKeyPair:
    """Ask for a system:node:NAME client certificate and store it with its key.

    Without `key` the store's pending key is used, and dropped once its certificate is
    stored or its request refused (a timeout keeps it: the same request is asked again)."""
    pending = key is None
    private = store.pending_key() if key is None else key
    user = node_user(node_name)
    csr_pem = certs.make_csr(private, user, [NODES_GROUP])
    csr = await request_certificate(client, csr_pem)
    try:
        cert_pem = await wait_for_certificate(client, csr.metadata.name, timeout=timeout)
    except CertificateRequestRefused:
        if pending:  # that request is over: the next attempt makes a new key, a new request
            store.drop_pending_key()
        raise
    cert = certs.load_cert_pem(cert_pem)
    if certs.spki_der(cert.public_key()) != certs.spki_der(private.public_key()):
        raise certs.CertError(f"the certificate issued for {csr.metadata.name} is for another key")
    if certs.identity(cert) != certs.Identity(user, (NODES_GROUP,)):
        got = certs.identity(cert)
        raise certs.CertError(
            f"the certificate issued for {csr.metadata.name} is for {got.user} {list(got.groups)},"
            f" not {user} [{NODES_GROUP}]"
        )
    dated = store.update(cert, private)
    if pending:
        store.drop_pending_key()
    _, not_after = certs.validity_window(cert)
    log.info(
        "client certificate issued",
        extra={"csr": csr.metadata.name, "file": str(dated), "expires": not_after.isoformat()},
    )
    return certs.CertKeyPair(cert, private)


async def load_client_cert(
    kubeconfig_path: str | Path,
    bootstrap_path: str | Path,
    cert_dir: str | Path,
    node_name: str,
    *,
    server: str = "",
    timeout: float = DEFAULT_WAIT,
) -> None:
    """Make sure `kubeconfig_path` holds a valid client certificate, bootstrapping if not.

    `server` overrides the kubeconfig's server (default: `secure_server` of the
    bootstrap kubeconfig's). Raises KubeconfigError, CertError,
    CertificateRequestError or a StatusError from the API server."""
    if usable_kubeconfig(kubeconfig_path):
        return
    bootstrap = kubeconfig.load(bootstrap_path)
    target = server or secure_server(bootstrap.server)
    store = FileStore(cert_dir)
    try:
        pair = store.current()
    except certs.CertError as err:
        log.warning("stored client certificate not usable", extra={"error": str(err)})
        pair = None
    mine = pair is not None and certs.identity(pair.cert).user == node_user(node_name)
    if pair is not None and mine and still_valid(pair.cert):
        write_kubeconfig(kubeconfig_path, target, bootstrap.ca_pem, store)
        return
    log.info(
        "bootstrapping client certificate",
        extra={"node": node_name, "server": bootstrap.server},
    )
    async with Client.from_config(bootstrap) as client:
        await request_node_certificate(client, store, node_name, timeout=timeout)
    write_kubeconfig(kubeconfig_path, target, bootstrap.ca_pem, store)
