"""The CSR approving controller: grants kubelets their client certificates without a human.

Kubernetes' pkg/controller/certificates/approver (sarapprove.go), in
kube-controller-manager. TLS bootstrapping would need an administrator to
approve every node's first certificate, and every renewal, by hand. This
controller approves exactly the two requests that are safe to approve
automatically, both for the kubelet client signer
(kubernetes.io/kube-apiserver-client-kubelet) and both well-formed kubelet
client requests (CN system:node:NAME, O system:nodes, client usages --
apimachinery/csr.py checks that):

    nodeclient      the requester is in system:bootstrappers: a new node
                    presenting a bootstrap token (`tinykube token create`)
    selfnodeclient  the requester is system:node:NAME in system:nodes and
                    the CSR names that same NAME: a node renewing its own

"The requester" is spec.username / spec.groups, which the API server stamps
from the authenticated identity on create (apiserver/auth/requester.py), so
a client cannot claim to be a bootstrapper. Anything else -- a node asking
for another node's name, an admin's request, a serving certificate -- is
left Pending for a human (`tinykube certificate approve|deny`).

Approval is a condition, `Approved` with reason `AutoApproved`, written with
UpdateStatus (Kubernetes has an /approval subresource for it; tinykube's
status write is the one place conditions change). The signer
(csrsigning.py) does the rest.

Deviation, stated: Kubernetes asks the authorizer, through a
SubjectAccessReview, whether the requester may `create` the subresource
`certificatesigningrequests/nodeclient` (or `selfnodeclient`); kubeadm's
RBAC bindings grant those to system:bootstrappers and system:nodes. tinykube
checks those groups directly, which is what the default bindings amount to.

    CSR node-csr-x  requester system:bootstrap:abcdef [system:bootstrappers, ...]
                    CN system:node:node3, O system:nodes, [digital signature, client auth]
      sync: nodeclient recognized, requester is a bootstrapper -> Approved (AutoApproved)
    CSR csr-y       requester system:node:node1 [system:nodes], CN system:node:node2
      sync: not self (node1 asks for node2), not a bootstrapper -> stays Pending
"""

from __future__ import annotations

import logging

from apimachinery import csr as csrs
from apimachinery.clusterbootstrap import BOOTSTRAPPERS_GROUP
from controllers import register
from controllers.base import Controller, ControllerContext
from protos import certificates_pb2

log = logging.getLogger(__name__)

CSR = certificates_pb2.CertificateSigningRequest

REASON = "AutoApproved"
NODE_CLIENT_MESSAGE = "Auto approving kubelet client certificate: the requester is a bootstrapper."
SELF_NODE_CLIENT_MESSAGE = (
    "Auto approving self kubelet client certificate: the requester is the node it names."
)


def approval_message(csr: CSR) -> str:
    """Why `csr` may be approved automatically ("" when it may not)."""
    if csr.spec.signer_name != csrs.KUBE_APISERVER_CLIENT_KUBELET:
        return ""
    try:
        request = csrs.parse_request(csr.spec.request)
    except csrs.CSRError:
        return ""
    if csrs.kubelet_client_problem(request, csr.spec.usages):
        return ""
    groups = set(csr.spec.groups)
    if csr.spec.username == csrs.common_name(request) and csrs.NODES_GROUP in groups:
        return SELF_NODE_CLIENT_MESSAGE
    if BOOTSTRAPPERS_GROUP in groups:
        return NODE_CLIENT_MESSAGE
    return ""


@register("csrapproving")
class CSRApprovingController(Controller):
    """Approves kubelet client CSRs from bootstrappers and from the node they name."""

    name = "csrapproving"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.csrs = ctx.factory.informer(CSR)
        self.csrs.add_handlers(
            on_add=self.enqueue_obj,
            on_update=lambda _old, new: self.enqueue_obj(new),
        )

    async def sync(self, key: str) -> None:
        cached = self.csrs.store.get(key)
        if cached is None or cached.status.certificate or csrs.is_decided(cached):
            return
        message = approval_message(cached)
        if not message:
            log.debug(
                "csr left for a human",
                extra={"csr": key, "signer": cached.spec.signer_name, "user": cached.spec.username},
            )
            return
        csr = CSR()
        csr.CopyFrom(cached)
        csrs.add_condition(csr, csrs.APPROVED, REASON, message)
        await self.client.update_status(csr)  # Conflict: re-read, synced again
        log.info("csr approved", extra={"csr": key, "user": csr.spec.username})
