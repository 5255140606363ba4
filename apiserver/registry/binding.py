"""The pods/binding subresource: how a scheduling decision is written.

The scheduler never updates a Pod; it posts a Binding naming the pod and the
node (Kubernetes' `POST /api/v1/namespaces/ns/pods/name/binding`). The
server then, in one compare-and-swap:

* refuses if the pod is already bound (Conflict: `pod web-1 is already
  assigned to node "node1"`) or is being deleted — so two schedulers, or one
  scheduler restarted mid-cycle, can never place a pod twice;
* sets `spec.nodeName` (the only way it changes: Pod spec is otherwise
  immutable), and the `PodScheduled=True` condition;
* merges the Binding's annotations into the pod's. tinykube's scheduler uses
  this to attach its placement record (which nodes it considered, which
  filter rejected each, every plugin's score) in the same write as the
  decision itself, so the record can never describe a different placement.

It validates like every other write: the target must be a node name (a DNS
subdomain), the Binding's annotations must be valid annotation keys, and the
pod's annotations after the merge must stay under the 256 KiB total -- a
Binding is not a side door around the pod's own rules. The stored pod is
limited in size like any object (encoding.MAX_STORED_BYTES).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from apimachinery import errors, scheme
from apimachinery.validation_meta import check_name, validate_annotations
from apimachinery.validation_names import is_dns1123_subdomain
from apiserver import encoding
from apiserver.registry.strategy import now
from apiserver.storage.interface import KeyNotFound, RevisionMismatch
from protos import core_pb2

if TYPE_CHECKING:
    from apiserver.registry.store import Store

_ATTEMPTS = 20


def _set_scheduled(pod: Any) -> None:
    for cond in pod.status.conditions:
        if cond.type == "PodScheduled":
            if cond.status != "True":
                cond.status = "True"
                cond.reason = ""
                cond.message = ""
                cond.last_transition_time.CopyFrom(now())
            return
    pod.status.conditions.append(
        core_pb2.PodCondition(type="PodScheduled", status="True", last_transition_time=now())
    )


async def bind(store: Store, binding: core_pb2.Binding, *, dry_run: bool = False) -> Any:
    info = scheme.for_resource("pods")
    namespace = binding.metadata.namespace or "default"
    name = binding.metadata.name
    node = binding.target.name
    causes = []
    if not name:
        causes.append(errors.required("metadata.name"))
    if not node:
        causes.append(errors.required("target.name"))
    if binding.target.kind not in ("", "Node"):
        causes.append(errors.unsupported("target.kind", binding.target.kind, ["Node"]))
    if node:
        causes.extend(check_name(node, "target.name", is_dns1123_subdomain))
    causes.extend(validate_annotations(binding.metadata.annotations, "metadata.annotations"))
    if causes:
        raise errors.Invalid.for_object("Binding", name, causes)
    resource = "pods/binding"
    for _ in range(_ATTEMPTS):
        pod, kv = await store._read(info, namespace, name)
        if pod.spec.node_name:
            raise errors.Conflict.for_object(
                resource, name, f'pod {name} is already assigned to node "{pod.spec.node_name}"'
            )
        if pod.metadata.HasField("deletion_timestamp"):
            raise errors.Conflict.for_object(resource, name, f"pod {name} is being deleted")
        if binding.metadata.uid and binding.metadata.uid != pod.metadata.uid:
            raise errors.Conflict.for_object(
                resource,
                name,
                "Precondition failed: the pod was replaced by another of the same name",
            )
        pod.spec.node_name = node
        pod.metadata.annotations.update(binding.metadata.annotations)
        merged = validate_annotations(pod.metadata.annotations, "metadata.annotations")
        if merged:
            raise errors.Invalid.for_object("Pod", name, merged)
        _set_scheduled(pod)
        if dry_run:
            return pod
        pod.metadata.resource_version = ""
        try:
            stored = await store.storage.update(
                kv.key, encoding.encode_for_storage(pod), kv.mod_revision
            )
        except RevisionMismatch:
            continue  # a status write got in between: read again and re-check
        except KeyNotFound:
            raise errors.NotFound.for_object(info.full_resource, name) from None
        pod.metadata.resource_version = str(stored.mod_revision)
        return pod
    raise errors.Conflict.for_object(resource, name, "too many concurrent writers")
