"""API errors: Kubernetes' status reasons, as exceptions and as gRPC statuses.

The hierarchy (each maps to one gRPC code, as Kubernetes maps each to one HTTP
status):

    StatusError                      reason          gRPC code           HTTP
    ├── BadRequest                   BadRequest      INVALID_ARGUMENT    400
    ├── Invalid                      Invalid         INVALID_ARGUMENT    422  (carries FieldErrors)
    ├── NotFound                     NotFound        NOT_FOUND           404
    ├── AlreadyExists                AlreadyExists   ALREADY_EXISTS      409
    ├── Conflict                     Conflict        ABORTED             409
    ├── Expired                      Expired         OUT_OF_RANGE        410
    ├── RequestEntityTooLarge        RequestEntityTooLarge RESOURCE_EXHAUSTED 413
    ├── TooManyRequests              TooManyRequests RESOURCE_EXHAUSTED  429  (and a retry-after)
    ├── Unauthorized                 Unauthorized    UNAUTHENTICATED     401
    ├── Forbidden                    Forbidden       PERMISSION_DENIED   403
    ├── ServiceUnavailable           ServiceUnavailable UNAVAILABLE     503
    └── InternalError                InternalError   INTERNAL            500

On the wire an error is a `google.rpc.Status` with two details: an ErrorInfo
whose `reason` is the Kubernetes reason, and (for Invalid) a BadRequest whose
field violations carry each FieldError's path and message. `to_grpc_status`
and `from_rpc_error` are the two directions; a client therefore catches
`errors.Conflict` exactly as client-go code tests `apierrors.IsConflict(err)`.
Two reasons share RESOURCE_EXHAUSTED (a body too large, a server too busy):
the ErrorInfo's reason tells them apart, never the code. A TooManyRequests
also carries when to try again, as Kubernetes' StatusDetails.retryAfterSeconds
(and HTTP's `Retry-After` header): here a google.rpc.RetryInfo detail.

Messages keep Kubernetes' wording, so what a user reads matches the
documentation and the answers they will find for it:

    deployments.apps "web-app" not found
    Operation cannot be fulfilled on deployments.apps "web-app": the object has been
        modified; please apply your changes to the latest version and try again
    Deployment.apps "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": ...
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

DOMAIN = "tinykube.io"
MAX_REQUEST_BYTES = 3 * 1024 * 1024


@dataclass(frozen=True)
class FieldError:
    """One problem with one field, as Kubernetes' field.Error.

    `type` is the kind of problem in Kubernetes' words: "Invalid value",
    "Required value", "Unsupported value", "Duplicate value", "Too long",
    "Forbidden", "Not found".
    """

    path: str
    type: str
    detail: str = ""
    value: object = None
    has_value: bool = False

    def __str__(self) -> str:
        text = f"{self.path}: {self.type}"
        if self.has_value:
            text += f": {_render(self.value)}"
        if self.detail:
            text += f": {self.detail}"
        return text


def _render(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def invalid(path: str, value: object, detail: str) -> FieldError:
    return FieldError(path, "Invalid value", detail, value, True)


def required(path: str, detail: str = "") -> FieldError:
    return FieldError(path, "Required value", detail)


def unsupported(path: str, value: object, allowed: list[str]) -> FieldError:
    quoted = ", ".join(_render(a) for a in allowed)
    return FieldError(path, "Unsupported value", f"supported values: {quoted}", value, True)


def duplicate(path: str, value: object) -> FieldError:
    return FieldError(path, "Duplicate value", "", value, True)


def too_long(path: str, value: object, limit: int) -> FieldError:
    return FieldError(path, "Too long", f"must have at most {limit} bytes", value, False)


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError(path, "Forbidden", detail)


class StatusError(Exception):
    """Base of every API error: a reason, a gRPC code and a message."""

    reason = "Unknown"
    code = grpc.StatusCode.UNKNOWN
    retry_after_seconds = 0  # when to try again (TooManyRequests); 0: not said

    def __init__(self, message: str, causes: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.causes: list[FieldError] = list(causes or [])

    def __str__(self) -> str:
        return self.message


class BadRequest(StatusError):
    reason = "BadRequest"
    code = grpc.StatusCode.INVALID_ARGUMENT


class Invalid(StatusError):
    reason = "Invalid"
    code = grpc.StatusCode.INVALID_ARGUMENT

    @classmethod
    def for_object(cls, kind_group: str, name: str, causes: list[FieldError]) -> Invalid:
        """`Deployment.apps "web-app" is invalid: <cause>; <cause>` as Kubernetes words it."""
        text = "; ".join(str(c) for c in causes)
        if len(causes) > 1:
            text = "[" + ", ".join(str(c) for c in causes) + "]"
        return cls(f'{kind_group} "{name}" is invalid: {text}', causes)


class NotFound(StatusError):
    reason = "NotFound"
    code = grpc.StatusCode.NOT_FOUND

    @classmethod
    def for_object(cls, resource: str, name: str) -> NotFound:
        return cls(f'{resource} "{name}" not found')


class AlreadyExists(StatusError):
    reason = "AlreadyExists"
    code = grpc.StatusCode.ALREADY_EXISTS

    @classmethod
    def for_object(cls, resource: str, name: str) -> AlreadyExists:
        return cls(f'{resource} "{name}" already exists')


CONFLICT_MESSAGE = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


class Conflict(StatusError):
    reason = "Conflict"
    code = grpc.StatusCode.ABORTED

    @classmethod
    def for_object(cls, resource: str, name: str, detail: str = CONFLICT_MESSAGE) -> Conflict:
        return cls(f'Operation cannot be fulfilled on {resource} "{name}": {detail}')


class Expired(StatusError):
    reason = "Expired"
    code = grpc.StatusCode.OUT_OF_RANGE

    @classmethod
    def too_old(cls, requested: int, oldest: int) -> Expired:
        return cls(f"too old resource version: {requested} ({oldest})")


class RequestEntityTooLarge(StatusError):
    reason = "RequestEntityTooLarge"
    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    @classmethod
    def limit(cls, limit: int = MAX_REQUEST_BYTES) -> RequestEntityTooLarge:
        return cls(f"Request entity too large: limit is {limit}")


TOO_MANY_REQUESTS_MESSAGE = "Too many requests, please try again later."


class TooManyRequests(StatusError):
    """The server is busy (its in-flight limit, apiserver/inflight.py): try again after
    `retry_after_seconds`, as client-go does on a 429."""

    reason = "TooManyRequests"
    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(
        self,
        message: str = TOO_MANY_REQUESTS_MESSAGE,
        causes: list[FieldError] | None = None,
        retry_after_seconds: int = 1,
    ) -> None:
        super().__init__(message, causes)
        self.retry_after_seconds = retry_after_seconds


class Unauthorized(StatusError):
    """No identity: no client certificate of the cluster's CA, no valid bearer token."""

    reason = "Unauthorized"
    code = grpc.StatusCode.UNAUTHENTICATED

    def __init__(self, message: str = "Unauthorized", causes: list[FieldError] | None = None):
        super().__init__(message, causes)


class Forbidden(StatusError):
    reason = "Forbidden"
    code = grpc.StatusCode.PERMISSION_DENIED


class ServiceUnavailable(StatusError):
    reason = "ServiceUnavailable"
    code = grpc.StatusCode.UNAVAILABLE


class InternalError(StatusError):
    reason = "InternalError"
    code = grpc.StatusCode.INTERNAL


_BY_REASON: dict[str, type[StatusError]] = {
    c.reason: c
    for c in (
        BadRequest,
        Invalid,
        NotFound,
        AlreadyExists,
        Conflict,
        Expired,
        RequestEntityTooLarge,
        TooManyRequests,
        Unauthorized,
        Forbidden,
        ServiceUnavailable,
        InternalError,
    )
}


def to_grpc_status(err: StatusError) -> grpc.Status:
    """The rich gRPC status for an error: ErrorInfo(reason) + BadRequest(field violations)."""
    info = error_details_pb2.ErrorInfo(reason=err.reason, domain=DOMAIN)
    details = [any_pb2.Any()]
    details[0].Pack(info)
    if err.causes:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=c.path, description=str(c))
                for c in err.causes
            ]
        )
        extra = any_pb2.Any()
        extra.Pack(bad)
        details.append(extra)
    if err.retry_after_seconds:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.seconds = err.retry_after_seconds
        after = any_pb2.Any()
        after.Pack(retry)
        details.append(after)
    status = status_pb2.Status(code=err.code.value[0], message=err.message, details=details)
    return rpc_status.to_status(status)


def from_rpc_error(exc: grpc.RpcError) -> StatusError:
    """The StatusError a failed call carries; transport failures become ServiceUnavailable."""
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    message = exc.details() if hasattr(exc, "details") else str(exc)
    if status is None:
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in (message or ""):
            return RequestEntityTooLarge.limit()
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return ServiceUnavailable(message or "the server is unavailable")
        return InternalError(message or str(code))
    reason = ""
    causes: list[FieldError] = []
    retry_after = 0
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            for v in bad.field_violations:
                causes.append(FieldError(v.field, "", v.description))
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            retry_after = retry.retry_delay.seconds
    cls = _BY_REASON.get(reason, InternalError)
    err = cls(status.message, causes)
    if retry_after:
        err.retry_after_seconds = retry_after
    return err


def code_name(code: int) -> str:
    return str(code_pb2.Code.Name(code))
