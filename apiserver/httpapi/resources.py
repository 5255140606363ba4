"""The object verbs over HTTP: get, create, update, delete, deletecollection.

Each is the REST face of an RPC of the gRPC service (servicer.py), called
with the request's CallContext, so both protocols run the same guard,
escalation checks, strategies, validation and admission:

    GET    .../deployments/web         Get            200 the object
    POST   .../deployments             Create         201 the created object
    PUT    .../deployments/web         Update         200 the stored object
    PUT    .../deployments/web/status  UpdateStatus   200
    DELETE .../deployments/web         Delete         200 Status Success (gone at once),
                                                      202 the object (still terminating:
                                                          grace period, finalizers),
                                                      200 the object for Pods, as Kubernetes
                                                          answers them (ReturnDeletedObject)
    DELETE .../deployments             (each matching object deleted; the list of them)

What the URL says wins over the body, as in Kubernetes: a body naming
another namespace or name is a 400 (`the namespace of the provided object
does not match the namespace sent on the request`), and a body without one
takes the URL's.
"""

from __future__ import annotations

from typing import Any

from apimachinery import errors, scheme
from apiserver.httpapi import applier, body
from apiserver.httpapi.call import Call, carry_managed_fields, object_dict
from apiserver.httpapi.http import Response
from apiserver.httpapi.status import success
from protos import api_pb2

_NAMESPACE_MISMATCH = (
    "the namespace of the provided object does not match the namespace sent on the request"
)


def _in_namespace(call: Call, obj: Any) -> None:
    """Give `obj` the URL's namespace, or refuse a body that names another."""
    if not call.kind.namespaced:
        return
    meta = obj.metadata
    if meta.namespace and call.info.namespace and meta.namespace != call.info.namespace:
        raise errors.BadRequest(_NAMESPACE_MISMATCH)
    meta.namespace = meta.namespace or call.info.namespace or "default"


async def get(call: Call) -> Any:
    """The object at the URL, as a message (the router renders it, or a Table of it)."""
    request = api_pb2.GetRequest(
        resource=call.kind.resource, namespace=call.info.namespace, name=call.info.name
    )
    packed = await call.backend.servicer.Get(request, call.ctx)
    return scheme.unpack(packed)


async def create(call: Call) -> Response:
    obj = body.decode_object(body.parse_body(call.request), call.kind)
    _in_namespace(call, obj)
    request = api_pb2.CreateRequest(object=scheme.pack(obj), dry_run=body.dry_run(call.request))
    created = scheme.unpack(await call.backend.servicer.Create(request, call.ctx))
    return call.respond(object_dict(created), 201)


async def update(call: Call) -> Response:
    obj = body.decode_object(body.parse_body(call.request), call.kind)
    _in_namespace(call, obj)
    if obj.metadata.name and obj.metadata.name != call.info.name:
        raise errors.BadRequest(
            f"the name of the object ({obj.metadata.name}) does not match the name on the URL"
            f" ({call.info.name})"
        )
    obj.metadata.name = call.info.name
    try:
        live = await call.backend.store.get(call.kind, obj.metadata.namespace, obj.metadata.name)
    except errors.NotFound:
        live = None  # the servicer's Update answers NotFound, after authorization
    if live is not None:
        carry_managed_fields(obj, live)
        applier.record_update(call, object_dict(live), obj)
    request = api_pb2.UpdateRequest(object=scheme.pack(obj), dry_run=body.dry_run(call.request))
    servicer = call.backend.servicer
    if call.info.subresource == "status":
        updated = await servicer.UpdateStatus(request, call.ctx)
    else:
        updated = await servicer.Update(request, call.ctx)
    return call.respond(object_dict(scheme.unpack(updated)))


async def _still_there(call: Call, namespace: str, name: str) -> bool:
    try:
        await call.backend.store.get(call.kind, namespace, name)
    except errors.NotFound:
        return False
    return True


async def delete(call: Call) -> Response:
    options = body.delete_options(call.request)
    namespace = call.info.namespace or ("default" if call.kind.namespaced else "")
    if options.dry_run:
        await call.authorize("delete")
        obj = await call.backend.store.get(call.kind, namespace, call.info.name)
        return call.respond(object_dict(obj))
    request = api_pb2.DeleteRequest(
        resource=call.kind.resource,
        namespace=namespace,
        name=call.info.name,
        propagation_policy=options.propagation_policy,
        precondition_uid=options.precondition_uid,
        precondition_resource_version=options.precondition_resource_version,
    )
    if options.grace_period_seconds is not None:
        request.grace_period_seconds = options.grace_period_seconds
    obj = scheme.unpack(await call.backend.servicer.Delete(request, call.ctx))
    if await _still_there(call, namespace, call.info.name):
        return call.respond(object_dict(obj), 202)
    if call.kind.kind == "Pod":
        return call.respond(object_dict(obj))
    return call.respond(success(call.kind, call.info.name, obj.metadata.uid))


async def delete_collection(call: Call) -> Response:
    """Delete every object the selectors match (authorized once, as deletecollection)."""
    await call.authorize("deletecollection", "")
    options = body.delete_options(call.request)
    store = call.backend.store
    packed, _ = await store.list_packed(
        call.kind,
        call.namespace,
        call.request.param("labelSelector"),
        call.request.param("fieldSelector"),
    )
    deleted: list[dict[str, Any]] = []
    for item in packed:
        obj = scheme.unpack(item)
        if options.dry_run:
            deleted.append(object_dict(obj))
            continue
        try:
            gone = await store.delete(
                call.kind,
                obj.metadata.namespace,
                obj.metadata.name,
                grace_period_seconds=options.grace_period_seconds,
                propagation_policy=options.propagation_policy,
            )
        except errors.NotFound:
            continue  # deleted meanwhile by someone else: not ours to report
        deleted.append(object_dict(gone))
    return call.respond(
        {
            "kind": f"{call.kind.kind}List",
            "apiVersion": call.kind.api_version,
            "metadata": {},
            "items": deleted,
        }
    )
