"""CertificateSigningRequests for the tests: kubelet client requests and a CA to sign them.

`kubelet_csr("node3")` is what a kubelet bootstrapping as node3 sends:
CN system:node:node3, O system:nodes, usages digital signature + client
auth, signer kubernetes.io/kube-apiserver-client-kubelet. `as_requester`
fills spec.username/groups, which the API server stamps from the
authenticated identity: tests that create through the local admin's
socket set them here, as the stamp would (apiserver/auth/requester.py).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from apimachinery import certs
from apimachinery import csr as csrs
from protos import certificates_pb2

CSR = certificates_pb2.CertificateSigningRequest
BOOTSTRAPPER = ("system:bootstrap:abcdef", ("system:bootstrappers", "system:authenticated"))


def new_csr(
    name: str,
    request: bytes,
    *,
    signer: str = csrs.KUBE_APISERVER_CLIENT_KUBELET,
    usages: tuple[str, ...] = (csrs.DIGITAL_SIGNATURE, csrs.CLIENT_AUTH),
) -> CSR:
    csr = CSR(api_version="certificates.k8s.io/v1", kind="CertificateSigningRequest")
    csr.metadata.name = name
    csr.spec.request = request
    csr.spec.signer_name = signer
    csr.spec.usages.extend(usages)
    return csr


def kubelet_request(
    node: str,
    *,
    key: certs.PrivateKey | None = None,
    organizations: tuple[str, ...] = (csrs.NODES_GROUP,),
    common_name: str = "",
    dns_names: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
) -> bytes:
    return certs.make_csr(
        key or certs.generate_key(),
        common_name or f"system:node:{node}",
        organizations,
        dns_names=dns_names,
        ip_addresses=[ipaddress.ip_address(ip) for ip in ips],
    )


def kubelet_csr(node: str, name: str = "", request: bytes = b"") -> CSR:
    """A kubelet client CSR for `node`: well-formed unless `request` says otherwise."""
    return new_csr(name or f"node-csr-{node}", request or kubelet_request(node))


def as_requester(csr: CSR, user: str, groups: tuple[str, ...]) -> CSR:
    csr.spec.username = user
    del csr.spec.groups[:]
    csr.spec.groups.extend(groups)
    return csr


def write_ca(directory: Path) -> tuple[certs.CertKeyPair, Path, Path]:
    """A fresh CA in directory/ca.crt and ca.key."""
    key = certs.generate_key()
    ca = certs.CertKeyPair(certs.new_self_signed_ca(key), key)
    crt, pem_key = directory / "ca.crt", directory / "ca.key"
    certs.write_cert(crt, ca.cert)
    certs.write_key(pem_key, key)
    return ca, crt, pem_key
