"""Errors as Kubernetes Status objects: what every failed HTTP request answers.

A kube-apiserver error is never an HTML page or a bare text: it is a Status
(kind Status, apiVersion v1) whose `reason` is the machine-readable word
clients test (client-go's `apierrors.IsNotFound`), whose `code` repeats the
HTTP status, and whose `details` name the object and, for Invalid, each
field at fault:

    HTTP/1.1 422 Unprocessable Entity
    {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
     "message": "Deployment.apps \\"Bad_Name\\" is invalid: metadata.name: Invalid value: ...",
     "reason": "Invalid",
     "details": {"name": "Bad_Name", "group": "apps", "kind": "Deployment",
                 "causes": [{"reason": "FieldValueInvalid", "field": "metadata.name",
                             "message": "Invalid value: \\"Bad_Name\\": a lowercase ..."}]},
     "code": 422}

The errors themselves are apimachinery/errors.py's, shared with the gRPC
side (the same exception becomes a gRPC status there and a Status here); the
three that only HTTP has -- 405, 406, 415 -- are defined below. Each
FieldError's type ("Invalid value", "Required value") becomes the cause
reason Kubernetes uses for it (FieldValueInvalid, FieldValueRequired).
"""

from __future__ import annotations

import json
import re
from typing import Any

from apimachinery import errors
from apimachinery.scheme import KindInfo
from apiserver.httpapi.http import Response

HTTP_CODES: dict[str, int] = {
    "BadRequest": 400,
    "Unauthorized": 401,
    "Forbidden": 403,
    "NotFound": 404,
    "MethodNotAllowed": 405,
    "NotAcceptable": 406,
    "AlreadyExists": 409,
    "Conflict": 409,
    "Expired": 410,
    "Gone": 410,
    "RequestEntityTooLarge": 413,
    "UnsupportedMediaType": 415,
    "Invalid": 422,
    "TooManyRequests": 429,
    "InternalError": 500,
    "ServiceUnavailable": 503,
}

CAUSE_REASONS: dict[str, str] = {
    "Invalid value": "FieldValueInvalid",
    "Required value": "FieldValueRequired",
    "Unsupported value": "FieldValueNotSupported",
    "Duplicate value": "FieldValueDuplicate",
    "Too long": "FieldValueTooLong",
    "Too many": "FieldValueTooMany",
    "Forbidden": "FieldValueForbidden",
    "Not found": "FieldValueNotFound",
}


class MethodNotAllowed(errors.StatusError):
    reason = "MethodNotAllowed"


class NotAcceptable(errors.StatusError):
    reason = "NotAcceptable"


class UnsupportedMediaType(errors.StatusError):
    reason = "UnsupportedMediaType"


def http_code(err: errors.StatusError) -> int:
    return HTTP_CODES.get(err.reason, 500)


def _cause(cause: errors.FieldError) -> dict[str, str]:
    if cause.type.startswith("Field") and cause.type not in CAUSE_REASONS:
        # Already a cause reason (FieldManagerConflict): the detail is the whole message.
        return {"reason": cause.type, "message": cause.detail, "field": cause.path}
    text = str(cause)
    if cause.path and text.startswith(cause.path + ": "):
        text = text[len(cause.path) + 2 :]
    return {
        "reason": CAUSE_REASONS.get(cause.type, "FieldValueInvalid"),
        "message": text,
        "field": cause.path,
    }


# `Deployment.apps "web" is invalid: ...`, `pods "web" not found`: the name an error is about.
_NAMED = re.compile(r'^[\w.]+ "([^"]*)" (?:is invalid|not found|already exists)')


def status_object(
    err: errors.StatusError, info: KindInfo | None = None, name: str = ""
) -> dict[str, Any]:
    """The Status for `err`, its details naming the object the request was about (the URL's
    name, or for a create the one the error message names: kubectl prints it)."""
    if not name and (found := _NAMED.match(err.message)):
        name = found.group(1)
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if info is not None:
        if info.group:
            details["group"] = info.group
        # Kubernetes names the kind an Invalid error is about, the resource otherwise.
        details["kind"] = info.kind if err.reason == "Invalid" else info.resource
    if err.causes:
        details["causes"] = [_cause(c) for c in err.causes]
    if err.retry_after_seconds:
        details["retryAfterSeconds"] = err.retry_after_seconds
    out: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": err.message,
        "reason": err.reason,
    }
    if details and err.reason not in ("Unauthorized",):
        out["details"] = details
    out["code"] = http_code(err)
    return out


def error_response(
    err: errors.StatusError, info: KindInfo | None = None, name: str = ""
) -> Response:
    body = status_object(err, info, name)
    headers: list[tuple[str, str]] = []
    if err.reason == "Unauthorized":
        headers.append(("Www-Authenticate", 'Bearer realm="kubernetes-api"'))
    if err.retry_after_seconds:  # a 429: kubectl and client-go wait this long, then retry
        headers.append(("Retry-After", str(err.retry_after_seconds)))
    return Response(body["code"], encode(body), headers=headers)


def success(info: KindInfo, name: str, uid: str) -> dict[str, Any]:
    """What a delete that removed the object at once answers (most kinds; Pods differ)."""
    details: dict[str, Any] = {"name": name, "kind": info.resource, "uid": uid}
    if info.group:
        details["group"] = info.group
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }


def encode(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def too_large() -> Response:
    return error_response(errors.RequestEntityTooLarge.limit())
