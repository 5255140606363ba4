"""Apply: make the stored object match a manifest, and say whether anything changed.

`tinykube apply -f web-app.yaml` sends each object of the file to the Apply
verb, which answers created, configured or unchanged. The rules are those a
kubectl user expects from `kubectl apply`:

* The manifest owns what it says. Everything but metadata and status is taken
  from the manifest (spec, or data for a ConfigMap, subsets for Endpoints);
  the server then defaults it exactly as on create, so an unchanged file
  defaults to an unchanged object.
* What the server chose stays. Fields the system fills in and a manifest
  leaves out — a Service's clusterIP and nodePorts, a Pod's nodeName, a
  Node's podCIDR — are carried over from the stored object.
* Labels and annotations are merged three ways, as kubectl does with its
  last-applied-configuration annotation: keys in the manifest are set, keys
  the previous apply set and this manifest no longer has are removed, and keys
  somebody else added (a controller's annotation) are left alone.
* Unchanged means no write: the update path compares the encoded result
  with what is stored and does not write when they are equal, so the
  resourceVersion does not move and watchers see nothing.

Worked example: apply the seed twice. The first call creates both objects
(the Service gets clusterIP 10.96.x.y). The second decodes the same manifest,
carries the clusterIP over, defaults the spec to the same bytes: "unchanged".
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from apimachinery import codec, errors, scheme

if TYPE_CHECKING:
    from apiserver.registry.store import Store

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_ATTEMPTS = 10
_NOT_OWNED_BY_MANIFEST = {"api_version", "kind", "metadata", "status"}


def _previous_keys(existing: Any, which: str) -> set[str]:
    text = existing.metadata.annotations.get(LAST_APPLIED, "")
    if not text:
        return set()
    try:
        applied = json.loads(text)
        return set((applied.get("metadata") or {}).get(which) or {})
    except (ValueError, AttributeError):
        return set()


def _merge_map(live: Any, manifest: Any, previous: set[str]) -> dict[str, str]:
    merged = dict(live)
    for key in previous - set(manifest):
        merged.pop(key, None)
    merged.update(manifest)
    return merged


def _carry_system_fields(desired: Any, existing: Any) -> None:
    """Spec fields the system sets and manifests leave out (Service's are in services.py)."""
    if desired.kind == "Pod" and not desired.spec.node_name:
        desired.spec.node_name = existing.spec.node_name
    if desired.kind == "Node":
        if not desired.spec.pod_cidr:
            desired.spec.pod_cidr = existing.spec.pod_cidr
            desired.spec.pod_cidrs.extend(existing.spec.pod_cidrs)
        if not desired.spec.provider_id:
            desired.spec.provider_id = existing.spec.provider_id


def merge(existing: Any, manifest: Any) -> Any:
    """The object the manifest asks for, built on the stored one."""
    desired = type(existing)()
    desired.CopyFrom(existing)
    for field in manifest.DESCRIPTOR.fields:
        if field.name in _NOT_OWNED_BY_MANIFEST:
            continue
        desired.ClearField(field.name)
        repeated = field.is_repeated
        if field.message_type is not None and not repeated:
            if manifest.HasField(field.name):
                getattr(desired, field.name).CopyFrom(getattr(manifest, field.name))
        elif repeated:
            value = getattr(manifest, field.name)
            target = getattr(desired, field.name)
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                target.update(value)
            else:
                target.extend(value)
        elif field.has_presence:
            if manifest.HasField(field.name):
                setattr(desired, field.name, getattr(manifest, field.name))
        else:
            setattr(desired, field.name, getattr(manifest, field.name))
    _carry_system_fields(desired, existing)
    meta, want = desired.metadata, manifest.metadata
    for which in ("labels", "annotations"):
        merged = _merge_map(
            getattr(existing.metadata, which), getattr(want, which), _previous_keys(existing, which)
        )
        getattr(meta, which).clear()
        getattr(meta, which).update(merged)
    if want.owner_references:
        del meta.owner_references[:]
        meta.owner_references.extend(want.owner_references)
    for finalizer in want.finalizers:
        if finalizer not in meta.finalizers:
            meta.finalizers.append(finalizer)
    meta.resource_version = want.resource_version or existing.metadata.resource_version
    return desired


def _record_manifest(manifest: Any) -> None:
    """Store the manifest as applied (without this annotation itself), as kubectl does."""
    manifest.metadata.annotations.pop(LAST_APPLIED, None)
    text = json.dumps(codec.to_dict(manifest), sort_keys=True, separators=(",", ":"))
    manifest.metadata.annotations[LAST_APPLIED] = text


async def apply(store: Store, manifest: Any, *, dry_run: bool = False) -> tuple[Any, str]:
    info = scheme.for_message(manifest)
    if not manifest.metadata.name:
        raise errors.BadRequest("metadata.name: Required value: apply needs a name")
    if info.namespaced:
        manifest.metadata.namespace = manifest.metadata.namespace or "default"
    _record_manifest(manifest)
    pinned = bool(manifest.metadata.resource_version)
    for _ in range(_ATTEMPTS):
        try:
            existing = await store.get(info, manifest.metadata.namespace, manifest.metadata.name)
        except errors.NotFound:
            fresh = type(manifest)()
            fresh.CopyFrom(manifest)
            fresh.metadata.resource_version = ""
            try:
                return await store.create(fresh, dry_run=dry_run), "created"
            except errors.AlreadyExists:
                continue  # somebody created it meanwhile: apply onto theirs
        desired = merge(existing, manifest)
        try:
            result = await store.update(desired, dry_run=dry_run)
        except errors.Conflict:
            if pinned:
                raise
            continue  # a writer got in between our read and our write: read again
        changed = result.metadata.resource_version != existing.metadata.resource_version
        if dry_run:
            changed = _encoded(result) != _encoded(existing)
        return result, "configured" if changed else "unchanged"
    raise errors.Conflict.for_object(
        info.full_resource, manifest.metadata.name, "too many concurrent writers"
    )


def _encoded(obj: Any) -> bytes:
    copy = type(obj)()
    copy.CopyFrom(obj)
    copy.metadata.resource_version = ""
    return bytes(copy.SerializeToString(deterministic=True))
