"""The RBAC authorizer's matching: subjects, namespaces, verbs, groups, resources, names, URLs."""

from __future__ import annotations

import pytest

from apiserver.auth.authorizer import Attributes, Decision, UnionAuthorizer, UserInfo
from apiserver.auth.rbac import RBACIndex, can_i, decide
from tests.unit.apiserver.rbac_objects import (
    cluster_role,
    cluster_role_binding,
    role,
    role_binding,
    rule,
    subject,
)

BOB = UserInfo("bob", ("system:authenticated",))
ALICE = UserInfo("alice", ("devs", "system:authenticated"))
CI = UserInfo("system:serviceaccount:build:ci", ("system:serviceaccounts",))


def allowed(index: RBACIndex, user: UserInfo, verb: str, resource: str = "", **kw: str) -> bool:
    attrs = Attributes(user=user, verb=verb, resource=resource, **kw)
    decision, _ = decide(index, attrs)
    assert decision is not Decision.DENY  # RBAC never denies
    return decision is Decision.ALLOW


def index_of(*objs: object) -> RBACIndex:
    index = RBACIndex()
    for obj in objs:
        index.add(obj)  # type: ignore[arg-type]
    return index


def test_the_done_when_scenario_get_list_pods_in_one_namespace() -> None:
    """bob, bound to a Role allowing get,list pods in team-a: allowed there, nowhere else."""
    index = index_of(
        role("pod-reader", "team-a", rule(["get", "list"], ["pods"])),
        role_binding("read-pods", "team-a", "Role", "pod-reader", subject("User", "bob")),
    )
    assert allowed(index, BOB, "list", "pods", namespace="team-a")
    assert allowed(index, BOB, "get", "pods", namespace="team-a", name="web")
    assert not allowed(index, BOB, "list", "pods", namespace="team-b")
    assert not allowed(index, BOB, "list", "pods")  # across all namespaces
    assert not allowed(index, BOB, "delete", "pods", namespace="team-a", name="web")
    assert not allowed(index, BOB, "list", "secrets", namespace="team-a")
    assert not allowed(index, ALICE, "list", "pods", namespace="team-a")


async def test_can_i_agrees_with_the_authorizer_chain() -> None:
    index = index_of(
        role("pod-reader", "team-a", rule(["get", "list"], ["pods"])),
        role_binding("read-pods", "team-a", "Role", "pod-reader", subject("User", "bob")),
    )

    class Indexed:
        async def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
            return decide(index, attrs)

    chain = UnionAuthorizer([Indexed()])
    yes, reason = await can_i(chain, Attributes(BOB, "list", "pods", namespace="team-a"))
    assert yes
    assert reason == (
        'RBAC: allowed by RoleBinding "read-pods/team-a" of Role "pod-reader" to User "bob"'
    )
    no, _ = await can_i(chain, Attributes(BOB, "list", "pods", namespace="team-b"))
    assert not no


def test_groups_and_service_accounts_are_subjects() -> None:
    index = index_of(
        cluster_role("view", rule(["get", "list", "watch"], ["pods", "services"])),
        cluster_role_binding("devs-view", "view", subject("Group", "devs")),
        role_binding("ci", "build", "ClusterRole", "view", subject("ServiceAccount", "ci")),
    )
    assert allowed(index, ALICE, "watch", "services", namespace="anywhere")
    assert not allowed(index, BOB, "watch", "services", namespace="anywhere")
    # the RoleBinding's ServiceAccount without a namespace is the binding's own
    assert allowed(index, CI, "list", "pods", namespace="build")
    assert not allowed(index, CI, "list", "pods", namespace="default")
    other = UserInfo("system:serviceaccount:other:ci")
    assert not allowed(index, other, "list", "pods", namespace="build")


def test_role_binding_to_a_cluster_role_grants_in_its_namespace_only() -> None:
    index = index_of(
        cluster_role("edit", rule(["*"], ["deployments"], groups=["apps"])),
        role_binding("bob-edit", "team-a", "ClusterRole", "edit", subject("User", "bob")),
    )
    assert allowed(index, BOB, "update", "deployments", namespace="team-a", api_group="apps")
    assert not allowed(index, BOB, "update", "deployments", namespace="team-b", api_group="apps")
    # the group matters: "deployments" of the core group is no rule's
    assert not allowed(index, BOB, "update", "deployments", namespace="team-a")


def test_a_role_binding_cannot_reach_a_role_of_another_namespace() -> None:
    index = index_of(
        role("pod-reader", "team-b", rule(["get"], ["pods"])),
        role_binding("read-pods", "team-a", "Role", "pod-reader", subject("User", "bob")),
    )
    assert not allowed(index, BOB, "get", "pods", namespace="team-a", name="x")
    decision, reason = decide(index, Attributes(BOB, "get", "pods", namespace="team-a"))
    assert decision is Decision.NO_OPINION
    assert reason == (
        'RBAC: role.rbac.authorization.k8s.io "pod-reader" not found in namespace "team-a"'
    )


def test_cluster_role_bindings_grant_everywhere_and_on_cluster_scoped_things() -> None:
    index = index_of(
        cluster_role("node-reader", rule(["get", "list"], ["nodes", "pods"])),
        cluster_role_binding("bob-nodes", "node-reader", subject("User", "bob")),
    )
    assert allowed(index, BOB, "list", "nodes")
    assert allowed(index, BOB, "list", "pods")  # all namespaces
    assert allowed(index, BOB, "list", "pods", namespace="kube-system")


def test_stars_match_every_verb_group_and_resource() -> None:
    index = index_of(
        cluster_role("cluster-admin", rule(["*"], ["*"], groups=["*"]), rule(["*"], urls=["*"])),
        cluster_role_binding("admins", "cluster-admin", subject("Group", "devs")),
    )
    assert allowed(index, ALICE, "delete", "nodes", name="node1")
    assert allowed(index, ALICE, "update", "pods", namespace="x", subresource="status")
    assert allowed(index, ALICE, "create", "leases", api_group="coordination.k8s.io")
    assert allowed(index, ALICE, "get", path="/version")
    # a requested "*" (can-i '*' '*') is granted only by a rule that says "*"
    assert allowed(index, ALICE, "*", "*", api_group="*")


def test_subresources_are_resources_of_their_own() -> None:
    index = index_of(
        cluster_role(
            "logs",
            rule(["get"], ["pods"]),
            rule(["get"], ["pods/log"]),
            rule(["update"], ["*/status"], groups=["*"]),
        ),
        cluster_role_binding("bob-logs", "logs", subject("User", "bob")),
    )
    assert allowed(index, BOB, "get", "pods", namespace="a", name="web", subresource="log")
    assert not allowed(index, BOB, "create", "pods", namespace="a", name="web", subresource="exec")
    assert allowed(index, BOB, "update", "nodes", name="n1", subresource="status")
    assert not allowed(index, BOB, "update", "nodes", name="n1")


def test_resource_names_match_only_requests_that_name_one() -> None:
    index = index_of(
        role(
            "one-cm",
            "a",
            rule(["get", "list", "watch", "create", "update"], ["configmaps"], names=["settings"]),
        ),
        role_binding("bob-cm", "a", "Role", "one-cm", subject("User", "bob")),
    )
    assert allowed(index, BOB, "get", "configmaps", namespace="a", name="settings")
    assert allowed(index, BOB, "update", "configmaps", namespace="a", name="settings")
    assert not allowed(index, BOB, "get", "configmaps", namespace="a", name="other")
    # list, watch and create carry no name, even when the request shows one (create's)
    assert not allowed(index, BOB, "list", "configmaps", namespace="a")
    assert not allowed(index, BOB, "watch", "configmaps", namespace="a")
    assert not allowed(index, BOB, "create", "configmaps", namespace="a", name="settings")


@pytest.mark.parametrize(
    ("path", "granted"),
    [("/version", True), ("/apis/apps", True), ("/apis", True), ("/api", False), ("/x", False)],
)
def test_non_resource_urls_match_exactly_or_by_prefix_star(path: str, granted: bool) -> None:
    index = index_of(
        cluster_role("discovery", rule(["get"], urls=["/version", "/apis", "/apis/*"])),
        cluster_role_binding("all", "discovery", subject("Group", "system:authenticated")),
    )
    assert allowed(index, BOB, "get", path=path) is granted
    assert not allowed(index, BOB, "post", path="/version")


def test_removing_objects_revokes() -> None:
    rb = role_binding("read-pods", "team-a", "ClusterRole", "view", subject("User", "bob"))
    view = cluster_role("view", rule(["get"], ["pods"]))
    index = index_of(view, rb)
    assert allowed(index, BOB, "get", "pods", namespace="team-a", name="x")
    index.remove(rb)
    assert not allowed(index, BOB, "get", "pods", namespace="team-a", name="x")
    assert index.role_bindings == {}
    index.add(rb)
    index.remove(view)
    assert not allowed(index, BOB, "get", "pods", namespace="team-a", name="x")
