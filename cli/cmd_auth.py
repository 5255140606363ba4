"""`tinykube auth can-i`: may I (or someone) do this? (kubectl auth can-i).

kubectl does not guess from the roles it can read: it asks the API server,
which runs the request through the same authorizers every real request
meets (a SelfSubjectAccessReview; with `--as`, a SubjectAccessReview about
someone else, which needs the right to ask). The answer is the server's:

    $ tinykube auth can-i list pods -n team-a
    yes
    $ tinykube auth can-i list pods -n team-b
    no
    $ tinykube auth can-i get pods/web -n team-a --as bob
    yes
    $ tinykube auth can-i get /version
    yes

The exit code is the answer (0 yes, 1 no), so a script can test it; `-q`
prints nothing. As kubectl does, "no" is followed by the server's reason
when it gave one (`no - RBAC: clusterrole... "x" not found`).

RESOURCE is what `get` accepts (`pods`, `deploy`, `roles.rbac.authorization.k8s.io`,
`*`), optionally `/NAME` (kubectl's form) or with NAME as a third argument;
a word starting with `/` is a non-resource path. `--subresource log` asks
about `pods/log`.

The question travels as `client.access_review(...)`, the API's AccessReview
(Kubernetes' SelfSubjectAccessReview): the server answers for the caller,
or, with `--as`, for that user if the caller may impersonate them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import click

from apimachinery import errors, scheme
from cli import context
from cli.context import Options, echo_err, effective, namespace_option


class AccessReviewer(Protocol):
    """What can-i needs of the client: one access review, answered (allowed, reason)."""

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
    ) -> tuple[bool, str]: ...


@dataclass(frozen=True)
class Question:
    """One can-i question, resolved to what the authorizers see."""

    verb: str
    resource: str = ""  # as the server resolves it: `pods`, `deployments.apps`
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""


def parse_question(
    verb: str, target: str, name: str, subresource: str, namespace: str, all_namespaces: bool
) -> Question:
    """`get pods/web` -> pods named web in the namespace; `get /version` -> a path."""
    if target.startswith("/"):
        if name or subresource:
            raise context.CommandError("a non-resource URL takes no name or subresource")
        return Question(verb=verb, path=target)
    word, _, inline_name = target.partition("/")
    if inline_name and name:
        raise context.CommandError(f"the name is given twice: {target} and {name}")
    resource, namespaced = word, True
    if word != "*":
        try:
            info = scheme.for_resource(word)
        except errors.BadRequest:
            echo_err(f"Warning: the server doesn't have a resource type '{word}'")
        else:
            resource, namespaced = info.full_resource, info.namespaced
    return Question(
        verb=verb,
        resource=resource,
        subresource=subresource,
        namespace=namespace if namespaced and not all_namespaces else "",
        name=inline_name or name,
    )


async def ask(
    client: AccessReviewer,
    question: Question,
    user: str = "",
    groups: Sequence[str] = (),
    quiet: bool = False,
) -> int:
    """Ask the server; print yes / no (- reason); 0 when allowed, 1 when not."""
    allowed, reason = await client.access_review(
        question.verb,
        question.resource,
        subresource=question.subresource,
        namespace=question.namespace,
        name=question.name,
        path=question.path,
        user=user,
        groups=groups,
    )
    if not quiet:
        click.echo("yes" if allowed else f"no - {reason}" if reason else "no")
    return 0 if allowed else 1


@click.group("auth")
def auth() -> None:
    """Inspect authorization."""


@auth.command("can-i")
@click.argument("verb")
@click.argument("target", metavar="RESOURCE")
@click.argument("name", required=False, default="")
@namespace_option
@click.option("-A", "--all-namespaces", is_flag=True, help="Ask about every namespace at once.")
@click.option("--subresource", default="", help="A subresource, such as log or status.")
@click.option("--as", "as_user", default="", metavar="USER", help="Ask about another user.")
@click.option(
    "--as-group", "as_groups", multiple=True, metavar="GROUP", help="Groups of --as; repeatable."
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing: the exit code is the answer.")
@click.pass_obj
def can_i(
    opts: Options,
    verb: str,
    target: str,
    name: str,
    namespace: str | None,
    all_namespaces: bool,
    subresource: str,
    as_user: str,
    as_groups: tuple[str, ...],
    quiet: bool,
) -> None:
    """Check whether an action is allowed: tinykube auth can-i VERB RESOURCE[/NAME] [NAME]."""
    opts = effective(opts, namespace)
    if as_groups and not as_user:
        echo_err("error: --as-group needs --as (the user the groups belong to)")
        context.exit_with(1)
    try:
        question = parse_question(verb, target, name, subresource, opts.namespace, all_namespaces)
    except context.CommandError as err:
        echo_err(f"error: {err}")
        context.exit_with(1)
        return
    context.exit_with(
        context.run(
            opts,
            lambda client: ask(client, question, as_user, as_groups, quiet),
        )
    )
