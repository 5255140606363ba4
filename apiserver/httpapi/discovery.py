"""Discovery: how kubectl learns which resources exist before it asks for any of them.

`kubectl get deploy` does not know that "deploy" means deployments in the
group apps, version v1, namespaced: it asks the server (and caches the
answer under ~/.kube/cache/discovery). The documents, as kube-apiserver
serves them:

    /api                 APIVersions     the core group's versions: ["v1"]
    /apis                APIGroupList    every other group and its preferred version
    /apis/apps           APIGroup        one group
    /api/v1, /apis/apps/v1
                         APIResourceList each resource of a group version: name,
                                         singularName, namespaced, kind, verbs,
                                         shortNames; and each subresource as
                                         "<resource>/<sub>" (pods/log, deployments/scale,
                                         pods/eviction: a policy/v1 Eviction)

kubectl 1.27+ first asks /api and /apis for the *aggregated* form
(`Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`,
everything in two requests), but lists plain `application/json` as its last
choice; a server that answers with plain JSON (Content-Type
application/json) is taken to serve the legacy documents, and the client
then fetches each group version's APIResourceList. That is what tinykube
does: one form to keep right, and every client version understands it.

The table comes from apimachinery/scheme.py, so a kind added there is
discovered without a change here. Two groups are served without a kind in
the scheme, because kubectl needs them: authorization.k8s.io
(selfsubjectaccessreviews: `kubectl auth can-i`) and authentication.k8s.io
(selfsubjectreviews: `kubectl auth whoami`), see reviews.py.
"""

from __future__ import annotations

import platform
import sys
from typing import Any

from apimachinery import scheme
from apimachinery.scheme import KindInfo
from apiserver.httpapi.metrics import DISCOVERY as METRICS_RESOURCES

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
SUBRESOURCE_VERBS = ["get", "patch", "update"]
# Served versions of Kubernetes this API follows (kubectl warns past one minor of skew).
KUBE_MAJOR, KUBE_MINOR = "1", "32"
# group version -> (resource, kind, namespaced, verbs) served outside the scheme.
REVIEWS: dict[str, list[tuple[str, str, bool, list[str]]]] = {
    "authorization.k8s.io/v1": [
        ("selfsubjectaccessreviews", "SelfSubjectAccessReview", False, ["create"]),
    ],
    "authentication.k8s.io/v1": [
        ("selfsubjectreviews", "SelfSubjectReview", False, ["create"]),
    ],
    **METRICS_RESOURCES,  # metrics.k8s.io, served by httpapi/metrics.py (kubectl top looks here)
}
SCALE_KINDS = ("Deployment", "ReplicaSet")
# `kubectl get all` is the "all" category: the workloads and their Services.
CATEGORY_ALL = ("Pod", "Service", "Deployment", "ReplicaSet")


def version_info(tinykube_version: str) -> dict[str, str]:
    """/version: Kubernetes' version.Info, naming tinykube in the build metadata."""
    return {
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": f"v{KUBE_MAJOR}.{KUBE_MINOR}.0+tinykube-{tinykube_version}",
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": f"python{platform.python_version()}",
        "compiler": platform.python_implementation().lower(),
        "platform": f"{sys.platform}/{platform.machine()}",
    }


def group_versions() -> list[str]:
    """Every group version served, core first, in the scheme's order."""
    seen: list[str] = []
    for info in scheme.KINDS:
        if info.api_version not in seen:
            seen.append(info.api_version)
    seen.extend(gv for gv in REVIEWS if gv not in seen)
    return seen


def api_versions() -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}


def _group(name: str) -> dict[str, Any]:
    versions = [
        {"groupVersion": gv, "version": gv.rpartition("/")[2]}
        for gv in group_versions()
        if gv.rpartition("/")[0] == name
    ]
    return {"name": name, "versions": versions, "preferredVersion": versions[0]}


def api_group(name: str) -> dict[str, Any] | None:
    if not any(gv.rpartition("/")[0] == name for gv in group_versions() if "/" in gv):
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name)}


def api_group_list() -> dict[str, Any]:
    names: list[str] = []
    for gv in group_versions():
        group = gv.rpartition("/")[0]
        if group and group not in names:
            names.append(group)
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(n) for n in names]}


def _resource(info: KindInfo) -> list[dict[str, Any]]:
    main: dict[str, Any] = {
        "name": info.resource,
        "singularName": info.singular,
        "namespaced": info.namespaced,
        "kind": info.kind,
        "verbs": VERBS,
    }
    if info.short_names:
        main["shortNames"] = list(info.short_names)
    if info.kind in CATEGORY_ALL:
        main["categories"] = ["all"]
    out = [main]

    def sub(name: str, kind: str, verbs: list[str], **extra: str) -> None:
        entry = {"name": f"{info.resource}/{name}", "singularName": "", **extra}
        out.append({**entry, "namespaced": info.namespaced, "kind": kind, "verbs": verbs})

    if info.has_status:
        sub("status", info.kind, SUBRESOURCE_VERBS)
    if info.kind in SCALE_KINDS:
        sub("scale", "Scale", SUBRESOURCE_VERBS, group="autoscaling", version="v1")
    if info.kind == "Pod":
        sub("binding", "Binding", ["create"])
        # kubectl drain evicts only when it finds this entry, with its group and version
        sub("eviction", "Eviction", ["create"], group="policy", version="v1")
        sub("log", "Pod", ["get"])
    return out


def resource_list(group_version: str) -> dict[str, Any] | None:
    """The APIResourceList of one group version, or None when it is not served."""
    resources: list[dict[str, Any]] = []
    for info in scheme.KINDS:
        if info.api_version == group_version:
            resources.extend(_resource(info))
    for name, kind, namespaced, verbs in REVIEWS.get(group_version, []):
        resources.append(
            {
                "name": name,
                "singularName": kind.lower(),
                "namespaced": namespaced,
                "kind": kind,
                "verbs": verbs,
            }
        )
    if not resources:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }


def kind_for(group: str, version: str, resource: str) -> KindInfo | None:
    """The scheme's kind served at a group, version and resource (plural), if any."""
    api_version = f"{group}/{version}" if group else version
    for info in scheme.KINDS:
        if info.api_version == api_version and info.resource == resource:
            return info
    return None
