"""Request bodies and options: JSON or YAML in, typed messages and DeleteOptions out.

A create or update body is one object in Kubernetes' JSON (or YAML, which
kubectl never sends but curl users do). Decoding follows the API server's
rules:

* The media type must be one we read (`application/json`, `application/yaml`,
  or Kubernetes' protobuf, which kubeproto.py turns into the JSON it means,
  so that every later rule is the same for it): anything else is 415
  UnsupportedMediaType.
* The body's apiVersion and kind may be left out -- the URL says what it
  must be -- but if given they must match the URL's:
  `the API version in the data (v1) does not match the expected API version (apps/v1)`.
* Bodies are bounded beyond their 3 MiB: at most 100 levels deep, and a YAML
  body's aliases may not expand it past a million nodes (the "billion laughs":
  `b: &b [*a,*a,...]` nine times over is 400 `yaml: document contains excessive
  aliasing`, as Kubernetes' YAML decoder answers it).
* Decoding is strict, as `fieldValidation=Strict` (kubectl's default): an
  unknown field is a 400 naming its path, `strict decoding error: unknown
  field "spec.replicass"`. Only metadata.managedFields and selfLink, which
  clients round-trip from other servers' answers, are dropped silently.

Options travel as query parameters (`?dryRun=All&fieldManager=kubectl`)
and, for DELETE, as a DeleteOptions body too (client-go sends both forms);
`delete_options` reads either.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from apimachinery import codec, errors
from apimachinery.scheme import KindInfo
from apiserver.httpapi import kubeproto
from apiserver.httpapi.http import Request
from apiserver.httpapi.status import UnsupportedMediaType

JSON = "application/json"
YAML = "application/yaml"
READABLE = (JSON, YAML, "application/x-yaml", "text/yaml", kubeproto.PROTOBUF)
_DROPPED_METADATA = ("managedFields", "selfLink")
# A Kubernetes object nests about 15 levels deep; a body nesting past this is no object,
# and refusing it here keeps every later walk over it (strict decoding, patches) safe.
MAX_DEPTH = 100
# YAML aliases may repeat a part, but not blow up a small text into millions of nodes.
MAX_EXPANDED = 1_000_000
_TOO_DEEP = f"couldn't get version/kind; {{format}} parse error: exceeded max depth ({MAX_DEPTH})"


def media_type(request: Request) -> str:
    return request.headers.get("content-type", JSON).split(";")[0].strip().lower() or JSON


def parse_body(request: Request, allowed: tuple[str, ...] = READABLE) -> Any:
    """The body's data (JSON or YAML, as its Content-Type says); 400/415 when unreadable."""
    kind = media_type(request)
    if kind not in allowed:
        accepted = ", ".join(a for a in allowed if a not in ("application/x-yaml", "text/yaml"))
        raise UnsupportedMediaType(
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{accepted}"
        )
    if kind == kubeproto.PROTOBUF:
        return kubeproto.to_data(request.body)  # the JSON the typed client meant
    text = request.body.decode("utf-8", "replace")
    if not text.strip():
        raise errors.BadRequest("the body of the request was empty")
    if kind == JSON or text.lstrip().startswith(("{", "[")):
        try:
            data = json.loads(text)
        except ValueError as err:
            raise errors.BadRequest(f"couldn't get version/kind; json parse error: {err}") from None
        except RecursionError:
            raise errors.BadRequest(_TOO_DEEP.format(format="json")) from None
        _shape(data, "json")
        return data
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err)
        raise errors.BadRequest(f"couldn't get version/kind; yaml parse error: {problem}") from None
    except RecursionError:
        raise errors.BadRequest(_TOO_DEEP.format(format="yaml")) from None
    size, distinct = _shape(data, "yaml")
    if size > MAX_EXPANDED and size > 4 * distinct:
        raise errors.BadRequest("yaml: document contains excessive aliasing")
    return data


def _shape(data: Any, form: str) -> tuple[int, int]:
    """(nodes with every alias expanded, distinct nodes) of parsed data.

    Walked without recursion, each shared node (a YAML alias) once. An alias inside
    its own anchor (`a: &a [*a]`) is refused, as is nesting past MAX_DEPTH."""
    memo: dict[int, tuple[int, int]] = {}
    open_: set[int] = set()
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        node, done = stack.pop()
        if not isinstance(node, (dict, list)) or (not done and id(node) in memo):
            continue
        kids = list(node.values()) if isinstance(node, dict) else node
        nested = [k for k in kids if isinstance(k, (dict, list))]
        if not done:
            if any(id(k) in open_ for k in nested):
                raise errors.BadRequest(f"{form}: the document contains itself (a cyclic alias)")
            open_.add(id(node))
            stack.append((node, True))
            stack.extend((k, False) for k in nested if id(k) not in memo)
            continue
        open_.discard(id(node))
        depth = 1 + max((memo[id(k)][0] for k in nested), default=0)
        if depth > MAX_DEPTH:
            raise errors.BadRequest(_TOO_DEEP.format(format=form))
        size = 1 + len(kids) - len(nested) + sum(memo[id(k)][1] for k in nested)
        memo[id(node)] = (depth, size)
    return memo.get(id(data), (0, 1))[1], len(memo) or 1


def object_data(data: Any, info: KindInfo) -> dict[str, Any]:
    """The body's object with apiVersion and kind defaulted from, and checked against, the URL."""
    if not isinstance(data, dict):
        raise errors.BadRequest(
            f"the body of the request must be a {info.kind} object, not {type(data).__name__}"
        )
    api_version = data.setdefault("apiVersion", info.api_version)
    kind = data.setdefault("kind", info.kind)
    if api_version != info.api_version:
        raise errors.BadRequest(
            f"the API version in the data ({api_version}) does not match the expected API "
            f"version ({info.api_version})"
        )
    if kind != info.kind:
        raise errors.BadRequest(
            f"the kind in the data ({kind}) does not match the expected kind ({info.kind})"
        )
    meta = data.get("metadata")
    if isinstance(meta, dict):
        for key in _DROPPED_METADATA:
            meta.pop(key, None)
    return data


def decode_object(data: Any, info: KindInfo) -> Any:
    """A typed message from the body's data (object_data's checks, then strict decoding)."""
    checked = object_data(data, info)
    try:
        return codec.from_dict(checked, source="")
    except codec.DecodeError as err:
        raise errors.BadRequest(f"strict decoding error: {err.message}") from None


def dry_run(request: Request) -> bool:
    """`?dryRun=All`: validate and admit, store nothing."""
    values = request.query.get("dryRun", [])
    for value in values:
        if value != "All":
            raise errors.BadRequest(
                f'dryRun: Unsupported value: "{value}": supported values: "All"'
            )
    return bool(values)


INT64 = range(-(2**63), 2**63)


def int_param(request: Request, name: str) -> int | None:
    """A query parameter that is an int64 in Kubernetes (limit, timeoutSeconds, tailLines...):
    anything else is a 400 naming it, never a 500 from the field it would be written to."""
    text = request.param(name)
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise errors.BadRequest(f'{name}: Invalid value: "{text}": must be an integer') from None
    if value not in INT64:
        raise errors.BadRequest(f'{name}: Invalid value: "{text}": must be a 64-bit integer')
    return value


@dataclass(frozen=True)
class DeleteOptions:
    grace_period_seconds: int | None = None
    propagation_policy: str = ""
    precondition_uid: str = ""
    precondition_resource_version: str = ""
    dry_run: bool = False


def delete_options(request: Request) -> DeleteOptions:
    """DeleteOptions from the query and, when there is one, the body (the body wins)."""
    policy = request.param("propagationPolicy")
    if request.flag("orphanDependents"):
        policy = policy or "Orphan"
    query = DeleteOptions(
        grace_period_seconds=int_param(request, "gracePeriodSeconds"),
        propagation_policy=policy,
        dry_run=dry_run(request),
    )
    if not request.body.strip():
        return query
    data = parse_body(request)
    if not isinstance(data, dict):
        raise errors.BadRequest("the body of a delete must be a DeleteOptions object")
    return options_from(data, query)


def options_from(data: dict[str, Any], base: DeleteOptions) -> DeleteOptions:
    """A DeleteOptions object's data over `base` (what the query said): what it sets wins.
    Also the deleteOptions of an Eviction (eviction.py)."""
    grace = base.grace_period_seconds
    if data.get("gracePeriodSeconds") is not None:
        grace = _as_int(data["gracePeriodSeconds"], "gracePeriodSeconds")
    policy = data.get("propagationPolicy") or base.propagation_policy
    if not isinstance(policy, str):
        raise errors.BadRequest(f"propagationPolicy: Invalid value: {json.dumps(policy)}")
    if data.get("orphanDependents") is True and not policy:
        policy = "Orphan"
    uid = version = ""
    pre = data.get("preconditions") or {}
    if isinstance(pre, dict):
        uid = str(pre.get("uid") or "")
        version = str(pre.get("resourceVersion") or "")
    dry = data.get("dryRun") or []
    if dry and dry != ["All"]:
        raise errors.BadRequest(f'dryRun: Unsupported value: {dry!r}: supported values: "All"')
    return DeleteOptions(grace, policy, uid, version, base.dry_run or bool(dry))


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.BadRequest(f"{name}: Invalid value: {json.dumps(value)}: must be an integer")
    return value
