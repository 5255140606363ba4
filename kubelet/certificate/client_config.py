"""The kubelet's API client from its kubeconfig, bootstrapped and rotated (cmd/kubelet/app).

Kubernetes' kubelet main (buildKubeletClientConfig) turns these flags into one client:

    --kubeconfig PATH             who the kubelet is and where the API server is
    --bootstrap-kubeconfig PATH   used only while PATH above does not hold a
                                  valid certificate (bootstrap.py)
    --cert-dir DIR                where bootstrapped and rotated pairs live
    --rotate-certificates         renew the client certificate before it expires

`build_client` does the same, in order: bootstrap if asked and needed, load
the kubeconfig, dial with its credentials (Client.from_config), and -- when
the kubeconfig's certificate is the node's own (CN system:node:NAME) and
rotation is on -- a CertificateManager (manager.py) for the caller to run
beside the kubelet. One client serves the whole process: the kubelet's loops
and, with `--network-agent`, the node's network agent, so a rotation moves
both onto the new certificate at once.

A kubeconfig whose certificate names another user (an admin's, in a test
cluster) is used as it is, without rotation: the kubelet can only ask for its
own identity, and trading someone else's certificate for a node's would
quietly change what the process may do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from apimachinery import certs, kubeconfig
from apimachinery.client import Client
from kubelet.certificate.bootstrap import DEFAULT_WAIT, load_client_cert, node_user
from kubelet.certificate.manager import CertificateManager
from kubelet.certificate.store import FileStore

log = logging.getLogger(__name__)

DEFAULT_CERT_DIR = "/var/lib/kubelet/pki"


@dataclass(frozen=True)
class ClientOptions:
    """Where the kubelet's API credentials come from: the --kubeconfig family of flags."""

    node_name: str
    kubeconfig: str
    bootstrap_kubeconfig: str = ""
    cert_dir: str = DEFAULT_CERT_DIR
    rotate_certificates: bool = True
    # The certificate port the bootstrapped kubeconfig names; "" = the bootstrap host's 6443.
    server: str = ""
    bootstrap_wait: float = DEFAULT_WAIT


async def build_client(
    options: ClientOptions, *, timeout: float = 30.0
) -> tuple[Client, CertificateManager | None]:
    """The kubelet's client and, when it rotates its certificate, the manager to run.

    Raises KubeconfigError, CertError, CertificateRequestError or a StatusError
    (bootstrap against an API server that refuses)."""
    if options.bootstrap_kubeconfig:
        await load_client_cert(
            options.kubeconfig,
            options.bootstrap_kubeconfig,
            options.cert_dir,
            options.node_name,
            server=options.server,
            timeout=options.bootstrap_wait,
        )
    config = kubeconfig.load(options.kubeconfig)
    client = Client.from_config(config, timeout=timeout)
    if not options.rotate_certificates or config.cert_pem is None:
        return client, None
    user = certs.identity(certs.load_cert_pem(config.cert_pem)).user
    if user != node_user(options.node_name):
        log.warning(
            "client certificate is not the node's: not rotating it",
            extra={"node": options.node_name, "user": user},
        )
        return client, None
    manager = CertificateManager(
        client,
        config,
        FileStore(options.cert_dir),
        options.node_name,
        kubeconfig_path=options.kubeconfig,
    )
    return client, manager
