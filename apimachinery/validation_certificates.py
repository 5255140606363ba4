"""Validation of certificates.k8s.io/v1 CertificateSigningRequests, with Kubernetes' words.

Kubernetes' pkg/apis/certificates/validation. On create:

    spec.request      a PEM CERTIFICATE REQUEST whose signature verifies (the
                      requester proves it holds the key)
    spec.signerName   required, `example.com/signer-name` in form, and one of
                      the three signers tinykube serves (apimachinery/csr.py)
    spec.usages       required, each a known key usage, no duplicates
    spec.expirationSeconds   at least 600 (10 minutes)
    status.conditions each with a type and a status; Approved, Denied and
                      Failed only "True"; one of each type; Approved and
                      Denied mutually exclusive
    status.certificate  PEM CERTIFICATE blocks only

and for the kubelet client signer, what the request itself says: CN
system:node:NAME, O exactly [system:nodes], no subjectAltNames, usages
client auth (+ digital signature, key encipherment). That is the request
the approver may grant without a human, so a malformed one never gets as
far as the approver.

On update (Update and UpdateStatus alike):

    spec              immutable: what was asked for is what gets approved
    status.conditions an Approved, Denied or Failed condition is never removed
    status.certificate once issued, never changed

Deviations, stated: Kubernetes accepts any well-formed signer name (signers
of its own can run outside kube-controller-manager); tinykube has only its
own, so another name is "Unsupported value". Kubernetes resets a changed
spec silently in its update strategy; here the change is refused, which says
the same thing louder. The request's bytes are shown as "<request data>"
rather than Go's byte-slice dump.

    spec.signerName: Required value
    spec.request: Invalid value: "<request data>": PEM block type must be CERTIFICATE REQUEST
    status.conditions[1].type: Invalid value: "Denied": Approved and Denied conditions
        are mutually exclusive
    status.conditions: Forbidden: updates may not remove a condition of type "Approved"
"""

from __future__ import annotations

from collections.abc import Iterable

from cryptography import x509

from apimachinery import csr as csrs
from apimachinery import errors
from apimachinery.errors import FieldError
from apimachinery.validation_meta import IMMUTABLE, Shown, validate_object_meta
from protos import certificates_pb2

CSR = certificates_pb2.CertificateSigningRequest

REQUEST_SHOWN = "<request data>"
CERTIFICATE_SHOWN = "<certificate data>"
MIN_EXPIRATION_SECONDS = 600
SIGNER_FORM = "must be a fully qualified domain and path of the form 'example.com/signer-name'"
EXCLUSIVE = "Approved and Denied conditions are mutually exclusive"


def go_strings(values: object) -> Shown:
    """A list of strings as Kubernetes prints it: []string{"client auth", "digital signature"}."""
    items = list(values) if isinstance(values, Iterable) else []
    return Shown("[]string{" + ", ".join(f'"{v}"' for v in items) + "}")


def path_segment_name(name: str) -> list[str]:
    """Kubernetes' ValidatePathSegmentName: CSR names are free-form but must fit a URL path."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in "/%" if c in name]


def validate_signer_name(signer: str, path: str = "spec.signerName") -> list[FieldError]:
    if not signer:
        return [errors.required(path)]
    domain, slash, name = signer.partition("/")
    if not slash or not domain or not name or "/" in name:
        return [errors.invalid(path, signer, SIGNER_FORM)]
    if signer not in csrs.SIGNERS:
        return [errors.unsupported(path, signer, list(csrs.SIGNERS))]
    return []


def _validate_usages(usages: list[str]) -> list[FieldError]:
    if not usages:
        return [errors.required("spec.usages")]
    out: list[FieldError] = []
    seen: set[str] = set()
    for i, usage in enumerate(usages):
        if usage not in csrs.VALID_USAGES:
            out.append(errors.unsupported(f"spec.usages[{i}]", usage, list(csrs.VALID_USAGES)))
        if usage in seen:
            out.append(errors.duplicate(f"spec.usages[{i}]", usage))
        seen.add(usage)
    return out


def _validate_spec(spec: certificates_pb2.CertificateSigningRequestSpec) -> list[FieldError]:
    out: list[FieldError] = []
    try:
        request = csrs.parse_request(spec.request)
    except csrs.CSRError as err:
        out.append(errors.invalid("spec.request", REQUEST_SHOWN, str(err)))
        request = None
    out.extend(_validate_usages(list(spec.usages)))
    out.extend(validate_signer_name(spec.signer_name))
    if spec.HasField("expiration_seconds") and spec.expiration_seconds < MIN_EXPIRATION_SECONDS:
        out.append(
            errors.invalid(
                "spec.expirationSeconds",
                spec.expiration_seconds,
                "may not specify a duration less than 600 seconds (10 minutes)",
            )
        )
    if request is not None and spec.signer_name == csrs.KUBE_APISERVER_CLIENT_KUBELET:
        problem = csrs.kubelet_client_problem(request, spec.usages)
        if problem.startswith("usages"):
            out.append(errors.invalid("spec.usages", go_strings(spec.usages), problem))
        elif problem:
            out.append(errors.invalid("spec.request", REQUEST_SHOWN, problem))
    return out


def _validate_conditions(csr: CSR) -> list[FieldError]:
    out: list[FieldError] = []
    seen: set[str] = set()
    decided = ""
    true_only = (csrs.APPROVED, csrs.DENIED, csrs.FAILED)
    for i, cond in enumerate(csr.status.conditions):
        here = f"status.conditions[{i}]"
        if not cond.type:
            out.append(errors.required(f"{here}.type"))
        allowed = ["True"] if cond.type in true_only else ["False", "True", "Unknown"]
        if not cond.status:
            out.append(errors.required(f"{here}.status"))
        elif cond.status not in allowed:
            out.append(errors.unsupported(f"{here}.status", cond.status, allowed))
        if cond.type in (csrs.APPROVED, csrs.DENIED):
            if decided and decided != cond.type:
                out.append(errors.invalid(f"{here}.type", cond.type, EXCLUSIVE))
            decided = decided or cond.type
        if cond.type in seen:
            out.append(errors.duplicate(f"{here}.type", cond.type))
        seen.add(cond.type)
    return out


def certificate_problem(pem: bytes) -> str:
    """Kubernetes' validateCertificate: "" for no certificate or PEM CERTIFICATE blocks only."""
    if not pem:
        return ""
    blocks = csrs.pem_blocks(pem)
    for kind, der in blocks:
        if kind != "CERTIFICATE":
            return f'only CERTIFICATE PEM blocks are allowed, found "{kind}"'
        try:
            x509.load_der_x509_certificate(der)
        except ValueError as err:
            return f"x509: malformed certificate: {err}"
    return "" if blocks else "must contain at least one CERTIFICATE PEM block"


def validate_certificate_signing_request(csr: CSR) -> list[FieldError]:
    """Every problem of one CSR (create, or the new side of an update)."""
    out = validate_object_meta(csr.metadata, False, path_segment_name)
    out.extend(_validate_spec(csr.spec))
    out.extend(_validate_conditions(csr))
    problem = certificate_problem(csr.status.certificate)
    if problem:
        out.append(errors.invalid("status.certificate", CERTIFICATE_SHOWN, problem))
    return out


def _spec_changes(new: CSR, old: CSR) -> list[FieldError]:
    """`field is immutable` for each spec field whose value (or presence) changed."""
    new_values = {f.name: value for f, value in new.spec.ListFields()}
    old_values = {f.name: value for f, value in old.spec.ListFields()}
    out: list[FieldError] = []
    for field in new.spec.DESCRIPTOR.fields:
        value = new_values.get(field.name)
        if value == old_values.get(field.name):
            continue
        if field.name == "request":
            shown: object = REQUEST_SHOWN
        elif field.is_repeated:
            shown = go_strings(value or [])
        else:
            shown = value
        out.append(errors.invalid(f"spec.{field.json_name}", shown, IMMUTABLE))
    return out


def validate_certificate_signing_request_update(new: CSR, old: CSR) -> list[FieldError]:
    """What an update of a CSR may not change (validate_update has run the create checks)."""
    out = _spec_changes(new, old)
    for kind in (csrs.APPROVED, csrs.DENIED, csrs.FAILED):
        before = sum(1 for c in old.status.conditions if c.type == kind)
        after = sum(1 for c in new.status.conditions if c.type == kind)
        if after < before:
            out.append(
                errors.forbidden(
                    "status.conditions", f'updates may not remove a condition of type "{kind}"'
                )
            )
    if old.status.certificate and new.status.certificate != old.status.certificate:
        out.append(
            errors.forbidden(
                "status.certificate", "updates may not modify existing certificate content"
            )
        )
    return out
