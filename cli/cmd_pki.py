"""`tinykube pki init`: the cluster's CA, certificates and kubeconfigs (kubeadm init phase certs).

kubeadm makes a cluster's PKI in two phases, `certs` and `kubeconfig`; this
verb does both in one, into one directory laid out as kubeadm lays out
/etc/kubernetes:

    D/                                 0700 when made here
      admin.conf                       CN kubernetes-admin, O system:masters   (kubectl)
      scheduler.conf                   CN system:kube-scheduler
      controller-manager.conf          CN system:kube-controller-manager
      kubelet-NAME.conf                CN system:node:NAME, O system:nodes     (per --node)
      pki/                             0700
        ca.crt  ca.key                 the cluster CA (CN tinykube-ca), 10 years
        apiserver.crt  .key            the API server's serving certificate
        apiserver-kubelet-client.crt  .key   the API server's client cert to kubelets
                                       (CN kube-apiserver-kubelet-client, O system:masters)
        kubelet-NAME.crt  .key         NAME's kubelet serving certificate (per --node)

Every key is 0600, and so is every kubeconfig (each embeds its key, base64
PEM in client-key-data, beside the CA in certificate-authority-data and the
certificate in client-certificate-data). The clients' certificates live only
inside their kubeconfigs, as kubeadm keeps admin's. Each kubeconfig's server
is `https://ADDRESS:PORT` for the first --apiserver-address (127.0.0.1 when
none is given) and --apiserver-port (6443).

The API server's certificate must hold every name a client may dial it by:
each --apiserver-address, 127.0.0.1 and ::1, the `kubernetes` Service's
ClusterIP (--service-cluster-ip, the first address of the service CIDR,
10.96.0.1), and the DNS names kubernetes, kubernetes.default,
kubernetes.default.svc, kubernetes.default.svc.cluster.local, localhost and
each --hostname.

`--node NAME[=IP[,IP...]]` adds a node: its kubelet's client kubeconfig and
its serving certificate, whose SANs are NAME and the IPs -- the names the API
server dials the kubelet by (`--node node1=192.168.56.11`).

Idempotent, as kubeadm is: a file that exists is kept (and checked: signed by
the CA, its SANs cover what is asked, a kubeconfig's CA and server are these),
so running init again after adding a node writes only that node's files. A
kept file that no longer fits is an error naming it; `--force` writes every
file anew, a new CA included. Each file is written through a rename, so an
interrupted run leaves whole files.

    $ tinykube pki init --dir /etc/tinykube --apiserver-address 10.0.0.1 --node n1=10.0.0.11
    [certs] wrote /etc/tinykube/pki/ca.crt
    ...
    [kubeconfig] wrote /etc/tinykube/kubelet-n1.conf
    CA hash: sha256:8f1c...
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click
from cryptography import x509

from apimachinery import certs, kubeconfig
from apimachinery.certs import CertConfig, CertKeyPair, IPAddress
from apimachinery.validation_names import is_dns1123_subdomain

API_SERVER_PORT = 6443
SERVICE_CLUSTER_IP = "10.96.0.1"
DEFAULT_SERVICE_IP: IPAddress = ipaddress.ip_address(SERVICE_CLUSTER_IP)
SERVICE_DNS_NAMES = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "localhost",
)
LOOPBACKS = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
MASTERS = "system:masters"
NODES = "system:nodes"


class PkiError(Exception):
    """A request or an existing file that init cannot honour; the message says which."""


@dataclass(frozen=True)
class NodeSpec:
    """One --node: its name and the addresses its kubelet serves on."""

    name: str
    addresses: tuple[IPAddress, ...] = ()


@dataclass(frozen=True)
class PkiOptions:
    """What `pki init` was asked for, checked."""

    directory: Path
    addresses: tuple[IPAddress, ...] = ()
    port: int = API_SERVER_PORT
    hostnames: tuple[str, ...] = ()
    service_ip: IPAddress = DEFAULT_SERVICE_IP
    nodes: tuple[NodeSpec, ...] = ()
    force: bool = False

    @property
    def server(self) -> str:
        address = self.addresses[0] if self.addresses else LOOPBACKS[0]
        host = f"[{address}]" if address.version == 6 else str(address)
        return f"https://{host}:{self.port}"


@dataclass
class Report:
    """The lines init prints: what it wrote and what it kept."""

    echo: Callable[[str], None]
    lines: list[str] = field(default_factory=list)

    def __call__(self, phase: str, verb: str, path: Path) -> None:
        line = f"[{phase}] {verb} {path}"
        self.lines.append(line)
        self.echo(line)


# ---- input ----------------------------------------------------------------------------------


def parse_ip(value: str, flag: str) -> IPAddress:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        raise PkiError(f'{flag} "{value}": not an IP address') from None


def parse_dns_name(value: str, flag: str) -> str:
    problems = is_dns1123_subdomain(value)
    if problems:
        raise PkiError(f'{flag} "{value}": {problems[0]}')
    return value


def parse_node(value: str) -> NodeSpec:
    """`NAME` or `NAME=IP[,IP...]`."""
    name, _, addresses = value.partition("=")
    parse_dns_name(name, "--node")
    ips = tuple(parse_ip(a, "--node") for a in addresses.split(",") if a.strip())
    if "=" in value and not ips:
        raise PkiError(f'--node "{value}": no IP address after "="')
    return NodeSpec(name, ips)


def parse_nodes(values: tuple[str, ...]) -> tuple[NodeSpec, ...]:
    specs = tuple(parse_node(value) for value in values)
    names = [spec.name for spec in specs]
    for name in names:
        if names.count(name) > 1:
            raise PkiError(f'--node "{name}": given more than once')
    return specs


def _unique(items: list[IPAddress]) -> tuple[IPAddress, ...]:
    return tuple(dict.fromkeys(items))


# ---- what each certificate says ------------------------------------------------------------


def apiserver_config(opts: PkiOptions) -> CertConfig:
    return CertConfig(
        common_name="kube-apiserver",
        usages=("server",),
        ip_addresses=_unique([*opts.addresses, *LOOPBACKS, opts.service_ip]),
        dns_names=tuple(dict.fromkeys([*SERVICE_DNS_NAMES, *opts.hostnames])),
    )


def kubelet_serving_config(node: NodeSpec) -> CertConfig:
    return CertConfig(
        common_name=f"system:node:{node.name}",
        organizations=(NODES,),
        usages=("server",),
        ip_addresses=node.addresses,
        dns_names=(node.name,),
    )


def kubeconfig_users(opts: PkiOptions) -> list[tuple[str, CertConfig]]:
    """(file name, client certificate) for each kubeconfig init writes."""
    users = [
        ("admin.conf", CertConfig("kubernetes-admin", (MASTERS,))),
        ("scheduler.conf", CertConfig("system:kube-scheduler")),
        ("controller-manager.conf", CertConfig("system:kube-controller-manager")),
    ]
    for node in opts.nodes:
        users.append(
            (f"kubelet-{node.name}.conf", CertConfig(f"system:node:{node.name}", (NODES,)))
        )
    return users


# ---- files ----------------------------------------------------------------------------------


def ensure_ca(pki: Path, opts: PkiOptions, report: Report) -> CertKeyPair:
    """The CA from pki/ca.{crt,key}, made if missing (or with --force)."""
    crt, key = pki / "ca.crt", pki / "ca.key"
    if not opts.force and (crt.exists() or key.exists()):
        if not (crt.exists() and key.exists()):
            present, absent = (crt, key) if crt.exists() else (key, crt)
            raise PkiError(f"{present} exists but {absent} does not (use --force for a new CA)")
        ca = CertKeyPair(certs.read_cert(crt), certs.read_key(key))
        if certs.spki_der(ca.cert.public_key()) != certs.spki_der(ca.key.public_key()):
            raise PkiError(f"{key} is not the key of {crt}")
        report("certs", "kept", crt)
        report("certs", "kept", key)
        return ca
    private = certs.generate_key()
    ca = CertKeyPair(certs.new_self_signed_ca(private), private)
    certs.write_key(key, ca.key)
    certs.write_cert(crt, ca.cert)
    report("certs", "wrote", crt)
    report("certs", "wrote", key)
    return ca


def check_kept(cert: x509.Certificate, ca: CertKeyPair, config: CertConfig, where: Path) -> None:
    """Raise PkiError unless a kept certificate is the CA's and says what `config` asks."""
    try:
        certs.verify_signed_by(cert, ca.cert)
    except certs.CertError as err:
        raise PkiError(f"{where}: {err} (use --force to write it anew)") from None
    if certs.identity(cert) != certs.Identity(config.common_name, config.organizations):
        raise PkiError(f"{where}: its subject is not {config.common_name} (use --force)")
    ips, dns = certs.subject_alt_names(cert)
    missing = [str(ip) for ip in config.ip_addresses if ip not in ips]
    missing += [name for name in config.dns_names if name not in dns]
    if missing:
        raise PkiError(f"{where}: not valid for {', '.join(missing)} (use --force to add them)")


def ensure_cert(
    pki: Path, base: str, ca: CertKeyPair, config: CertConfig, opts: PkiOptions, report: Report
) -> None:
    """pki/BASE.crt and pki/BASE.key, kept if they exist and fit."""
    crt, key = pki / f"{base}.crt", pki / f"{base}.key"
    if not opts.force and crt.exists() and key.exists():
        check_kept(certs.read_cert(crt), ca, config, crt)
        report("certs", "kept", crt)
        report("certs", "kept", key)
        return
    pair = certs.new_cert_and_key(ca, config)
    certs.write_key(key, pair.key)
    certs.write_cert(crt, pair.cert)
    report("certs", "wrote", crt)
    report("certs", "wrote", key)


def ensure_kubeconfig(
    path: Path, ca: CertKeyPair, config: CertConfig, opts: PkiOptions, report: Report
) -> None:
    """A kubeconfig with the user's client certificate embedded, kept if it exists and fits."""
    if not opts.force and path.exists():
        try:
            existing = kubeconfig.load(path)
        except kubeconfig.KubeconfigError as err:
            raise PkiError(f"{err} (use --force to write it anew)") from None
        if existing.server != opts.server:
            raise PkiError(f"{path}: its server is {existing.server}, not {opts.server} (--force)")
        if existing.ca_pem is None or certs.load_cert_pem(existing.ca_pem) != ca.cert:
            raise PkiError(f"{path}: its certificate-authority is not {ca.cert.subject} (--force)")
        if existing.cert_pem is not None:
            check_kept(certs.load_cert_pem(existing.cert_pem), ca, config, path)
        report("kubeconfig", "kept", path)
        return
    pair = certs.new_cert_and_key(ca, config)
    document = kubeconfig.new_config(
        server=opts.server,
        ca_pem=certs.encode_cert_pem(ca.cert),
        user=config.common_name,
        cert_pem=certs.encode_cert_pem(pair.cert),
        key_pem=certs.encode_key_pem(pair.key),
    )
    kubeconfig.write(path, document)
    report("kubeconfig", "wrote", path)


def init_pki(opts: PkiOptions, echo: Callable[[str], None] = print) -> Report:
    """Make (or keep) every file of the module docstring's layout; returns what it did."""
    report = Report(echo)
    directory = certs.ensure_dir(opts.directory)
    pki = certs.ensure_dir(directory / "pki")
    ca = ensure_ca(pki, opts, report)
    ensure_cert(pki, "apiserver", ca, apiserver_config(opts), opts, report)
    kubelet_client = CertConfig("kube-apiserver-kubelet-client", (MASTERS,))
    ensure_cert(pki, "apiserver-kubelet-client", ca, kubelet_client, opts, report)
    for node in opts.nodes:
        ensure_cert(pki, f"kubelet-{node.name}", ca, kubelet_serving_config(node), opts, report)
    for name, user in kubeconfig_users(opts):
        ensure_kubeconfig(directory / name, ca, user, opts, report)
    return report


# ---- the command ----------------------------------------------------------------------------


@click.group("pki")
def pki() -> None:
    """Make the cluster's certificates and kubeconfig files."""


@pki.command("init")
@click.option(
    "--dir",
    "directory",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory for the kubeconfigs; certificates go to its pki/ (made 0700).",
)
@click.option(
    "--apiserver-address",
    multiple=True,
    metavar="IP",
    help="An address clients dial the API server at; the first is the kubeconfigs' server.",
)
@click.option("--apiserver-port", type=click.IntRange(1, 65535), default=API_SERVER_PORT)
@click.option("--hostname", multiple=True, metavar="NAME", help="A DNS name for the API server.")
@click.option(
    "--service-cluster-ip",
    default=SERVICE_CLUSTER_IP,
    show_default=True,
    help="The `kubernetes` Service's ClusterIP, a SAN of the API server's certificate.",
)
@click.option(
    "--node",
    "nodes",
    multiple=True,
    metavar="NAME[=IP,...]",
    help="A node: its kubelet's kubeconfig and serving certificate (SANs NAME and the IPs).",
)
@click.option("--force", is_flag=True, help="Write every file anew, a new CA included.")
def init(
    directory: str,
    apiserver_address: tuple[str, ...],
    apiserver_port: int,
    hostname: tuple[str, ...],
    service_cluster_ip: str,
    nodes: tuple[str, ...],
    force: bool,
) -> None:
    """Make the CA, the certificates and the kubeconfigs; keep files that exist."""
    try:
        opts = PkiOptions(
            directory=Path(directory),
            addresses=_unique([parse_ip(a, "--apiserver-address") for a in apiserver_address]),
            port=apiserver_port,
            hostnames=tuple(parse_dns_name(h, "--hostname") for h in hostname),
            service_ip=parse_ip(service_cluster_ip, "--service-cluster-ip"),
            nodes=parse_nodes(nodes),
            force=force,
        )
        init_pki(opts, click.echo)
        ca = certs.read_cert(Path(directory) / "pki" / "ca.crt")
    except (PkiError, certs.CertError) as err:
        click.echo(f"error: {err}", err=True)
        raise click.exceptions.Exit(1) from None
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        click.echo(f"error: {where}{err.strerror or err}", err=True)
        raise click.exceptions.Exit(1) from None
    click.echo(f"CA hash: {certs.ca_hash(ca)}")
