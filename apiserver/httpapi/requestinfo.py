"""From a URL to what it asks: Kubernetes' RequestInfo, the authorizers' view of a request.

Every authorization decision in Kubernetes is about attributes read off the
URL and the method, never the body (k8s.io/apiserver's RequestInfoFactory):

    GET    /api/v1/namespaces/default/pods                  list   pods          ns default
    GET    /api/v1/namespaces/default/pods?watch=1          watch  pods          ns default
    GET    /api/v1/namespaces/default/pods/web              get    pods/web
    GET    /api/v1/namespaces/default/pods/web/log          get    pods/log      name web
    PUT    /apis/apps/v1/namespaces/default/deployments/web/scale
                                                            update deployments/scale
    PATCH  /apis/apps/v1/namespaces/default/deployments/web patch  deployments
    POST   /api/v1/namespaces/default/pods/web/binding      create pods/binding
    DELETE /api/v1/namespaces/default/pods                  deletecollection pods
    GET    /api/v1/namespaces/kube-system                   get    namespaces    name kube-system
    GET    /version, /healthz, /openapi/v3                  get    (a non-resource path)

The segment after a namespace's name is a resource (`pods`) unless it is one
of the namespace's own subresources (`status`, `finalize`). The old
`/api/v1/watch/...` form is the watch verb on the path without `watch/`.
"""

from __future__ import annotations

from dataclasses import dataclass

from apiserver.httpapi.http import Request

API_PREFIXES = ("api", "apis")
NAMESPACE_SUBRESOURCES = ("status", "finalize")
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


@dataclass(frozen=True)
class RequestInfo:
    """What a request is about: a resource request (verb, group, resource, ...) or a path."""

    path: str
    verb: str
    is_resource: bool = False
    group: str = ""
    version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def non_resource(path: str, method: str) -> RequestInfo:
    verb = _VERBS.get(method, method.lower() if method != "GET" else "get")
    return RequestInfo(path=path, verb=verb)


def request_info(request: Request) -> RequestInfo:
    """The RequestInfo of a request (module docstring for the rules)."""
    path = request.path
    parts = [p for p in path.strip("/").split("/") if p]
    if len(parts) < 3 or parts[0] not in API_PREFIXES:
        return non_resource(path, request.method)
    if parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    else:
        if len(parts) < 4:
            return non_resource(path, request.method)
        group, version, rest = parts[1], parts[2], parts[3:]
    watch_path = False
    if rest and rest[0] == "watch":
        watch_path, rest = True, rest[1:]
    if not rest:
        return non_resource(path, request.method)
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    verb = _verb(request, bool(name), watch_path)
    return RequestInfo(
        path=path,
        verb=verb,
        is_resource=True,
        group=group,
        version=version,
        namespace=namespace,
        resource=resource,
        subresource=subresource,
        name=name,
    )


def _verb(request: Request, named: bool, watch_path: bool) -> str:
    method = request.method
    if method in ("GET", "HEAD"):
        if watch_path or request.flag("watch"):
            return "watch"
        return "get" if named else "list"
    if method == "DELETE":
        return "delete" if named else "deletecollection"
    return _VERBS.get(method, method.lower())
