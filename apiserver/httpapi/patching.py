"""PATCH: the three patch formats, and server-side apply, on the object's JSON form.

The request's Content-Type names the format (Kubernetes' patch types):

    application/json-patch+json             RFC 6902 operations   kubectl patch --type json
    application/merge-patch+json            RFC 7386 partial      kubectl patch --type merge
    application/strategic-merge-patch+json  lists merged by key   kubectl patch (default),
                                                                  apply, label, annotate
    application/apply-patch+yaml            server-side apply     kubectl apply --server-side

The first three are apimachinery/patch.py's pure functions. The server's
part is the loop around them, Kubernetes' patcher:

    read the object -> its JSON -> apply the patch -> decode strictly (a patch
    that adds an unknown field is a 400 naming it) -> update, guarded by the
    resourceVersion that was read

If another writer got in between the read and the write, the update is a
Conflict and the loop reads again and re-applies the patch (a patch is
meant for "the current state"), unless the patch itself names a
resourceVersion: then the Conflict is the client's answer, as Kubernetes
does. A patch cannot rename the object or move it to another namespace.

Authorization is the `patch` verb (or `patch` on `<resource>/status`),
which RBAC grants apart from `update`; RBAC objects still pass the
escalation check, and admission's warnings come back as Warning headers.
Server-side apply lives in applier.py.
"""

from __future__ import annotations

from typing import Any

from apimachinery import errors
from apimachinery import patch as patches
from apiserver.admission import warnings as admission_warnings
from apiserver.auth.escalation import confirm_no_escalation
from apiserver.httpapi import applier, body
from apiserver.httpapi.call import Call, carry_managed_fields, object_dict
from apiserver.httpapi.http import Response
from apiserver.httpapi.status import UnsupportedMediaType

PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
}
APPLY = "application/apply-patch+yaml"
ATTEMPTS = 5


def patch_type(call: Call) -> str:
    media = body.media_type(call.request)
    if media == APPLY:
        return "apply"
    found = PATCH_TYPES.get(media)
    if found is None:
        raise UnsupportedMediaType(
            "the body of the request was in an unknown format - accepted media types include: "
            + ", ".join([*PATCH_TYPES, APPLY])
        )
    return found


def _document(call: Call) -> Any:
    return patches.parse_patch(call.request.body.decode("utf-8", "replace"))


def pins_version(call: Call) -> bool:
    """Whether the request's patch names metadata.resourceVersion (a precondition)."""
    kind = patch_type(call)
    return kind != "apply" and patches.sets_resource_version(_document(call), kind)


def patched_data(call: Call, data: dict[str, Any]) -> dict[str, Any]:
    """`data` with the request's patch applied (PatchError, a 400, when it does not apply)."""
    kind = patch_type(call)
    if kind == "apply":
        raise UnsupportedMediaType("apply patches are not supported on this subresource")
    return patches.apply_patch(data, _document(call), kind)


def _decode_patched(call: Call, data: dict[str, Any], live: Any) -> Any:
    new = body.decode_object(data, call.kind)
    meta, old = new.metadata, live.metadata
    if meta.name != old.name or (call.kind.namespaced and meta.namespace != old.namespace):
        raise errors.BadRequest(
            "metadata.name and metadata.namespace cannot be changed by a patch"
            f" (the object is {old.namespace + '/' if old.namespace else ''}{old.name})"
        )
    return new


async def patch(call: Call) -> Response:
    kind = patch_type(call)
    if kind == "apply":
        return await applier.apply(call)
    user = await call.authorize("patch")
    document = _document(call)
    pinned = patches.sets_resource_version(document, kind)
    status = call.info.subresource == "status"
    dry_run = body.dry_run(call.request)
    store = call.backend.store
    with admission_warnings.collecting() as gathered:
        for _ in range(ATTEMPTS):
            live = await store.get(call.kind, call.info.namespace, call.info.name)
            before = object_dict(live)
            data = patches.apply_patch(before, document, kind)
            new = _decode_patched(call, data, live)
            carry_managed_fields(new, live)
            applier.record_update(call, before, new)
            if not pinned:
                new.metadata.resource_version = live.metadata.resource_version
            if not status:
                servicer = call.backend.servicer
                await confirm_no_escalation(store_authorizer(call), servicer.rbac, user, new)
            try:
                updated = await store.update(new, dry_run=dry_run, status=status)
            except errors.Conflict:
                if pinned:
                    raise
                continue
            call.ctx.warnings.extend(gathered)
            return call.respond(object_dict(updated))
    raise errors.Conflict.for_object(
        call.kind.full_resource, call.info.name, "too many concurrent writers"
    )


def store_authorizer(call: Call) -> Any:
    return call.backend.guard.authorizer
