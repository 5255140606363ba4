"""pods/eviction: a pod deleted on request, the way `kubectl drain` asks for it.

An eviction is a delete that asks first. `kubectl drain NODE` cordons the node
(spec.unschedulable, an ordinary patch), lists the pods bound to it, and for
each one POSTs a policy/v1 Eviction to its `eviction` subresource:

    POST /api/v1/namespaces/default/pods/web-7d4b9/eviction      create pods/eviction
    {"apiVersion": "policy/v1", "kind": "Eviction",
     "metadata": {"name": "web-7d4b9", "namespace": "default"},
     "deleteOptions": {"gracePeriodSeconds": 30}}
      -> 201 {"kind": "Status", "status": "Success", "code": 201}

then waits until each pod is gone. kube-apiserver's handler
(pkg/registry/core/pod/storage/eviction.go) does, and so does this one:

1. check the Eviction: its name must be the URL's (`name in URL does not match
   name in Eviction object`), its deleteOptions valid;
2. read the pod (404 if it is not there);
3. ask the PodDisruptionBudgets that select the pod whether one more disruption
   is allowed; if not, 429 TooManyRequests, and kubectl drain retries;
4. mark the pod: a `DisruptionTarget` condition (reason EvictionByEvictionAPI),
   so the pod's owner and the kubelet can tell an eviction from a crash;
5. delete it with the Eviction's deleteOptions (grace period, preconditions,
   propagation policy), gracefully as any pod delete: its kubelet stops it.

tinykube has no PodDisruptionBudget kind (no policy/v1 group beside this
subresource), so step 3 always allows, as Kubernetes does for a pod no budget
selects. The authorization is `create` on `pods/eviction`, not `delete` on
pods: the eviction is the server deleting on the caller's behalf, which lets a
role drain nodes without the power to delete pods outright.

The body may be JSON, YAML or protobuf (kubectl's typed client sends protobuf;
kubeproto.py reads it into the same JSON). It is decoded strictly, as any
object: an unknown field is a 400 naming it. policy/v1beta1 Evictions are
accepted too, as Kubernetes still does.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from apimachinery import errors
from apiserver.httpapi import body
from apiserver.httpapi.call import Call
from apiserver.httpapi.http import Response
from apiserver.httpapi.status import MethodNotAllowed

API_VERSIONS = ("policy/v1", "policy/v1beta1")
EVICTION_FIELDS = ("apiVersion", "kind", "metadata", "deleteOptions")
OPTION_FIELDS = (
    "apiVersion",
    "kind",
    "gracePeriodSeconds",
    "preconditions",
    "orphanDependents",
    "propagationPolicy",
    "dryRun",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
)
CONDITION = ("DisruptionTarget", "True", "EvictionByEvictionAPI", "Eviction API: evicting")
_RETRIES = 5  # a status write lost to a concurrent writer (the kubelet) is tried again


def serves(call: Call) -> bool:
    return call.kind.kind == "Pod" and call.info.subresource == "eviction"


async def evict(call: Call) -> Response:
    """POST .../pods/NAME/eviction: check, mark and delete the pod (module notes)."""
    if call.info.verb != "create":
        raise MethodNotAllowed(f"the server does not allow this method on {call.info.path}")
    await call.authorize("create")
    options = _options(call, body.parse_body(call.request))
    if options.dry_run:  # validated and admitted, nothing written; a missing pod is still 404
        await call.backend.store.get(call.kind, call.info.namespace, call.info.name)
    else:
        pod = await _mark(call, options)
        # a resourceVersion precondition moves on with the condition this server just wrote
        version = options.precondition_resource_version and pod.metadata.resource_version
        await call.backend.store.delete(
            call.kind,
            call.info.namespace,
            call.info.name,
            grace_period_seconds=options.grace_period_seconds,
            propagation_policy=options.propagation_policy,
            precondition_uid=options.precondition_uid,
            precondition_resource_version=version,
        )
    success = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    return call.respond({**success, "code": 201}, 201)


def _strict(data: Any, allowed: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise errors.BadRequest(f"{where or 'the body'} must be an object, not {json.dumps(data)}")
    unknown = [f'unknown field "{where}{k}"' for k in data if k not in allowed]
    if unknown:
        raise errors.BadRequest("strict decoding error: " + ", ".join(unknown))
    return data


def _options(call: Call, data: Any) -> body.DeleteOptions:
    """The Eviction's checks (step 1) and its deleteOptions, with the query's dryRun."""
    eviction = _strict(data, EVICTION_FIELDS, "")
    api_version = eviction.get("apiVersion") or "policy/v1"
    if api_version not in API_VERSIONS or eviction.get("kind", "Eviction") != "Eviction":
        raise errors.BadRequest(
            f"the body must be a policy/v1 Eviction, not {eviction.get('kind')} {api_version}"
        )
    meta = eviction.get("metadata") or {}
    if not isinstance(meta, dict) or meta.get("name") != call.info.name:
        raise errors.BadRequest("name in URL does not match name in Eviction object")
    if meta.get("namespace") not in (None, "", call.info.namespace):
        raise errors.BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    raw = _strict(eviction.get("deleteOptions") or {}, OPTION_FIELDS, "deleteOptions.")
    if raw.get("ignoreStoreReadErrorWithClusterBreakingPotential") is True:
        raise errors.BadRequest(
            "deleteOptions.ignoreStoreReadErrorWithClusterBreakingPotential: Unsupported value:"
            " true: this server reads every object it stores"
        )
    # dryRun may come in the query (kubectl --dry-run=server) or in deleteOptions: either
    return body.options_from(raw, body.DeleteOptions(dry_run=body.dry_run(call.request)))


async def _mark(call: Call, options: body.DeleteOptions) -> Any:
    """Step 4: the DisruptionTarget condition, written with the preconditions checked on the
    latest pod; a lost race is retried unless the caller pinned a resourceVersion."""
    store, name = call.backend.store, call.info.name
    for _ in range(_RETRIES):
        pod = await store.get(call.kind, call.info.namespace, name)
        if options.precondition_uid and options.precondition_uid != pod.metadata.uid:
            raise errors.Conflict.for_object(
                "pods",
                name,
                f"the UID in the precondition ({options.precondition_uid}) does not match the"
                f" UID in record ({pod.metadata.uid}). The object might have been deleted and"
                " then recreated",
            )
        version = options.precondition_resource_version
        if version and version != pod.metadata.resource_version:
            raise errors.Conflict.for_object(
                "pods",
                name,
                f"the ResourceVersion in the precondition ({version}) does not match the"
                f" ResourceVersion in record ({pod.metadata.resource_version}). The object might"
                " have been modified",
            )
        if not _add_condition(pod):
            return pod
        try:
            return await store.update(pod, status=True)
        except errors.Conflict:
            if version:
                raise
    raise errors.Conflict.for_object("pods", name, "too many concurrent writers")


def _add_condition(pod: Any) -> bool:
    """Set DisruptionTarget=True on the pod's status; False when it already says so."""
    kind, status, reason, message = CONDITION
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    for cond in pod.status.conditions:
        if cond.type == kind:
            if (cond.status, cond.reason, cond.message) == (status, reason, message):
                return False
            if cond.status != status:
                cond.last_transition_time.FromDatetime(now)
            cond.status, cond.reason, cond.message = status, reason, message
            return True
    added = pod.status.conditions.add(type=kind, status=status, reason=reason, message=message)
    added.last_transition_time.FromDatetime(now)
    return True
