"""Escalation prevention: roles and bindings grant no more than their writer holds."""

from __future__ import annotations

import pytest

from apimachinery import errors
from apiserver.auth.authorizer import Attributes, Decision, UnionAuthorizer, UserInfo
from apiserver.auth.escalation import breakdown, confirm_no_escalation, missing_rules
from apiserver.auth.rbac import RBACIndex, decide
from tests.unit.apiserver.objects import configmap
from tests.unit.apiserver.rbac_objects import (
    cluster_role,
    cluster_role_binding,
    role,
    role_binding,
    rule,
    subject,
)

BOB = UserInfo("bob", ("system:authenticated",))


class Indexed:
    def __init__(self, index: RBACIndex) -> None:
        self.index = index

    async def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        return decide(self.index, attrs)


def bobs_index(*extra: object) -> RBACIndex:
    """bob: get,list pods in team-a, and may write roles and role bindings there."""
    index = RBACIndex()
    for obj in (
        role(
            "team-admin",
            "team-a",
            rule(["get", "list"], ["pods"]),
            rule(
                ["create", "update"],
                ["roles", "rolebindings"],
                groups=["rbac.authorization.k8s.io"],
            ),
        ),
        role_binding("bob", "team-a", "Role", "team-admin", subject("User", "bob")),
        cluster_role("cluster-admin", rule(["*"], ["*"], groups=["*"]), rule(["*"], urls=["*"])),
        cluster_role("pod-viewer", rule(["get"], ["pods"])),
        *extra,
    ):
        index.add(obj)  # type: ignore[arg-type]
    return index


async def check(index: RBACIndex, obj: object, user: UserInfo = BOB) -> None:
    chain = UnionAuthorizer([Indexed(index)])
    await confirm_no_escalation(chain, index, user, obj)  # type: ignore[arg-type]


def test_a_rule_breaks_down_into_atoms() -> None:
    atoms = breakdown(rule(["get", "list"], ["pods", "secrets"], names=["a"]))
    assert len(atoms) == 4
    assert [list(a.verbs) for a in breakdown(rule(["get"], urls=["/a", "/b"]))] == [["get"]] * 2


def test_stars_are_covered_only_by_stars() -> None:
    everything = [rule(["get", "list", "watch", "create", "update", "patch", "delete"], ["pods"])]
    assert missing_rules(everything, [rule(["*"], ["pods"])]) != []
    assert missing_rules([rule(["*"], ["*"], groups=["*"])], [rule(["get"], ["pods/log"])]) == []
    assert missing_rules([rule(["get"], ["*/log"])], [rule(["get"], ["pods/log"])]) == []
    # a rule limited to names does not cover a rule for every name
    assert missing_rules([rule(["get"], ["pods"], names=["a"])], [rule(["get"], ["pods"])]) != []
    assert missing_rules([rule(["get"], ["pods"])], [rule(["get"], ["pods"], names=["a"])]) == []
    assert missing_rules([rule(["get"], urls=["/apis/*"])], [rule(["get"], urls=["/apis/x"])]) == []


async def test_a_role_within_what_one_holds_may_be_written() -> None:
    await check(bobs_index(), role("reader", "team-a", rule(["get"], ["pods"])))


async def test_a_role_granting_more_is_forbidden_naming_what_is_missing() -> None:
    wider = role("reader", "team-a", rule(["get"], ["pods"]), rule(["get", "list"], ["secrets"]))
    with pytest.raises(errors.Forbidden) as err:
        await check(bobs_index(), wider)
    assert err.value.message == (
        'roles.rbac.authorization.k8s.io "reader" is forbidden: user "bob" '
        '(groups=["system:authenticated"]) is attempting to grant RBAC permissions not '
        'currently held:\n{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list"]}'
    )
    # what bob holds in team-a he does not hold in team-b
    with pytest.raises(errors.Forbidden):
        await check(bobs_index(), role("reader", "team-b", rule(["get"], ["pods"])))


async def test_binding_a_role_needs_its_permissions_or_bind() -> None:
    index = bobs_index()
    await check(index, role_binding("eve", "team-a", "ClusterRole", "pod-viewer",
                                    subject("User", "eve")))  # fmt: skip
    admin_here = role_binding(
        "me", "team-a", "ClusterRole", "cluster-admin", subject("User", "bob")
    )
    with pytest.raises(errors.Forbidden) as err:
        await check(index, admin_here)
    assert "is attempting to grant RBAC permissions not currently held" in err.value.message
    with pytest.raises(errors.NotFound):
        await check(index, role_binding("x", "team-a", "Role", "nowhere", subject("User", "eve")))

    may_bind = bobs_index(
        cluster_role(
            "binder",
            rule(
                ["bind"],
                ["clusterroles"],
                groups=["rbac.authorization.k8s.io"],
                names=["cluster-admin"],
            ),
        ),
        cluster_role_binding("bob-binds", "binder", subject("User", "bob")),
    )
    await check(may_bind, admin_here)


async def test_escalate_and_masters_may_write_any_role() -> None:
    star = cluster_role("all", rule(["*"], ["*"], groups=["*"]))
    with pytest.raises(errors.Forbidden):
        await check(bobs_index(), star)
    may_escalate = bobs_index(
        cluster_role(
            "escalator", rule(["escalate"], ["clusterroles"], groups=["rbac.authorization.k8s.io"])
        ),
        cluster_role_binding("bob-escalates", "escalator", subject("User", "bob")),
    )
    await check(may_escalate, star)
    await check(bobs_index(), star, UserInfo("admin", ("system:masters",)))


async def test_other_kinds_pass() -> None:
    await check(bobs_index(), configmap("settings", "team-b"))
