"""Subresources: status, scale, binding, log and the streams, each a narrow door into an object.

A subresource is a second URL for part of an object, with an RBAC rule of
its own (`deployments/scale`, `pods/log`), so a role may be allowed to
scale a Deployment without being allowed to edit its pod template:

    .../deployments/web/status   GET PUT PATCH   the object; writes touch only status
    .../deployments/web/scale    GET PUT PATCH   an autoscaling/v1 Scale: spec.replicas,
    .../replicasets/web/scale                    status.replicas, status.selector
    .../pods/web/binding         POST            a Binding: the scheduler's decision
    .../pods/web/log             GET             the container's output, text/plain
    .../pods/web/exec            GET POST        upgraded to a WebSocket or SPDY (streams.py)
    .../pods/web/portforward     GET POST        the same, one stream pair per connection
    .../pods/web/attach          GET POST        405: not served (streams.py says why)

Scale is a view: GET builds a Scale from the Deployment; PUT (or PATCH,
which patches that Scale) writes its `spec.replicas` back into the
Deployment through the ordinary update, so validation and the watchers see
an ordinary change. A resourceVersion in the Scale is a precondition, as
in Kubernetes (409 Conflict when the Deployment has moved on).

pods/log is the gRPC PodLogs path (proxy.py): the API server finds the
pod's node and streams from its kubelet. `follow=true` keeps the response
open (chunked), `tailLines`, `previous` and `container` pass through;
`limitBytes` cuts the text here. `timestamps`, `sinceSeconds` and
`sinceTime` go to the kubelet, which applies them to the log file.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from apimachinery import codec, errors, labels, scheme
from apiserver.httpapi import applier, body, patching, resources, streams
from apiserver.httpapi.call import Call, object_dict
from apiserver.httpapi.http import Response
from apiserver.httpapi.status import MethodNotAllowed, encode
from apiserver.httpapi.watchstream import FIRST_EVENT_WAIT
from protos import api_pb2, core_pb2

SCALE_KINDS = ("Deployment", "ReplicaSet")
NOT_FOUND = "the server could not find the requested resource"


async def serve(call: Call) -> Response:
    sub, verb, kind = call.info.subresource, call.info.verb, call.kind.kind
    if sub == "status" and call.kind.has_status:
        if verb == "get":
            return call.respond(object_dict(await resources.get(call)))
        if verb == "update":
            return await resources.update(call)
        if verb == "patch":
            return await patching.patch(call)
    elif sub == "scale" and kind in SCALE_KINDS:
        if verb == "get":
            await call.authorize("get")
            return call.respond(scale_of(await _target(call)))
        if verb in ("update", "patch"):
            return await _write_scale(call)
    elif sub == "binding" and kind == "Pod":
        if verb == "create":
            return await _bind(call)
    elif sub == "log" and kind == "Pod":
        if verb == "get":
            return await _log(call)
    elif sub in streams.SUBRESOURCES and kind == "Pod":
        return await streams.serve(call)
    else:
        raise errors.NotFound(NOT_FOUND)
    raise MethodNotAllowed(f"the server does not allow this method on {call.info.path}")


async def _target(call: Call) -> Any:
    return await call.backend.store.get(call.kind, call.info.namespace, call.info.name)


def scale_of(obj: Any) -> dict[str, Any]:
    """The autoscaling/v1 Scale of a Deployment or ReplicaSet."""
    meta = obj.metadata
    scale_meta = {
        k: v
        for k, v in codec.to_dict(meta).items()
        if k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
    }
    replicas = obj.spec.replicas if obj.spec.HasField("replicas") else 1
    selector = str(labels.from_label_selector(obj.spec.selector))
    status: dict[str, Any] = {"replicas": int(obj.status.replicas)}
    if selector:
        status["selector"] = selector
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_meta,
        "spec": {"replicas": int(replicas)},
        "status": status,
    }


def _replicas_of(data: Any) -> tuple[int, str]:
    """(spec.replicas, metadata.resourceVersion) of a Scale's data; 422 when invalid."""
    if not isinstance(data, dict):
        raise errors.BadRequest("the body of the request must be a Scale object")
    spec = data.get("spec") or {}
    replicas = spec.get("replicas", 0) if isinstance(spec, dict) else None
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        cause = errors.invalid("spec.replicas", replicas, "must be greater than or equal to 0")
        name = str((data.get("metadata") or {}).get("name", ""))
        raise errors.Invalid.for_object("Scale.autoscaling", name, [cause])
    version = str((data.get("metadata") or {}).get("resourceVersion") or "")
    return replicas, version


async def _write_scale(call: Call) -> Response:
    await call.authorize(call.info.verb)
    obj = await _target(call)
    if call.info.verb == "patch":
        patched = patching.patched_data(call, scale_of(obj))
        replicas, version = _replicas_of(patched)
        if version == obj.metadata.resource_version and not patching.pins_version(call):
            version = ""  # a patch is applied to the current state: no precondition
    else:
        replicas, version = _replicas_of(body.parse_body(call.request))
    before = object_dict(obj)
    obj.spec.replicas = replicas
    applier.record_update(call, before, obj)
    obj.metadata.resource_version = version
    updated = await call.backend.store.update(obj, dry_run=body.dry_run(call.request))
    return call.respond(scale_of(updated))


async def _bind(call: Call) -> Response:
    data = body.parse_body(call.request)
    if not isinstance(data, dict):
        raise errors.BadRequest("the body of the request must be a Binding object")
    try:
        binding = codec.from_dict_as(data, core_pb2.Binding, source="")
    except codec.DecodeError as err:
        raise errors.BadRequest(f"strict decoding error: {err.message}") from None
    assert isinstance(binding, core_pb2.Binding)
    binding.metadata.namespace = binding.metadata.namespace or call.info.namespace
    binding.metadata.name = binding.metadata.name or call.info.name
    if binding.metadata.name != call.info.name:
        raise errors.BadRequest(
            f"the name of the object ({binding.metadata.name}) does not match the name on"
            f" the URL ({call.info.name})"
        )
    request = api_pb2.BindRequest(binding=binding, dry_run=body.dry_run(call.request))
    await call.backend.servicer.Bind(request, call.ctx)
    return call.respond(
        {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201},
        201,
    )


async def _log(call: Call) -> Response:
    req = call.request
    request = api_pb2.PodLogsRequest(
        namespace=call.info.namespace,
        name=call.info.name,
        container=req.param("container"),
        follow=req.flag("follow"),
        previous=req.flag("previous"),
    )
    tail = body.int_param(req, "tailLines")
    if tail is not None:
        request.tail_lines = tail
    limit = body.int_param(req, "limitBytes")
    since = body.int_param(req, "sinceSeconds")
    if since is not None:
        request.since_seconds = since
    request.since_time = req.param("sinceTime")
    request.timestamps = req.flag("timestamps")
    chunks = call.backend.servicer.PodLogs(request, call.ctx).__aiter__()
    first = asyncio.ensure_future(chunks.__anext__())
    done, _ = await asyncio.wait({first}, timeout=None if not request.follow else FIRST_EVENT_WAIT)
    if done and isinstance(first.exception(), errors.StatusError):
        raise first.exception()  # type: ignore[misc]
    stream = _log_text(first, chunks, limit)
    headers = call.ctx.warning_headers()
    if request.follow:
        return Response(200, content_type="text/plain", stream=stream, headers=headers)
    text = b"".join([piece async for piece in stream])
    return Response(200, text, content_type="text/plain", headers=headers)


async def _log_text(
    first: asyncio.Future[api_pb2.PodLogsChunk],
    chunks: AsyncIterator[api_pb2.PodLogsChunk],
    limit: int | None,
) -> AsyncIterator[bytes]:
    sent = 0
    pending: asyncio.Future[api_pb2.PodLogsChunk] | None = first
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(chunks.__anext__())
            try:
                chunk = await pending
            except StopAsyncIteration:
                return
            except errors.StatusError as err:
                yield encode({"error": err.message})
                return
            pending = None
            data = "".join(line if line.endswith("\n") else line + "\n" for line in chunk.lines)
            out = data.encode()
            if limit is not None:
                out = out[: max(0, limit - sent)]
            sent += len(out)
            if out:
                yield out
            if limit is not None and sent >= limit:
                return
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)


__all__ = ["scale_of", "scheme", "serve"]
