"""Asking the server about yourself: SelfSubjectAccessReview and SelfSubjectReview.

`kubectl auth can-i create deployments -n dev` does not guess: it POSTs a
SelfSubjectAccessReview and prints the server's answer, which is the very
authorizer chain every request meets (system:masters, Node, RBAC):

    POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews
    {"spec": {"resourceAttributes": {"verb": "create", "group": "apps",
                                     "resource": "deployments", "namespace": "dev"}}}
    201 {... "status": {"allowed": true}}

A non-resource question (`kubectl auth can-i get /healthz`) sends
`nonResourceAttributes: {"verb": "get", "path": "/healthz"}` instead.
`kubectl auth whoami` POSTs a SelfSubjectReview and gets back who the
server thinks it is (user, uid, groups). Neither is stored: they are
"virtual" resources that exist only as questions. Creating one must itself
be allowed, which Kubernetes' system:basic-user role grants every
authenticated user (bootstrappolicy.py). Impersonation (`--as`) is not
served over HTTP yet.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from apimachinery import errors
from apiserver.auth.authorizer import Attributes, UserInfo, forbidden_message
from apiserver.httpapi import body
from apiserver.httpapi.call import Backend, json_response
from apiserver.httpapi.context import CallContext
from apiserver.httpapi.http import Request, Response
from apiserver.httpapi.requestinfo import RequestInfo
from apiserver.httpapi.status import MethodNotAllowed

AUTHORIZATION = "authorization.k8s.io"
AUTHENTICATION = "authentication.k8s.io"
Review = Callable[[Backend, CallContext, UserInfo, Request], Awaitable[Response]]


async def _may_create(backend: Backend, user: UserInfo, group: str, resource: str) -> None:
    attrs = Attributes(user, "create", resource=resource, api_group=group)
    allowed, reason = await backend.guard.allowed(attrs)
    if not allowed:
        raise errors.Forbidden(forbidden_message(attrs, reason))


def _review_body(request: Request, kind: str) -> dict[str, Any]:
    data = body.parse_body(request)
    if not isinstance(data, dict) or not isinstance(data.get("spec", {}), dict):
        raise errors.BadRequest(f"the body of the request must be a {kind} object")
    return data


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


async def access_review(
    backend: Backend, ctx: CallContext, user: UserInfo, request: Request
) -> Response:
    await _may_create(backend, user, AUTHORIZATION, "selfsubjectaccessreviews")
    data = _review_body(request, "SelfSubjectAccessReview")
    spec = data.get("spec") or {}
    res, nonres = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if isinstance(res, dict):
        attrs = Attributes(
            user,
            _text(res.get("verb")),
            resource=_text(res.get("resource")),
            subresource=_text(res.get("subresource")),
            namespace=_text(res.get("namespace")),
            name=_text(res.get("name")),
            api_group=_text(res.get("group")),
        )
    elif isinstance(nonres, dict):
        attrs = Attributes(user, _text(nonres.get("verb")), path=_text(nonres.get("path")))
    else:
        raise errors.Invalid(
            "SelfSubjectAccessReview.authorization.k8s.io is invalid: spec.resourceAttributes:"
            " Invalid value: null: exactly one of nonResourceAttributes or resourceAttributes"
            " must be specified",
            [
                errors.invalid(
                    "spec.resourceAttributes",
                    None,
                    "exactly one of nonResourceAttributes or resourceAttributes must be specified",
                )
            ],
        )
    if not attrs.verb:
        raise errors.Invalid(
            "SelfSubjectAccessReview.authorization.k8s.io is invalid: verb: Required value",
            [errors.required("spec.resourceAttributes.verb")],
        )
    allowed, reason = await backend.guard.allowed(attrs)
    status: dict[str, Any] = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    answer = {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": f"{AUTHORIZATION}/v1",
        "metadata": {},
        "spec": spec,
        "status": status,
    }
    return json_response(answer, 201)


async def whoami(backend: Backend, ctx: CallContext, user: UserInfo, request: Request) -> Response:
    await _may_create(backend, user, AUTHENTICATION, "selfsubjectreviews")
    info: dict[str, Any] = {"username": user.name, "groups": list(user.groups)}
    if user.uid:
        info["uid"] = user.uid
    answer = {
        "kind": "SelfSubjectReview",
        "apiVersion": f"{AUTHENTICATION}/v1",
        "metadata": {},
        "status": {"userInfo": info},
    }
    return json_response(answer, 201)


_REVIEWS: dict[tuple[str, str], Review] = {
    (AUTHORIZATION, "selfsubjectaccessreviews"): access_review,
    (AUTHENTICATION, "selfsubjectreviews"): whoami,
}


def handler_for(info: RequestInfo) -> Review | None:
    """The review a request asks for (only POST to the collection), or None."""
    review = _REVIEWS.get((info.group, info.resource))
    if review is None or info.version != "v1":
        return None
    if info.verb != "create" or info.name:
        return _refuse
    return review


async def _refuse(backend: Backend, ctx: CallContext, user: UserInfo, req: Request) -> Response:
    raise MethodNotAllowed("the server does not allow this method on the requested resource")
