"""Validation of apps/v1 Deployment and ReplicaSet (pkg/apis/apps/validation).

Both kinds own pods through a label selector and stamp them from a pod
template, so both check the same contract:

* `spec.selector` is required and not empty (an empty selector would adopt
  every pod in the namespace);
* the selector must match the template's labels, or the controller would
  create pods it does not count as its own - forever:

      spec.template.metadata.labels: Invalid value: map[string]string{"app":"x"}:
          `selector` does not match template `labels`

* the template's restartPolicy is Always (a controller replaces pods, it
  does not let them finish), and it has no activeDeadlineSeconds.

A Deployment also has a strategy. RollingUpdate takes maxSurge and
maxUnavailable, each an int >= 0 or a percentage "N%"; they may not both be
0 (the rollout could never make progress: no extra pod may be added and no
old one removed), and maxUnavailable may not pass 100%. Recreate has no
parameters, so `rollingUpdate` is forbidden with it. Unset values are left to
defaulting (25% / 25%), which is why only explicit zeros are compared.
"""

from __future__ import annotations

from typing import Any

from apimachinery import errors, labels
from apimachinery.errors import FieldError
from apimachinery.validation_meta import (
    GoMap,
    int_or_string,
    nonnegative,
    selector_text,
    validate_label_selector,
    validate_object_meta,
    validate_template_meta,
)
from apimachinery.validation_names import is_dns1123_subdomain, is_valid_percent
from apimachinery.validation_pod import validate_pod_spec
from protos import apps_pb2, core_pb2, meta_pb2

STRATEGY_TYPES = ["Recreate", "RollingUpdate"]


def _validate_selector(
    sel: meta_pb2.LabelSelector, has_selector: bool, kind: str
) -> tuple[labels.Selector | None, list[FieldError]]:
    if not has_selector:
        return None, [errors.required("spec.selector")]
    out = validate_label_selector(sel, "spec.selector")
    if not sel.match_labels and not sel.match_expressions:
        out.append(
            errors.invalid(
                "spec.selector", selector_text(sel), f"empty selector is invalid for {kind}"
            )
        )
        return None, out
    try:
        return labels.from_label_selector(sel), out
    except errors.BadRequest:
        if not out:
            out.append(
                errors.invalid("spec.selector", selector_text(sel), "invalid label selector")
            )
        return None, out


def validate_template_for_controller(
    template: core_pb2.PodTemplateSpec, selector: labels.Selector | None, path: str
) -> list[FieldError]:
    """ValidatePodTemplateSpecForReplicaSet: labels match, pod spec valid, restartPolicy Always."""
    out: list[FieldError] = []
    tmpl_labels = dict(template.metadata.labels)
    if selector is not None and not selector.empty() and not selector.matches(tmpl_labels):
        out.append(
            errors.invalid(
                f"{path}.metadata.labels",
                GoMap(tmpl_labels),
                "`selector` does not match template `labels`",
            )
        )
    out.extend(validate_template_meta(template.metadata, f"{path}.metadata"))
    out.extend(validate_pod_spec(template.spec, f"{path}.spec"))
    policy = template.spec.restart_policy
    if policy and policy != "Always":
        out.append(errors.unsupported(f"{path}.spec.restartPolicy", policy, ["Always"]))
    if template.spec.HasField("active_deadline_seconds"):
        out.append(
            errors.forbidden(
                f"{path}.spec.activeDeadlineSeconds",
                "activeDeadlineSeconds in ReplicaSet is not Supported",
            )
        )
    return out


def _int_or_percent(value: meta_pb2.IntOrString, path: str) -> tuple[int | None, list[FieldError]]:
    """The number an IntOrString stands for (percent as N), and its errors."""
    raw: Any = int_or_string(value)
    if raw is None:
        return None, []
    if isinstance(raw, str):
        if not is_valid_percent(raw):
            return None, [errors.invalid(path, raw, "must be an integer or percentage (e.g '5%')")]
        number = int(raw[:-1])
        if number > 100 and path.endswith("maxUnavailable"):
            return number, [errors.invalid(path, raw, "must not be greater than 100%")]
        return number, []
    return raw, nonnegative(raw, path)


def validate_strategy(strategy: apps_pb2.DeploymentStrategy, path: str) -> list[FieldError]:
    out: list[FieldError] = []
    kind = strategy.type or "RollingUpdate"
    if kind not in STRATEGY_TYPES:
        return [errors.unsupported(f"{path}.type", strategy.type, STRATEGY_TYPES)]
    if kind == "Recreate":
        if strategy.HasField("rolling_update"):
            out.append(
                errors.forbidden(
                    f"{path}.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                )
            )
        return out
    ru = strategy.rolling_update
    unavailable, errs = _int_or_percent(ru.max_unavailable, f"{path}.rollingUpdate.maxUnavailable")
    out.extend(errs)
    surge, errs = _int_or_percent(ru.max_surge, f"{path}.rollingUpdate.maxSurge")
    out.extend(errs)
    if unavailable == 0 and surge == 0:
        out.append(
            errors.invalid(
                f"{path}.rollingUpdate.maxUnavailable",
                int_or_string(ru.max_unavailable),
                "may not be 0 when `maxSurge` is 0",
            )
        )
    return out


def _validate_status_counts(status: Any, fields: list[tuple[str, str]]) -> list[FieldError]:
    out: list[FieldError] = []
    for attr, json_name in fields:
        out.extend(nonnegative(getattr(status, attr), f"status.{json_name}"))
        capped = attr in ("ready_replicas", "available_replicas", "updated_replicas")
        if capped and getattr(status, attr) > status.replicas:
            out.append(
                errors.invalid(
                    f"status.{json_name}",
                    getattr(status, attr),
                    "cannot be greater than status.replicas",
                )
            )
    return out


def validate_deployment(d: apps_pb2.Deployment) -> list[FieldError]:
    out = validate_object_meta(d.metadata, True, is_dns1123_subdomain)
    spec = d.spec
    if spec.HasField("replicas"):
        out.extend(nonnegative(spec.replicas, "spec.replicas"))
    selector, errs = _validate_selector(spec.selector, spec.HasField("selector"), "deployment")
    out.extend(errs)
    out.extend(validate_template_for_controller(spec.template, selector, "spec.template"))
    out.extend(validate_strategy(spec.strategy, "spec.strategy"))
    out.extend(nonnegative(spec.min_ready_seconds, "spec.minReadySeconds"))
    if spec.HasField("revision_history_limit"):
        out.extend(nonnegative(spec.revision_history_limit, "spec.revisionHistoryLimit"))
    if spec.HasField("progress_deadline_seconds"):
        pds = spec.progress_deadline_seconds
        out.extend(nonnegative(pds, "spec.progressDeadlineSeconds"))
        if pds <= spec.min_ready_seconds:
            out.append(
                errors.invalid(
                    "spec.progressDeadlineSeconds", pds, "must be greater than minReadySeconds"
                )
            )
    out.extend(
        _validate_status_counts(
            d.status,
            [
                ("replicas", "replicas"),
                ("updated_replicas", "updatedReplicas"),
                ("ready_replicas", "readyReplicas"),
                ("available_replicas", "availableReplicas"),
                ("unavailable_replicas", "unavailableReplicas"),
            ],
        )
    )
    return out


def validate_replica_set(rs: apps_pb2.ReplicaSet) -> list[FieldError]:
    out = validate_object_meta(rs.metadata, True, is_dns1123_subdomain)
    spec = rs.spec
    if spec.HasField("replicas"):
        out.extend(nonnegative(spec.replicas, "spec.replicas"))
    out.extend(nonnegative(spec.min_ready_seconds, "spec.minReadySeconds"))
    selector, errs = _validate_selector(spec.selector, spec.HasField("selector"), "replicaset")
    out.extend(errs)
    out.extend(validate_template_for_controller(spec.template, selector, "spec.template"))
    out.extend(
        _validate_status_counts(
            rs.status,
            [
                ("replicas", "replicas"),
                ("fully_labeled_replicas", "fullyLabeledReplicas"),
                ("ready_replicas", "readyReplicas"),
                ("available_replicas", "availableReplicas"),
            ],
        )
    )
    return out
