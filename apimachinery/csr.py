"""CertificateSigningRequests: the signers, the conditions, and what each signer will sign.

Kubernetes' pkg/apis/certificates/helpers.go and the checks of
pkg/controller/certificates/signer, in one place shared by validation
(validation_certificates.py), the approving and signing controllers and the
CLI, so that all of them agree on what a kubelet's request looks like.

A CSR's life, and who writes what:

    kubelet (or anyone)   create   spec.request = PEM CSR, spec.signerName, spec.usages
    API server            create   spec.username / uid / groups = the requester
    approver or user      status   condition Approved (or Denied), never removed
    signer                status   status.certificate, or condition Failed with a reason

The three signers tinykube's signing controller serves (Kubernetes' names):

    kubernetes.io/kube-apiserver-client-kubelet   a kubelet's client certificate:
        CN system:node:NAME, O exactly [system:nodes], no subjectAltNames,
        usages client auth (+ digital signature, key encipherment)
    kubernetes.io/kubelet-serving                 a kubelet's serving certificate:
        the same subject, at least one DNS or IP subjectAltName,
        usages server auth (+ digital signature, key encipherment)
    kubernetes.io/kube-apiserver-client           any client of the API server:
        usages among client auth, digital signature, key encipherment

A request that breaks its signer's rules is refused by validation when it is
a kubelet client request (the one that can be auto-approved), and failed by
the signer otherwise (condition Failed, reason SignerValidationFailure), as
Kubernetes' signer does. Each problem is one line in Kubernetes' words
("subject organization is not system:nodes").

Worked example: a kubelet bootstrapping as node2 sends CN=system:node:node2,
O=system:nodes, usages [digital signature, client auth], signer
kube-apiserver-client-kubelet. `kubelet_client_problem` answers "" (fine);
with O=system:masters it answers "subject organization is not system:nodes".
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Iterable

from cryptography import x509
from cryptography.x509.oid import NameOID

from protos import certificates_pb2

CSR = certificates_pb2.CertificateSigningRequest
Condition = certificates_pb2.CertificateSigningRequestCondition

KUBE_APISERVER_CLIENT = "kubernetes.io/kube-apiserver-client"
KUBE_APISERVER_CLIENT_KUBELET = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"
SIGNERS = (KUBE_APISERVER_CLIENT, KUBE_APISERVER_CLIENT_KUBELET, KUBELET_SERVING)

APPROVED = "Approved"
DENIED = "Denied"
FAILED = "Failed"

NODE_USER_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"

CLIENT_AUTH = "client auth"
SERVER_AUTH = "server auth"
DIGITAL_SIGNATURE = "digital signature"
KEY_ENCIPHERMENT = "key encipherment"

# Kubernetes' KeyUsage values (certificates/v1), every one a request may name.
VALID_USAGES = (
    "any",
    "cert sign",
    CLIENT_AUTH,
    "code signing",
    "content commitment",
    "crl sign",
    "data encipherment",
    "decipher only",
    DIGITAL_SIGNATURE,
    "email protection",
    "encipher only",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "key agreement",
    KEY_ENCIPHERMENT,
    "microsoft sgc",
    "netscape sgc",
    "ocsp signing",
    "s/mime",
    SERVER_AUTH,
    "signing",
    "timestamping",
)

PEM_TYPE_MESSAGE = "PEM block type must be CERTIFICATE REQUEST"
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)


class CSRError(ValueError):
    """A spec.request that is no usable certificate request; the message says why."""


def pem_blocks(data: bytes) -> list[tuple[str, bytes]]:
    """(type, DER bytes) of each PEM block in `data`, in order, as Go's pem.Decode finds them
    (text around the blocks and header lines inside them are skipped)."""
    out = []
    for match in _PEM_BLOCK.finditer(data):
        body = b"".join(line for line in match.group(2).splitlines() if b":" not in line)
        try:
            der = base64.b64decode(body, validate=False)
        except binascii.Error:
            continue  # not a PEM block after all
        out.append((match.group(1).decode("ascii"), der))
    return out


def parse_request(pem: bytes) -> x509.CertificateSigningRequest:
    """The first PEM block of `pem` as a CSR whose signature verifies (Kubernetes' ParseCSR
    followed by CheckSignature)."""
    blocks = pem_blocks(pem)
    if not blocks or blocks[0][0] != "CERTIFICATE REQUEST":
        raise CSRError(PEM_TYPE_MESSAGE)
    try:
        request = x509.load_der_x509_csr(blocks[0][1])
    except ValueError as err:
        raise CSRError(f"x509: malformed certificate request: {err}") from None
    if not request.is_signature_valid:
        raise CSRError("x509: the certificate request's signature does not verify")
    return request


# ---- what a request asks for ---------------------------------------------------------------


def common_name(request: x509.CertificateSigningRequest) -> str:
    names = request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def organizations(request: x509.CertificateSigningRequest) -> list[str]:
    return [str(a.value) for a in request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]


def _san(request: x509.CertificateSigningRequest) -> x509.SubjectAlternativeName | None:
    try:
        return request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def _go_list(items: Iterable[str]) -> str:
    """A list as Go's %v prints it: [a b c]."""
    return "[" + " ".join(items) + "]"


def _node_subject_problem(request: x509.CertificateSigningRequest) -> str:
    if organizations(request) != [NODES_GROUP]:
        return "subject organization is not system:nodes"
    if not common_name(request).startswith(NODE_USER_PREFIX):
        return "subject common name does not begin with 'system:node:'"
    return ""


def _usages_problem(usages: Iterable[str], required: str) -> str:
    given = list(usages)
    allowed = {required, DIGITAL_SIGNATURE, KEY_ENCIPHERMENT}
    if required not in given or not set(given) <= allowed:
        return f"usages did not match {_go_list(sorted(set(given)))}"
    return ""


def kubelet_client_problem(request: x509.CertificateSigningRequest, usages: Iterable[str]) -> str:
    """Why this is no kubelet client request ("" when it is): Kubernetes' IsKubeletClientCSR."""
    problem = _node_subject_problem(request)
    if problem:
        return problem
    san = _san(request)
    if san is not None:
        present = {type(name) for name in san}
        for kind, word in (
            (x509.DNSName, "DNS"),
            (x509.RFC822Name, "Email"),
            (x509.IPAddress, "IP"),
            (x509.UniformResourceIdentifier, "URI"),
        ):
            if kind in present:
                return f"{word} subjectAltNames are not allowed"
    return _usages_problem(usages, CLIENT_AUTH)


def kubelet_serving_problem(request: x509.CertificateSigningRequest, usages: Iterable[str]) -> str:
    """Why this is no kubelet serving request ("" when it is): IsKubeletServingCSR."""
    problem = _node_subject_problem(request)
    if problem:
        return problem
    san = _san(request)
    if san is None or not (
        san.get_values_for_type(x509.DNSName) or san.get_values_for_type(x509.IPAddress)
    ):
        return "DNS or IP subjectAltName is required"
    if san.get_values_for_type(x509.RFC822Name):
        return "Email subjectAltNames are not allowed"
    if san.get_values_for_type(x509.UniformResourceIdentifier):
        return "URI subjectAltNames are not allowed"
    return _usages_problem(usages, SERVER_AUTH)


def apiserver_client_problem(request: x509.CertificateSigningRequest, usages: Iterable[str]) -> str:
    """Why the kube-apiserver-client signer refuses this ("" when it does not)."""
    allowed = {CLIENT_AUTH, DIGITAL_SIGNATURE, KEY_ENCIPHERMENT}
    for usage in usages:
        if usage not in allowed:
            return f"invalid usage for client certificate: {usage}"
    if not common_name(request):
        return "subject common name is required"
    return ""


def signer_problem(signer: str, request: x509.CertificateSigningRequest, usages: list[str]) -> str:
    """What `signer` holds against the request ("" if nothing; unknown signers: not ours)."""
    if signer == KUBE_APISERVER_CLIENT_KUBELET:
        return kubelet_client_problem(request, usages)
    if signer == KUBELET_SERVING:
        return kubelet_serving_problem(request, usages)
    if signer == KUBE_APISERVER_CLIENT:
        return apiserver_client_problem(request, usages)
    return f'signer "{signer}" is not served here'


def x509_usages(signer: str) -> tuple[str, ...]:
    """The extended key usages a signer puts in what it issues (certs.CertConfig's words)."""
    return ("server",) if signer == KUBELET_SERVING else ("client",)


# ---- conditions ----------------------------------------------------------------------------


def find_condition(csr: CSR, kind: str) -> Condition | None:
    for cond in csr.status.conditions:
        if cond.type == kind:
            return cond
    return None


def has_true(csr: CSR, kind: str) -> bool:
    cond = find_condition(csr, kind)
    return cond is not None and (cond.status or "True") == "True"


def is_approved(csr: CSR) -> bool:
    """Approved and not Denied (Kubernetes' IsCertificateRequestApproved)."""
    return has_true(csr, APPROVED) and not has_true(csr, DENIED)


def is_decided(csr: CSR) -> bool:
    """Approved or Denied already: an approver has nothing left to say."""
    return find_condition(csr, APPROVED) is not None or find_condition(csr, DENIED) is not None


def add_condition(csr: CSR, kind: str, reason: str, message: str) -> Condition:
    """Append a True condition stamped now (whole seconds, as metav1.Time)."""
    cond = csr.status.conditions.add(type=kind, status="True", reason=reason, message=message)
    now = int(time.time())
    cond.last_update_time.seconds = now
    cond.last_transition_time.seconds = now
    return cond
