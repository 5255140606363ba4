"""Descriptions for the OpenAPI schemas: what `kubectl explain` prints under DESCRIPTION.

Kubernetes generates its OpenAPI descriptions from the Go types' comments.
Ours come from two places:

1. the comments above each field in protos/*.proto, read from the .proto
   sources when they are beside the generated modules (a source checkout;
   an installed wheel without them simply has fewer descriptions). The
   runtime descriptors carry no comments, hence this small reader: it
   follows `message X {` / `}` nesting and keeps the `//` lines that end
   right above a field, keyed by (message full name, field name);
2. `DESCRIPTIONS` below, our own words for the fields a reader explains
   first (a kind, its spec, replicas, selector, template, containers).
   They take precedence over the proto comments.

Worked example: for

    message DeploymentStrategy {
      // RollingUpdate or Recreate
      string type = 1;

the reader records ("tinykube.apps.DeploymentStrategy", "type") ->
"RollingUpdate or Recreate".
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parents[2] / "protos"
_MESSAGE = re.compile(r"^\s*message\s+(\w+)\s*\{")
_FIELD = re.compile(r"^\s*(?:optional\s+|repeated\s+)?[\w.<>, ]+?\s+(\w+)\s*=\s*\d+")
_PACKAGE = re.compile(r"^\s*package\s+([\w.]+)\s*;")

DESCRIPTIONS: dict[tuple[str, str], str] = {
    ("tinykube.apps.Deployment", ""): "A Deployment keeps a number of identical pods running"
    " from one template, and replaces them gradually when the template changes.",
    ("tinykube.apps.Deployment", "spec"): "What the Deployment should run: how many replicas,"
    " which pods it owns, the pod template and how to roll out a change.",
    ("tinykube.apps.DeploymentSpec", "replicas"): "How many pods of the template should run."
    " Unset means 1; 0 is a valid choice (nothing runs, the Deployment stays).",
    ("tinykube.apps.DeploymentSpec", "selector"): "The labels of the pods this Deployment owns."
    " It must match the template's labels and cannot change after creation.",
    ("tinykube.apps.DeploymentSpec", "template"): "The pod every replica is made from. A change"
    " here starts a rollout: a new ReplicaSet scaled up as the old one is scaled down.",
    ("tinykube.apps.DeploymentSpec", "strategy"): "How old pods are replaced by new ones:"
    " RollingUpdate (the default, bounded by maxSurge and maxUnavailable) or Recreate.",
    ("tinykube.apps.ReplicaSetSpec", "replicas"): "How many pods matching the selector should"
    " run. Unset means 1.",
    ("tinykube.core.PodSpec", "containers"): "The containers of the pod, at least one."
    " Each has a name unique within the pod.",
    ("tinykube.core.PodSpec", "nodeName"): "The node the pod runs on, set by the scheduler's"
    " binding (or by hand to bypass the scheduler).",
    ("tinykube.core.Container", "image"): "The container image to run, e.g. nginx:latest.",
    ("tinykube.core.Service", "spec"): "Which pods the Service sends traffic to (selector),"
    " on which ports, and how it is reached (type: ClusterIP or NodePort).",
    ("tinykube.meta.ObjectMeta", "name"): "The object's name, unique per kind within its"
    " namespace; mostly an RFC 1123 DNS subdomain.",
    ("tinykube.meta.ObjectMeta", "labels"): "Key/value pairs that selectors match: how"
    " Deployments find their pods and Services their endpoints.",
    ("tinykube.meta.ObjectMeta", "resourceVersion"): "The store's revision at the object's"
    " last write: the precondition of an update and where a watch resumes.",
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _read(path: Path, out: dict[tuple[str, str], str]) -> None:
    package = ""
    stack: list[str] = []
    comment: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if m := _PACKAGE.match(line):
            package = m.group(1)
        elif m := _MESSAGE.match(line):
            stack.append(m.group(1))
            comment = []
        elif stripped.startswith("}"):
            if stack:
                stack.pop()
            comment = []
        elif stripped.startswith("//"):
            comment.append(stripped.lstrip("/").strip())
        elif (m := _FIELD.match(line)) and stack:
            if comment:
                owner = ".".join([package, *stack])
                out[(owner, _camel(m.group(1)))] = " ".join(comment)
            comment = []
        else:
            comment = []


@functools.cache
def descriptions() -> dict[tuple[str, str], str]:
    """(message full name, JSON field name or "" for the message) -> description."""
    out: dict[tuple[str, str], str] = {}
    if PROTO_DIR.is_dir():
        for path in sorted(PROTO_DIR.glob("*.proto")):
            try:
                _read(path, out)
            except (OSError, UnicodeDecodeError):
                continue
    out.update(DESCRIPTIONS)
    return out


def describe(message: str, field: str = "") -> str:
    return descriptions().get((message, field), "")
