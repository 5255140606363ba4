"""A cluster's certificates as its daemons use them: kubeadm's /etc/kubernetes, by path and flag.

`tinykube pki init --dir D` (cli/cmd_pki.py, kubeadm's `init phase certs` and
`kubeconfig`) writes one directory:

    D/admin.conf  scheduler.conf  controller-manager.conf  kubelet-NAME.conf
    D/pki/ca.crt  ca.key  apiserver.crt  .key  apiserver-kubelet-client.crt  .key
          kubelet-NAME.crt  .key                      (each node's serving certificate)

and on a node that joined by bootstrap token (`tinykube join`, the kubelet's
TLS bootstrap) two more, as kubeadm names them:

    D/bootstrap-kubelet.conf                          the CA and the token (token port)
    D/kubelet.conf                                    written by the kubelet once its
                                                      CSR is signed (mTLS port)

`PkiLayout(D)` names those files, and the functions below turn them into the
daemons' flags, so that every place that starts a daemon -- the VMs'
provisioning (nodeconfig.py through `tinykube node render-config`), `tinykube
up` (cluster.py) and the tests' processes (processes.py) -- runs the same
command lines:

    apiserver  --listen NODE_IP:6443 --token-listen NODE_IP:6444
               --tls-cert-file D/pki/apiserver.crt --tls-private-key-file ...key
               --client-ca-file D/pki/ca.crt
               --kubelet-client-certificate D/pki/apiserver-kubelet-client.crt
               --kubelet-client-key ... --kubelet-certificate-authority D/pki/ca.crt
               --cluster-signing-cert-file D/pki/ca.crt --cluster-signing-key-file ...
    kubelet    --kubeconfig D/kubelet-NAME.conf             (or, joined by token:
                                                             --kubeconfig D/kubelet.conf
                                                             --bootstrap-kubeconfig ...)
               --cert-dir ROOT/pki                          (rotated certificates)
               --tls-cert-file D/pki/kubelet-NAME.crt --tls-private-key-file ...key
               --client-ca-file D/pki/ca.crt

Why localcluster runs `tinykube pki init` as a command (processes.pki_init)
rather than calling its code: the certificates are made by the tool an
administrator runs on a real machine -- the Vagrant provisioning runs the
same command -- so the local cluster exercises that tool, as kind runs
kubeadm inside its node instead of making certificates itself; localcluster
may not import cli (the users' tools stand beside each other, above the
components); and one short process (~0.2 s, elliptic-curve keys) per
cluster is nothing beside a containerd start. The price is that the file
names are known on both sides, as kind knows kubeadm's: they are here, once,
for every caller on this side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

APISERVER_PORT = 6443  # TLS: a client certificate of the cluster CA, or a bearer token
TOKEN_PORT = 6444  # TLS without a client certificate: bearer tokens (joining kubelets)
DEFAULT_PKI_DIR = "/etc/tinykube"  # kubeadm's /etc/kubernetes


@dataclass(frozen=True)
class PkiLayout:
    """The paths `tinykube pki init --dir DIRECTORY` writes (and `tinykube join` adds)."""

    directory: str = DEFAULT_PKI_DIR

    def path(self, *parts: str) -> str:
        return str(Path(self.directory, *parts))

    def kubeconfig(self, user: str) -> str:
        """`admin`, `scheduler`, `controller-manager`, `kubelet-NAME` -> D/USER.conf."""
        return self.path(f"{user}.conf")

    @property
    def admin_conf(self) -> str:
        return self.kubeconfig("admin")

    def kubelet_conf(self, node: str) -> str:
        """The kubeconfig pki init writes for NODE's kubelet (system:node:NODE)."""
        return self.kubeconfig(f"kubelet-{node}")

    @property
    def joined_kubelet_conf(self) -> str:
        """The kubeconfig a kubelet writes after TLS bootstrap (kubeadm's kubelet.conf)."""
        return self.kubeconfig("kubelet")

    @property
    def bootstrap_kubelet_conf(self) -> str:
        """`tinykube join --out`: the CA and a bootstrap token, for --bootstrap-kubeconfig."""
        return self.kubeconfig("bootstrap-kubelet")

    def cert(self, base: str) -> str:
        return self.path("pki", f"{base}.crt")

    def key(self, base: str) -> str:
        return self.path("pki", f"{base}.key")

    @property
    def ca_cert(self) -> str:
        return self.cert("ca")

    @property
    def ca_key(self) -> str:
        return self.key("ca")

    def kubelet_serving(self, node: str) -> tuple[str, str]:
        """NODE's kubelet serving certificate and key (SANs: NODE and its IPs)."""
        return self.cert(f"kubelet-{node}"), self.key(f"kubelet-{node}")


def init_args(
    layout: PkiLayout,
    addresses: Sequence[str],
    nodes: Mapping[str, str],
    port: int = APISERVER_PORT,
) -> list[str]:
    """`tinykube pki init` arguments: the API server's addresses (the first is the
    kubeconfigs' server) and NAME=IP for each node."""
    args = ["pki", "init", "--dir", layout.directory]
    for address in addresses:
        args += ["--apiserver-address", address]
    if port != APISERVER_PORT:
        args += ["--apiserver-port", str(port)]
    for name, ip in nodes.items():
        args += ["--node", f"{name}={ip}"]
    return args


def apiserver_args(layout: PkiLayout) -> list[str]:
    """The API server's TLS files: serving, client CA, its client to kubelets, the signer."""
    client = "apiserver-kubelet-client"
    return [
        "--tls-cert-file",
        layout.cert("apiserver"),
        "--tls-private-key-file",
        layout.key("apiserver"),
        "--client-ca-file",
        layout.ca_cert,
        "--kubelet-client-certificate",
        layout.cert(client),
        "--kubelet-client-key",
        layout.key(client),
        "--kubelet-certificate-authority",
        layout.ca_cert,
        "--cluster-signing-cert-file",
        layout.ca_cert,
        "--cluster-signing-key-file",
        layout.ca_key,
    ]


def kubelet_args(
    layout: PkiLayout, node: str, *, bootstrap: bool = False, cert_dir: str = ""
) -> list[str]:
    """The kubelet's identity (a kubeconfig made by pki init, or obtained by TLS bootstrap
    with `--bootstrap-kubeconfig`), where it keeps the client certificates it obtains and
    rotates (`cert_dir`; the kubelet's default /var/lib/kubelet/pki when ""), and its
    server's mutual TLS."""
    if bootstrap:
        identity = [
            "--kubeconfig",
            layout.joined_kubelet_conf,
            "--bootstrap-kubeconfig",
            layout.bootstrap_kubelet_conf,
        ]
    else:
        identity = ["--kubeconfig", layout.kubelet_conf(node)]
    if cert_dir:
        identity += ["--cert-dir", cert_dir]
    cert, key = layout.kubelet_serving(node)
    serving = ["--tls-cert-file", cert, "--tls-private-key-file", key]
    return [*identity, *serving, "--client-ca-file", layout.ca_cert]
