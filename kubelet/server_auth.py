"""Who may call the kubelet's server: the rule for logs, exec, port-forward and stats.

Kubernetes' kubelet authenticates every request on :10250 and asks the API
server (SubjectAccessReview) whether the caller may use the node's
subresource: `nodes/proxy` for logs, exec and port-forward, `nodes/stats`
for the Summary. tinykube's kubelet has no API round trip for this; it
answers the same question from the client certificate its TLS front
verified, with the answer Kubernetes' default RBAC gives:

    kube-apiserver-kubelet-client   yes (the API server's own certificate,
                                    made by `tinykube pki init`)
    any member of system:masters    yes
    anyone else with a CA cert      Forbidden (user=system:node:node2, verb=create,
                                    resource=nodes, subresource=proxy)
    no certificate                  Unauthorized

The Kubelet service (server.py), its streams (streams.py) and the stats
service (stats/servicer.py) all ask here, so the rule is written once.
"""

from __future__ import annotations

import grpc.aio

from apimachinery import certs, errors
from apimachinery.tlsfront import TLSFront

APISERVER_CLIENT_USER = "kube-apiserver-kubelet-client"
MASTERS_GROUP = "system:masters"


def caller_identity(
    context: grpc.aio.ServicerContext, front: TLSFront | None
) -> certs.Identity | None:
    """Who is calling: the client certificate the TLS front verified, or None (no one)."""
    if front is None:
        return None
    _, identity = front.identity_of(context.peer() or "")
    return identity


def authorize(identity: certs.Identity, verb: str, subresource: str = "proxy") -> None:
    """Raise Forbidden unless `identity` may use this kubelet's `nodes/<subresource>`."""
    if identity.user == APISERVER_CLIENT_USER or MASTERS_GROUP in identity.groups:
        return
    raise errors.Forbidden(
        f"Forbidden (user={identity.user}, verb={verb}, resource=nodes, subresource={subresource})"
    )
