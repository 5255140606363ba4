"""Server-side apply: `kubectl apply --server-side`, field managers and their conflicts.

With client-side apply, kubectl computes a patch from the last applied
manifest it stored in an annotation. With server-side apply the client
sends the manifest itself (`PATCH`, `Content-Type: application/apply-patch+yaml`,
`?fieldManager=kubectl`), and the *server* works out what changes, knowing
who set each field (Kubernetes' managedFields):

1. The fields the manifest sets become the manager's (fieldsets.py counts
   them: scalars, map keys, list items by merge key).
2. A field it sets that another manager owns, to a different value, is a
   conflict: 409 naming each field and its owner, and nothing is written,
   unless `force=true` (`--force-conflicts`) takes the field over:

       Apply failed with 1 conflict: conflict with "kubectl-scale" using apps/v1:
       .spec.replicas

   Setting the same value is no conflict: the field then has two owners.
3. A field the manager set last time and no longer sets is removed from the
   object -- unless some other manager still owns it.
4. The rest of the object stays as it is; the manifest's fields are merged
   into it as a strategic merge patch would (lists by their merge keys).

Writes through PUT and PATCH by other managers are recorded too (operation
Update): the fields they change move to them, which is how the scale of a
Deployment by `kubectl scale` later conflicts with an apply of replicas.

Where the record lives. tinykube's ObjectMeta (protos/meta.proto) has no
managedFields field, so the record is kept in the annotation
`tinykube.io/managed-fields` (the JSON of the managedFields list) and shown
to HTTP clients as `metadata.managedFields`, the annotation hidden
(call.object_dict). What is not done: the record of status writes, apply
of the status subresource, and ownership of fields written over gRPC.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any

from apimachinery import errors
from apimachinery import patch as patches
from apiserver.admission import warnings as admission_warnings
from apiserver.auth.escalation import confirm_no_escalation
from apiserver.auth.requester import stamp_if_csr
from apiserver.httpapi import body, fieldsets
from apiserver.httpapi.call import MANAGED_FIELDS, Call, object_dict
from apiserver.httpapi.http import Response

ATTEMPTS = 5
Entry = dict[str, Any]


def entries_of(obj: Any) -> list[Entry]:
    text = obj.metadata.annotations.get(MANAGED_FIELDS, "")
    try:
        data = json.loads(text) if text else []
    except ValueError:
        return []
    return [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []


def _now() -> str:
    return datetime.fromtimestamp(int(time.time()), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _set_fields(
    entries: list[Entry],
    manager: str,
    operation: str,
    api_version: str,
    fields: set[fieldsets.Path],
) -> list[Entry]:
    """`entries` with the (manager, operation) entry replaced by `fields` (dropped if empty)."""
    out = [e for e in entries if (e.get("manager"), e.get("operation")) != (manager, operation)]
    if fields:
        out.append(
            {
                "manager": manager,
                "operation": operation,
                "apiVersion": api_version,
                "time": _now(),
                "fieldsType": "FieldsV1",
                "fieldsV1": fieldsets.to_fields_v1(fields),
            }
        )
    return out


def _owned(entry: Entry) -> set[fieldsets.Path]:
    return fieldsets.from_fields_v1(entry.get("fieldsV1") or {})


def _without(entries: list[Entry], taken: set[fieldsets.Path]) -> list[Entry]:
    """Every entry with the `taken` fields no longer its own."""
    out = []
    for e in entries:
        left = _owned(e) - taken
        if left:
            out.append({**e, "fieldsV1": fieldsets.to_fields_v1(left)})
    return out


def _conflict_error(call: Call, conflicts: list[tuple[str, fieldsets.Path]]) -> errors.Conflict:
    by_manager: dict[str, list[str]] = {}
    for manager, path in conflicts:
        by_manager.setdefault(manager, []).append(fieldsets.render(path))
    av = call.kind.api_version
    lines = []
    for manager, paths in by_manager.items():
        if len(paths) == 1:
            lines.append(f'conflict with "{manager}" using {av}: {paths[0]}')
        else:
            lines.append(f'conflicts with "{manager}" using {av}:\n- ' + "\n- ".join(paths))
    count = len(conflicts)
    text = f"Apply failed with {count} conflict{'s' if count > 1 else ''}: " + "\n".join(lines)
    causes = [
        errors.FieldError(
            fieldsets.render(p), "FieldManagerConflict", f'conflict with "{m}" using {av}'
        )
        for m, p in conflicts
    ]
    return errors.Conflict(text, causes)


def _config(call: Call) -> dict[str, Any]:
    data = body.parse_body(call.request, (body.YAML, body.JSON, "application/apply-patch+yaml"))
    config = body.object_data(data, call.kind)
    meta = config.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise errors.BadRequest("metadata: Invalid value: must be an object")
    if meta.get("name") not in (None, "", call.info.name):
        raise errors.BadRequest(
            f"the name of the object ({meta['name']}) does not match the name on the URL"
            f" ({call.info.name})"
        )
    meta["name"] = call.info.name
    if call.kind.namespaced:
        if meta.get("namespace") not in (None, "", call.info.namespace):
            raise errors.BadRequest(
                "the namespace of the provided object does not match the namespace sent on"
                " the request"
            )
        meta["namespace"] = call.info.namespace
    return config


def manager_of(call: Call) -> str:
    manager = call.request.param("fieldManager")
    if not manager:
        agent = call.request.headers.get("user-agent", "")
        manager = agent.split("/")[0] or "unknown"
    return manager[:128]


async def apply(call: Call) -> Response:
    manager = call.request.param("fieldManager")
    if not manager:
        raise errors.Invalid(
            'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required'
            " for apply patch",
            [errors.required("fieldManager", "is required for apply patch")],
        )
    if call.info.subresource:
        raise errors.BadRequest("server-side apply of a subresource is not supported")
    user = await call.authorize("patch")
    config = _config(call)
    applied = fieldsets.leaves(config)
    force, dry_run = call.request.flag("force"), body.dry_run(call.request)
    store = call.backend.store
    with admission_warnings.collecting() as gathered:
        for _ in range(ATTEMPTS):
            try:
                live = await store.get(call.kind, call.info.namespace, call.info.name)
            except errors.NotFound:
                live = None
            if live is None:
                await call.authorize("create")
                obj = body.decode_object(dict(config), call.kind)
                entries = _set_fields([], manager, "Apply", call.kind.api_version, applied)
                obj.metadata.annotations[MANAGED_FIELDS] = json.dumps(entries)
                stamp_if_csr(obj, user)
                await confirm_no_escalation(
                    call.backend.guard.authorizer, call.backend.servicer.rbac, user, obj
                )
                try:
                    created = await store.create(obj, dry_run=dry_run)
                except errors.AlreadyExists:
                    continue
                call.ctx.warnings.extend(gathered)
                return call.respond(object_dict(created), 201)
            new = _merged(call, live, config, applied, manager, force)
            await confirm_no_escalation(
                call.backend.guard.authorizer, call.backend.servicer.rbac, user, new
            )
            try:
                updated = await store.update(new, dry_run=dry_run)
            except errors.Conflict:
                continue
            call.ctx.warnings.extend(gathered)
            return call.respond(object_dict(updated))
    raise errors.Conflict.for_object(
        call.kind.full_resource, call.info.name, "too many concurrent writers"
    )


def _merged(
    call: Call,
    live: Any,
    config: dict[str, Any],
    applied: set[fieldsets.Path],
    manager: str,
    force: bool,
) -> Any:
    """The object after this apply (steps 1-4 of the module docstring); 409 on conflicts."""
    entries = entries_of(live)
    live_data = object_dict(live)
    live_data.get("metadata", {}).pop("managedFields", None)
    mine = [e for e in entries if (e.get("manager"), e.get("operation")) == (manager, "Apply")]
    others = [e for e in entries if e not in mine]
    conflicts: list[tuple[str, fieldsets.Path]] = []
    for other in others:
        for path in sorted(_owned(other) & applied):
            if not path[-1].startswith("f:"):
                continue  # a list item or set value: both want it there, no value to differ
            has, current = fieldsets.value_at(live_data, path)
            _, wanted = fieldsets.value_at(config, path)
            if has and not isinstance(wanted, dict) and current != wanted:
                conflicts.append((str(other.get("manager")), path))
    if conflicts and not force:
        raise _conflict_error(call, conflicts)
    if force:
        others = _without(others, {p for _, p in conflicts})
    previously = set().union(*(_owned(e) for e in mine)) if mine else set()
    still_owned = set().union(*(_owned(e) for e in others)) if others else set()
    merged = patches.strategic_merge(live_data, config)
    for path in sorted(previously - applied - still_owned, key=len, reverse=True):
        fieldsets.remove(merged, path)
    new = body.decode_object(merged, call.kind)
    entries = _set_fields(others, manager, "Apply", call.kind.api_version, applied)
    new.metadata.annotations[MANAGED_FIELDS] = json.dumps(entries)
    new.metadata.resource_version = live.metadata.resource_version
    return new


def record_update(call: Call, before: dict[str, Any], after: Any) -> None:
    """A PUT or PATCH by `manager_of(call)`: the fields it changed become its own (Update)."""
    entries = entries_of(after)
    if not entries:
        return  # nobody applied this object: no record is kept, as before server-side apply
    after_data = object_dict(after)
    before_fields, after_fields = fieldsets.leaves(before), fieldsets.leaves(after_data)
    changed = {
        p
        for p in after_fields
        if fieldsets.value_at(before, p) != fieldsets.value_at(after_data, p)
    }
    if not changed:
        return
    manager = manager_of(call)
    kept = _without(entries, changed | (before_fields - after_fields))
    own = next(
        (e for e in kept if (e.get("manager"), e.get("operation")) == (manager, "Update")), None
    )
    fields = changed | (_owned(own) if own else set())
    entries = _set_fields(kept, manager, "Update", call.kind.api_version, fields)
    after.metadata.annotations[MANAGED_FIELDS] = json.dumps(entries)
