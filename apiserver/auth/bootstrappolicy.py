"""The default policy: the ClusterRoles and bindings every cluster starts with.

Kubernetes' API server creates its bootstrap policy (plugin/pkg/auth/
authorizer/rbac/bootstrappolicy) in a post-start hook, so that the cluster's
own components can work the moment RBAC is on: the scheduler and the
controller-manager hold exactly the rights their loops use, nodes can ask
for certificates, anyone authenticated may discover the API, and
`system:masters` (the admin's kubeconfig) holds cluster-admin.

`ensure_default_policy(create)` creates each object that is missing and
leaves every existing one alone, so a role an administrator edited (or a
binding deleted and created anew) keeps the edit across restarts. Kubernetes
goes one step further for objects annotated `autoupdate: "true"`: it adds
rules the defaults gained in a newer release. tinykube only creates; the
annotation is kept so the objects read the same as Kubernetes'.

What our components do, and so what their roles grant (the verbs below are
read from controllers/*.py and scheduler/):

    system:kube-scheduler      watch pods, nodes, services; bind pods
                               (pods/binding create); record why a pod is
                               unschedulable (pods/status); write events;
                               create leases, get and update its own
                               (kube-scheduler: leader election)
    system:kube-controller-manager
                               deployment, replicaset, endpoints, namespace,
                               node IPAM, node lifecycle, taint eviction,
                               garbage collector (any kind: get, update,
                               delete), CSR approving and signing; its
                               leader election Lease (kube-controller-manager)
    system:node-proxier        the network agent (with the node's identity,
                               group system:nodes): services, endpoints, nodes
    system:node-bootstrapper   a joining node's bootstrap token: create and
                               read its CertificateSigningRequest
    ...:nodeclient             the CSR approver auto-approves a bootstrap
    ...:selfnodeclient         token's (and a node's renewal) CSR when the
                               requester holds these
    system:discovery           get /version, /api, /apis (Version and
                               ServerResources), /openapi and the health
                               probes, for everyone authenticated
    system:basic-user          ask "can I?" and "who am I?" about oneself
    system:tinykube:trace-exporter   nodes, the scheduler and the controller manager
                               send their spans (create /traces, apiserver/traces.py)
    system:tinykube:trace-reader     read the span store (get /traces); bound to no one
                               by default: an administrator grants it
    cluster-admin, admin, edit, view   the user-facing roles; view (and so edit and
                               admin) reads metrics.k8s.io pods and nodes (`kubectl
                               top`), which Kubernetes grants through metrics-server's
                               system:aggregated-metrics-reader, aggregated to view --
                               tinykube has no role aggregation, so the rule is in view
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from google.protobuf.message import Message

from apimachinery import errors, scheme
from apiserver.auth.authorizer import (
    AUTHENTICATED,
    CONTROLLER_MANAGER,
    SCHEDULER,
    SYSTEM_BOOTSTRAPPERS,
    SYSTEM_MASTERS,
    SYSTEM_NODES,
)
from protos import meta_pb2, rbac_pb2

log = logging.getLogger(__name__)

RBAC_GROUP = "rbac.authorization.k8s.io"
BOOTSTRAPPING_LABEL = "kubernetes.io/bootstrapping"
AUTOUPDATE_ANNOTATION = "rbac.authorization.kubernetes.io/autoupdate"

CORE, APPS = "", "apps"
COORDINATION = "coordination.k8s.io"
CERTIFICATES = "certificates.k8s.io"
AUTHORIZATION = "authorization.k8s.io"
METRICS = "metrics.k8s.io"

READ = ("get", "list", "watch")
WRITE = ("create", "delete", "deletecollection", "patch", "update")
EVENT_WRITE = ("create", "get", "patch", "update")

TRACE_EXPORTER = "system:tinykube:trace-exporter"
TRACE_READER = "system:tinykube:trace-reader"
NODE_CLIENT = "system:certificates.k8s.io:certificatesigningrequests:nodeclient"
SELF_NODE_CLIENT = "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient"
SIGNERS = (
    "kubernetes.io/kube-apiserver-client",
    "kubernetes.io/kube-apiserver-client-kubelet",
    "kubernetes.io/kubelet-serving",
)

CreateFn = Callable[[Message], Awaitable[object]]


def rule(
    verbs: Sequence[str],
    group: str,
    resources: Sequence[str],
    names: Sequence[str] = (),
) -> rbac_pb2.PolicyRule:
    return rbac_pb2.PolicyRule(
        verbs=verbs, api_groups=[group], resources=resources, resource_names=names
    )


def url_rule(verbs: Sequence[str], urls: Sequence[str]) -> rbac_pb2.PolicyRule:
    return rbac_pb2.PolicyRule(verbs=verbs, non_resource_urls=urls)


def _meta(name: str) -> meta_pb2.ObjectMeta:
    return meta_pb2.ObjectMeta(
        name=name,
        labels={BOOTSTRAPPING_LABEL: "rbac-defaults"},
        annotations={AUTOUPDATE_ANNOTATION: "true"},
    )


def cluster_role(name: str, rules: Sequence[rbac_pb2.PolicyRule]) -> rbac_pb2.ClusterRole:
    return rbac_pb2.ClusterRole(
        api_version=scheme.RBAC_V1, kind="ClusterRole", metadata=_meta(name), rules=rules
    )


def cluster_role_binding(
    name: str, role: str, subject_kind: str, subject_name: str
) -> rbac_pb2.ClusterRoleBinding:
    return rbac_pb2.ClusterRoleBinding(
        api_version=scheme.RBAC_V1,
        kind="ClusterRoleBinding",
        metadata=_meta(name),
        role_ref=rbac_pb2.RoleRef(api_group=RBAC_GROUP, kind="ClusterRole", name=role),
        subjects=[rbac_pb2.Subject(kind=subject_kind, api_group=RBAC_GROUP, name=subject_name)],
    )


# ------------------------------------------------------------------ the user-facing roles


def _view_rules() -> list[rbac_pb2.PolicyRule]:
    """Read everything in a namespace but Secrets (reading one may be using its credentials)."""
    return [
        rule(
            READ,
            CORE,
            [
                "configmaps",
                "endpoints",
                "events",
                "pods",
                "pods/log",
                "pods/status",
                "services",
                "services/status",
            ],
        ),
        rule(READ, CORE, ["namespaces", "namespaces/status"]),
        rule(
            READ,
            APPS,
            ["deployments", "deployments/status", "replicasets", "replicasets/status"],
        ),
        rule(READ, METRICS, ["pods", "nodes"]),
    ]


def _edit_rules() -> list[rbac_pb2.PolicyRule]:
    """view, plus writing the workloads and their configuration (Secrets included)."""
    return [
        *_view_rules(),
        rule((*READ, *WRITE), CORE, ["pods", "pods/exec", "pods/portforward", "pods/attach"]),
        rule(("create",), CORE, ["pods/eviction"]),
        rule((*READ, *WRITE), CORE, ["configmaps", "endpoints", "secrets", "services"]),
        rule((*READ, *WRITE), APPS, ["deployments", "replicasets"]),
    ]


def _admin_rules() -> list[rbac_pb2.PolicyRule]:
    """edit, plus granting access within the namespace (Roles and RoleBindings)."""
    return [
        *_edit_rules(),
        rule((*READ, *WRITE), RBAC_GROUP, ["roles", "rolebindings"]),
        rule(["create"], AUTHORIZATION, ["localsubjectaccessreviews"]),
    ]


# ------------------------------------------------------------------ the components' roles


def _scheduler_rules() -> list[rbac_pb2.PolicyRule]:
    return [
        rule(EVENT_WRITE, CORE, ["events"]),
        rule(READ, CORE, ["pods", "nodes", "services"]),
        rule(["create"], CORE, ["pods/binding"]),
        rule(["patch", "update"], CORE, ["pods/status"]),
        # leader election: its own Lease in kube-system (apimachinery/leaderelection.py)
        rule(["create"], COORDINATION, ["leases"]),
        rule(["get", "update"], COORDINATION, ["leases"], ["kube-scheduler"]),
    ]


def _controller_manager_rules() -> list[rbac_pb2.PolicyRule]:
    """One block per controller, as controllers/*.py use the API."""
    return [
        rule(EVENT_WRITE, CORE, ["events"]),
        # deployment and replicaset controllers
        rule((*READ, "update"), APPS, ["deployments"]),
        rule((*READ, "create", "update", "delete"), APPS, ["replicasets"]),
        rule(["update"], APPS, ["deployments/status", "replicasets/status"]),
        rule((*READ, "create", "update", "delete"), CORE, ["pods"]),
        # endpoints controller
        rule(READ, CORE, ["services"]),
        rule((*READ, "create", "update", "delete"), CORE, ["endpoints"]),
        # namespace controller: empties a deleted namespace of every kind, then finalizes it
        rule((*READ, "update", "delete"), CORE, ["namespaces"]),
        rule(["list", "delete"], "*", ["*"]),
        # garbage collector: any owned object may be read, have owners removed, be deleted
        rule((*READ, "patch", "update", "delete"), "*", ["*"]),
        # node IPAM, node lifecycle, taint eviction
        rule((*READ, "update"), CORE, ["nodes"]),
        rule(["update"], CORE, ["nodes/status", "pods/status"]),
        rule(READ, COORDINATION, ["leases"]),
        # leader election: its own Lease in kube-system (apimachinery/leaderelection.py)
        rule(["create"], COORDINATION, ["leases"]),
        rule(["update"], COORDINATION, ["leases"], ["kube-controller-manager"]),
        # CSR approving and signing
        rule((*READ, "update"), CERTIFICATES, ["certificatesigningrequests"]),
        rule(
            ["update"],
            CERTIFICATES,
            ["certificatesigningrequests/approval", "certificatesigningrequests/status"],
        ),
        rule(["approve", "sign"], CERTIFICATES, ["signers"], SIGNERS),
        rule(["create"], AUTHORIZATION, ["subjectaccessreviews"]),
    ]


def _node_proxier_rules() -> list[rbac_pb2.PolicyRule]:
    return [
        rule(READ, CORE, ["services", "endpoints", "nodes"]),
        rule(EVENT_WRITE, CORE, ["events"]),
    ]


def cluster_roles() -> list[rbac_pb2.ClusterRole]:
    csrs = "certificatesigningrequests"
    return [
        cluster_role("cluster-admin", [rule(["*"], "*", ["*"]), url_rule(["*"], ["*"])]),
        cluster_role("admin", _admin_rules()),
        cluster_role("edit", _edit_rules()),
        cluster_role("view", _view_rules()),
        cluster_role(SCHEDULER, _scheduler_rules()),
        cluster_role(CONTROLLER_MANAGER, _controller_manager_rules()),
        cluster_role("system:node-proxier", _node_proxier_rules()),
        cluster_role("system:node-bootstrapper", [rule(("create", *READ), CERTIFICATES, [csrs])]),
        cluster_role(NODE_CLIENT, [rule(["create"], CERTIFICATES, [f"{csrs}/nodeclient"])]),
        cluster_role(
            SELF_NODE_CLIENT, [rule(["create"], CERTIFICATES, [f"{csrs}/selfnodeclient"])]
        ),
        cluster_role(
            "system:discovery",
            [
                url_rule(
                    ["get"],
                    [
                        *("/version", "/version/", "/api", "/api/*", "/apis", "/apis/*"),
                        *("/openapi", "/openapi/*", "/healthz", "/livez", "/readyz"),
                    ],
                )
            ],
        ),
        cluster_role(TRACE_EXPORTER, [url_rule(["create"], ["/traces"])]),
        cluster_role(TRACE_READER, [url_rule(["get"], ["/traces"])]),
        cluster_role(
            "system:basic-user",
            [
                rule(
                    ["create"],
                    AUTHORIZATION,
                    ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(["create"], "authentication.k8s.io", ["selfsubjectreviews"]),
            ],
        ),
    ]


def cluster_role_bindings() -> list[rbac_pb2.ClusterRoleBinding]:
    return [
        cluster_role_binding("cluster-admin", "cluster-admin", "Group", SYSTEM_MASTERS),
        cluster_role_binding(SCHEDULER, SCHEDULER, "User", SCHEDULER),
        cluster_role_binding(CONTROLLER_MANAGER, CONTROLLER_MANAGER, "User", CONTROLLER_MANAGER),
        cluster_role_binding("system:node-proxier", "system:node-proxier", "Group", SYSTEM_NODES),
        cluster_role_binding(
            "kubeadm:kubelet-bootstrap", "system:node-bootstrapper", "Group", SYSTEM_BOOTSTRAPPERS
        ),
        cluster_role_binding(
            "kubeadm:node-autoapprove-bootstrap", NODE_CLIENT, "Group", SYSTEM_BOOTSTRAPPERS
        ),
        cluster_role_binding(
            "kubeadm:node-autoapprove-certificate-rotation",
            SELF_NODE_CLIENT,
            "Group",
            SYSTEM_NODES,
        ),
        cluster_role_binding("system:discovery", "system:discovery", "Group", AUTHENTICATED),
        cluster_role_binding(f"{TRACE_EXPORTER}:nodes", TRACE_EXPORTER, "Group", SYSTEM_NODES),
        cluster_role_binding(f"{TRACE_EXPORTER}:scheduler", TRACE_EXPORTER, "User", SCHEDULER),
        cluster_role_binding(
            f"{TRACE_EXPORTER}:controller-manager", TRACE_EXPORTER, "User", CONTROLLER_MANAGER
        ),
        cluster_role_binding("system:basic-user", "system:basic-user", "Group", AUTHENTICATED),
    ]


def default_policy() -> list[Message]:
    """Every object of the default policy, roles before the bindings that name them."""
    return [*cluster_roles(), *cluster_role_bindings()]


async def ensure_default_policy(create: CreateFn) -> list[str]:
    """Create each missing object of the default policy with `create` (e.g. `Store.create`).

    An object that exists (AlreadyExists from `create`) is left as it is, edits
    and all. Returns what was created, as `clusterroles/NAME` (empty on every
    start after the first).
    """
    created: list[str] = []
    for obj in default_policy():
        info = scheme.for_message(obj)
        name = obj.metadata.name  # type: ignore[attr-defined]
        try:
            await create(obj)
        except errors.AlreadyExists:
            continue
        created.append(f"{info.resource}/{name}")
    if created:
        log.info("default rbac policy created", extra={"objects": len(created)})
    return created
