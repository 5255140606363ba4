"""Who asked for a certificate: the API server writes it into the CSR, never the client.

Kubernetes' CertificateSigningRequest strategy (pkg/registry/certificates/
certificates/strategy.go, PrepareForCreate) overwrites spec.username,
spec.uid, spec.groups (and extra) with the authenticated requester's
identity on create, and clears status. Everything downstream trusts these
fields:

* the csrapproving controller approves a kubelet client CSR because its
  requester is in `system:bootstrappers` (a node joining with a bootstrap
  token) or is the very node the CSR names (`system:node:NAME` renewing);
* `tinykube get csr` shows the requester (REQUESTOR) so that a human
  approving by hand knows who is asking.

If a client could write these fields, anyone allowed to create a CSR could
claim to be a bootstrapper and be handed a node's credentials. So the server
sets them, at create time, from the identity authentication produced; and a
client cannot pre-approve or pre-issue its own request: status starts empty.
After create the spec is immutable (validation_certificates.py), so the
stamp stays what it was.

    csr.spec.username = "system:bootstrap:abcdef"        (whatever the client sent)
    csr.spec.groups   = ["system:bootstrappers", "system:bootstrappers:kubeadm:
                         default-node-token", "system:authenticated"]

`stamp_requester` is the hook: the server calls it on every create of a
CertificateSigningRequest, after authentication and before validation.
`stamp_if_csr` does the same for any object (a no-op for other kinds), for a
create path that does not look at kinds.
"""

from __future__ import annotations

from google.protobuf.message import Message

from apiserver.auth.authorizer import UserInfo
from protos import certificates_pb2


def stamp_requester(csr: certificates_pb2.CertificateSigningRequest, user: UserInfo) -> None:
    """Set spec.username/uid/groups from `user` and clear status (PrepareForCreate)."""
    csr.spec.username = user.name
    csr.spec.uid = user.uid
    del csr.spec.groups[:]
    csr.spec.groups.extend(user.groups)
    csr.ClearField("status")


def stamp_if_csr(obj: Message, user: UserInfo) -> None:
    """stamp_requester for a CertificateSigningRequest; other objects are left alone."""
    if isinstance(obj, certificates_pb2.CertificateSigningRequest):
        stamp_requester(obj, user)
