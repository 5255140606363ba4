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
            return json.loads(text)
        except ValueError as err:
            raise errors.BadRequest(f"couldn't get version/kind; json parse error: {err}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err)
        raise errors.BadRequest(f"couldn't get version/kind; yaml parse error: {problem}") from None


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


def int_param(request: Request, name: str) -> int | None:
    text = request.param(name)
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise errors.BadRequest(f'{name}: Invalid value: "{text}": must be an integer') from None


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
