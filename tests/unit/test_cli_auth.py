"""`tinykube auth can-i` (against a stubbed access review answered by the RBAC authorizer), and
the RBAC kinds' `get` columns and describe pages."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from click.testing import CliRunner

from apimachinery import scheme
from apiserver.auth.authorizer import Attributes, UserInfo
from apiserver.auth.rbac import RBACIndex, can_i, decide
from cli import cmd_auth, context, describe, printers
from cli.main import cli
from protos import rbac_pb2
from tests.unit.apiserver.rbac_objects import (
    cluster_role,
    cluster_role_binding,
    role,
    role_binding,
    rule,
    subject,
)

NOW = 1_700_000_000.0


@dataclass
class IndexedAuthorizer:
    index: RBACIndex

    async def authorize(self, attrs: Attributes) -> tuple[object, str]:
        return decide(self.index, attrs)


@dataclass
class FakeClient:
    """Answers access reviews as the server will: the caller's attributes through `can_i`."""

    index: RBACIndex
    user: UserInfo = field(default_factory=lambda: UserInfo("bob", ("system:authenticated",)))
    asked: list[dict[str, object]] = field(default_factory=list)

    async def access_review(
        self,
        verb: str,
        resource: str,
        *,
        subresource: str = "",
        namespace: str = "",
        name: str = "",
        path: str = "",
        user: str = "",
        groups: Sequence[str] = (),
    ) -> tuple[bool, str]:
        self.asked.append(
            {"verb": verb, "resource": resource, "namespace": namespace, "name": name,
             "subresource": subresource, "path": path, "user": user, "groups": list(groups)}
        )  # fmt: skip
        info = scheme.for_resource(resource) if resource else None
        who = UserInfo(user, tuple(groups)) if user else self.user
        attrs = Attributes(
            user=who,
            verb=verb,
            resource=info.resource if info else "",
            subresource=subresource,
            namespace=namespace if info is not None and info.namespaced else "",
            name=name,
            api_group=info.group if info else "",
            path=path,
        )
        return await can_i(IndexedAuthorizer(self.index), attrs)  # type: ignore[arg-type]

    async def close(self) -> None:
        pass


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    index = RBACIndex()
    for obj in (
        role("pod-reader", "team-a", rule(["get", "list"], ["pods"])),
        role_binding("read-pods", "team-a", "Role", "pod-reader", subject("User", "bob")),
        cluster_role("discovery", rule(["get"], urls=["/version"])),
        cluster_role_binding("discovery", "discovery", subject("Group", "system:authenticated")),
    ):
        index.add(obj)
    client = FakeClient(index)
    monkeypatch.setattr(context, "make_client", lambda server: client)
    return client


def can_i_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--server", "127.0.0.1:1", "auth", "can-i", *args])
    return result.exit_code, result.output


def test_can_i_agrees_with_rbac_for_the_done_when_scenario(fake: FakeClient) -> None:
    assert can_i_cli("list", "pods", "-n", "team-a") == (0, "yes\n")
    assert can_i_cli("get", "pods/web", "-n", "team-a") == (0, "yes\n")
    assert can_i_cli("get", "pods", "web", "-n", "team-a") == (0, "yes\n")
    assert can_i_cli("list", "pods", "-n", "team-b") == (1, "no\n")
    assert can_i_cli("delete", "pods", "web", "-n", "team-a") == (1, "no\n")
    assert can_i_cli("-q", "list", "pods", "-n", "team-b") == (1, "")
    assert fake.asked[1]["name"] == "web"


def test_can_i_resolves_resources_paths_and_others(fake: FakeClient) -> None:
    assert can_i_cli("get", "/version") == (0, "yes\n")
    assert fake.asked[-1]["path"] == "/version"
    assert can_i_cli("list", "deploy", "-n", "team-a") == (1, "no\n")
    assert fake.asked[-1]["resource"] == "deployments.apps"
    assert can_i_cli("list", "nodes", "-n", "team-a")[0] == 1
    assert fake.asked[-1]["namespace"] == ""  # nodes are cluster-scoped
    assert can_i_cli("get", "pods", "web", "--subresource", "log", "-n", "team-a")[0] == 1
    assert fake.asked[-1]["subresource"] == "log"
    assert can_i_cli("list", "pods", "-n", "team-a", "--as", "alice", "--as-group", "devs") == (
        1,
        "no\n",
    )
    assert fake.asked[-1]["user"] == "alice"
    assert fake.asked[-1]["groups"] == ["devs"]


def test_can_i_usage_errors(fake: FakeClient) -> None:
    code, out = can_i_cli("list", "pods", "--as-group", "devs")
    assert code == 1
    assert "--as-group needs --as" in out
    code, out = can_i_cli("get", "pods/web", "other")
    assert (code, "the name is given twice" in out) == (1, True)
    assert fake.asked == []


def test_a_reason_follows_no_as_kubectl_prints_it() -> None:
    class Refusing:
        async def access_review(self, *args: object, **kw: object) -> tuple[bool, str]:
            return False, 'RBAC: clusterrole.rbac.authorization.k8s.io "x" not found'

    question = cmd_auth.Question(verb="get", resource="pods", namespace="a")
    runner = CliRunner()
    with runner.isolation() as (out, _, _):
        code = asyncio.run(cmd_auth.ask(Refusing(), question))  # type: ignore[arg-type]
        printed = out.getvalue().decode()
    assert code == 1
    assert printed == 'no - RBAC: clusterrole.rbac.authorization.k8s.io "x" not found\n'


# ------------------------------------------------------------------ get and describe


def _aged(obj: rbac_pb2.Role | rbac_pb2.ClusterRole | rbac_pb2.RoleBinding) -> None:
    obj.metadata.creation_timestamp.seconds = int(NOW - 120)


def test_role_columns_show_when_created() -> None:
    r = role("pod-reader", "team-a", rule(["get"], ["pods"]))
    _aged(r)
    text = printers.render_table(scheme.for_resource("roles"), [r], now=NOW)
    assert text == "NAME         CREATED AT\npod-reader   2023-11-14T22:11:20Z\n"


def test_binding_columns_show_the_role_and_wide_the_subjects() -> None:
    rb = role_binding(
        "read-pods",
        "team-a",
        "ClusterRole",
        "view",
        subject("User", "bob"),
        subject("User", "eve"),
        subject("Group", "devs"),
        subject("ServiceAccount", "ci", "build"),
    )
    _aged(rb)
    info = scheme.for_resource("rolebindings")
    assert printers.render_table(info, [rb], now=NOW) == (
        "NAME        ROLE               AGE\nread-pods   ClusterRole/view   2m\n"
    )
    wide = printers.render_table(info, [rb], wide=True, now=NOW).splitlines()
    assert wide[0].split() == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    cells = re.split(r"\s{2,}", wide[1])
    assert cells == ["read-pods", "ClusterRole/view", "2m", "bob, eve", "devs", "build/ci"]


def test_describe_role_and_binding() -> None:
    r = cluster_role(
        "mixed",
        rule(["get", "list"], ["pods", "deployments"], groups=["", "apps"]),
        rule(["get"], urls=["/version"]),
    )
    lines = describe.describe(r, describe.Related(), NOW).splitlines()
    assert lines[:6] == [
        "Name:         mixed",
        "Labels:       <none>",
        "Annotations:  <none>",
        "PolicyRule:",
        "  Resources         Non-Resource URLs  Resource Names  Verbs",
        "  ---------         -----------------  --------------  -----",
    ]
    assert "  deployments.apps  []                 []              [get list]" in lines
    assert "                    [/version]         []              [get]" in lines

    rb = role_binding("read-pods", "team-a", "Role", "pod-reader", subject("User", "bob"))
    page = describe.describe(rb, describe.Related(), NOW).splitlines()
    assert page[3:] == [
        "Role:",
        "  Kind:  Role",
        "  Name:  pod-reader",
        "Subjects:",
        "  Kind  Name  Namespace",
        "  ----  ----  ---------",
        "  User  bob",
    ]
