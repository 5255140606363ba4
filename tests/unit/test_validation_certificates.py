"""CertificateSigningRequest validation, in Kubernetes' words (create and update)."""

# Expected messages are Kubernetes' exact words, so some lines are long.
# ruff: noqa: E501
from __future__ import annotations

import base64

import pytest

from apimachinery import certs, errors, validation
from apimachinery import csr as csrs
from apimachinery.client import Client
from apimachinery.validation_certificates import path_segment_name
from tests.unit.csr_fixtures import CSR, kubelet_csr, kubelet_request, new_csr


def messages(obj: CSR) -> list[str]:
    return [str(e) for e in validation.validate_object(obj)]


def update_messages(new: CSR, old: CSR) -> list[str]:
    return [str(e) for e in validation.validate_update(new, old)]


def copy(csr: CSR) -> CSR:
    out = CSR()
    out.CopyFrom(csr)
    return out


def test_a_kubelet_client_request_is_valid() -> None:
    assert messages(kubelet_csr("node1")) == []
    csr = kubelet_csr("node1")
    csr.spec.usages.append(csrs.KEY_ENCIPHERMENT)
    assert messages(csr) == []


def test_request_must_be_a_pem_certificate_request() -> None:
    not_pem = new_csr("x", b"hello")
    a_certificate = new_csr(
        "x", certs.encode_cert_pem(certs.new_self_signed_ca(certs.generate_key()))
    )
    for csr in (not_pem, a_certificate):
        assert messages(csr) == [
            'spec.request: Invalid value: "<request data>": PEM block type must be CERTIFICATE REQUEST'
        ]


def test_request_signature_must_verify() -> None:
    # One byte of the signature changed: the request no longer proves its key.
    pem = kubelet_request("node1")
    der = bytearray(csrs.pem_blocks(pem)[0][1])
    der[-5] ^= 0xFF  # inside the signature
    tampered = b"-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(bytes(der))
    tampered += b"-----END CERTIFICATE REQUEST-----\n"
    assert messages(new_csr("x", tampered)) == [
        'spec.request: Invalid value: "<request data>": '
        "x509: the certificate request's signature does not verify"
    ]


def test_signer_name() -> None:
    csr = kubelet_csr("node1")
    csr.spec.signer_name = ""
    assert messages(csr) == ["spec.signerName: Required value"]
    csr.spec.signer_name = "no-slash"
    assert messages(csr) == [
        "spec.signerName: Invalid value: \"no-slash\": must be a fully qualified domain and path of the form 'example.com/signer-name'"
    ]
    csr.spec.signer_name = "example.com/mine"
    assert messages(csr) == [
        'spec.signerName: Unsupported value: "example.com/mine": supported values: '
        '"kubernetes.io/kube-apiserver-client", "kubernetes.io/kube-apiserver-client-kubelet", '
        '"kubernetes.io/kubelet-serving"'
    ]


def test_usages_and_expiration() -> None:
    csr = new_csr("x", kubelet_request("n"), signer=csrs.KUBE_APISERVER_CLIENT, usages=())
    assert messages(csr) == ["spec.usages: Required value"]
    csr.spec.usages.extend(["client auth", "client auth", "flying"])
    found = messages(csr)
    assert found[0] == 'spec.usages[1]: Duplicate value: "client auth"'
    assert found[1].startswith(
        'spec.usages[2]: Unsupported value: "flying": supported values: "any", '
    )
    csr = kubelet_csr("node1")
    csr.spec.expiration_seconds = 599
    assert messages(csr) == [
        "spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 600 seconds (10 minutes)"
    ]
    csr.spec.expiration_seconds = 600
    assert messages(csr) == []


@pytest.mark.parametrize(
    ("request_pem", "usages", "expected"),
    [
        (
            lambda: kubelet_request("n1", organizations=("system:masters",)),
            ("client auth",),
            'spec.request: Invalid value: "<request data>": subject organization is not system:nodes',
        ),
        (
            lambda: kubelet_request("n1", organizations=("system:nodes", "system:masters")),
            ("client auth",),
            'spec.request: Invalid value: "<request data>": subject organization is not system:nodes',
        ),
        (
            lambda: kubelet_request("n1", common_name="kubernetes-admin"),
            ("client auth",),
            "spec.request: Invalid value: \"<request data>\": subject common name does not begin with 'system:node:'",
        ),
        (
            lambda: kubelet_request("n1", dns_names=("n1",)),
            ("client auth",),
            'spec.request: Invalid value: "<request data>": DNS subjectAltNames are not allowed',
        ),
        (
            lambda: kubelet_request("n1", ips=("10.0.0.1",)),
            ("client auth",),
            'spec.request: Invalid value: "<request data>": IP subjectAltNames are not allowed',
        ),
        (
            lambda: kubelet_request("n1"),
            ("digital signature", "server auth"),
            'spec.usages: Invalid value: []string{"digital signature", "server auth"}: usages did not match [digital signature server auth]',
        ),
        (
            lambda: kubelet_request("n1"),
            ("digital signature",),
            'spec.usages: Invalid value: []string{"digital signature"}: usages did not match [digital signature]',
        ),
    ],
)
def test_kubelet_client_requests_must_look_like_one(
    request_pem: object, usages: tuple[str, ...], expected: str
) -> None:
    assert callable(request_pem)
    csr = new_csr("x", request_pem(), usages=usages)
    assert messages(csr) == [expected]
    # The same request for another signer is the signer's business, not validation's.
    csr.spec.signer_name = csrs.KUBE_APISERVER_CLIENT
    assert messages(csr) == []


def test_conditions() -> None:
    csr = kubelet_csr("node1")
    csrs.add_condition(csr, csrs.APPROVED, "KubectlApprove", "")
    assert messages(csr) == []
    csrs.add_condition(csr, csrs.DENIED, "KubectlDeny", "")
    assert messages(csr) == [
        'status.conditions[1].type: Invalid value: "Denied": Approved and Denied conditions are mutually exclusive'
    ]
    csr = kubelet_csr("node1")
    csr.status.conditions.add(type="Approved", status="False")
    csr.status.conditions.add(type="Approved", status="")
    csr.status.conditions.add(type="", status="Maybe")
    assert messages(csr) == [
        'status.conditions[0].status: Unsupported value: "False": supported values: "True"',
        "status.conditions[1].status: Required value",
        'status.conditions[1].type: Duplicate value: "Approved"',
        "status.conditions[2].type: Required value",
        'status.conditions[2].status: Unsupported value: "Maybe": supported values: "False", "True", "Unknown"',
    ]


def test_status_certificate_must_be_pem_certificates() -> None:
    csr = kubelet_csr("node1")
    csr.status.certificate = b"junk"
    assert messages(csr) == [
        'status.certificate: Invalid value: "<certificate data>": must contain at least one CERTIFICATE PEM block'
    ]
    csr.status.certificate = kubelet_request("node1")
    assert messages(csr) == [
        'status.certificate: Invalid value: "<certificate data>": only CERTIFICATE PEM blocks are allowed, found "CERTIFICATE REQUEST"'
    ]


def test_names_are_path_segments() -> None:
    assert path_segment_name("node-csr-5bL8_2nWBHG-Ez3Uix_yHdVpFSa4V") == []
    assert path_segment_name("..") == ["may not be '..'"]
    assert path_segment_name("a/b%c") == ["may not contain '/'", "may not contain '%'"]
    assert messages(kubelet_csr("node1", name="a/b")) == [
        "metadata.name: Invalid value: \"a/b\": may not contain '/'"
    ]


def test_spec_is_immutable() -> None:
    old = kubelet_csr("node1")
    new = copy(old)
    new.spec.request = kubelet_request("node1")
    new.spec.usages.append("key encipherment")
    new.spec.expiration_seconds = 3600
    assert update_messages(new, old) == [
        'spec.request: Invalid value: "<request data>": field is immutable',
        "spec.expirationSeconds: Invalid value: 3600: field is immutable",
        'spec.usages: Invalid value: []string{"digital signature", "client auth", "key encipherment"}: field is immutable',
    ]
    new = copy(old)
    new.spec.username = "system:bootstrap:abcdef"
    assert update_messages(new, old) == [
        'spec.username: Invalid value: "system:bootstrap:abcdef": field is immutable'
    ]


def test_decisions_and_certificates_stay() -> None:
    old = kubelet_csr("node1")
    csrs.add_condition(old, csrs.APPROVED, "AutoApproved", "")
    new = copy(old)
    del new.status.conditions[:]
    assert update_messages(new, old) == [
        'status.conditions: Forbidden: updates may not remove a condition of type "Approved"'
    ]
    ca_key = certs.generate_key()
    ca = certs.CertKeyPair(certs.new_self_signed_ca(ca_key), ca_key)
    old.status.certificate = certs.encode_cert_pem(certs.sign_csr(ca, old.spec.request))
    new = copy(old)
    assert update_messages(new, old) == []
    new.status.certificate = certs.encode_cert_pem(certs.sign_csr(ca, old.spec.request))
    assert update_messages(new, old) == [
        "status.certificate: Forbidden: updates may not modify existing certificate content"
    ]


async def test_the_server_refuses_an_invalid_csr(client: Client) -> None:
    csr = new_csr("bad", kubelet_request("n1", organizations=("system:masters",)))
    with pytest.raises(errors.Invalid) as caught:
        await client.create(csr)
    assert str(caught.value) == (
        'CertificateSigningRequest.certificates.k8s.io "bad" is invalid: spec.request: '
        'Invalid value: "<request data>": subject organization is not system:nodes'
    )
    created = await client.create(kubelet_csr("node1"))
    assert created.metadata.name == "node-csr-node1"
    assert (await client.get("csr", "node-csr-node1")).spec.signer_name == (
        csrs.KUBE_APISERVER_CLIENT_KUBELET
    )
