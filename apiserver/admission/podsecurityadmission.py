"""PodSecurity admission: the plugin that applies podsecurity.py's levels to writes.

For each write it reads the namespace's `pod-security.kubernetes.io/*`
labels and acts per mode, as Kubernetes' built-in plugin does:

    enforce   a Pod that violates the level is refused (Forbidden)
    warn      the client gets `Warning: would violate PodSecurity "...": ...`
    audit     the server logs the violation (tinykube has no audit log file)

Pods are checked on create (their spec is immutable after that). The pod
templates of Deployments and ReplicaSets get warn and audit on create and
update, never enforce: refusing a Deployment would hide the problem from the
user who is about to wonder why no pod appears, while a warning at `apply`
says it at once. The namespace's own labels are checked too: an unknown
level is refused, so a typo cannot quietly turn enforcement off.

    $ tinykube apply -f hostpath-pod.yaml        # in a baseline namespace
    Error from server (Forbidden): pods "debug" is forbidden: violates PodSecurity
    "baseline:latest": hostPath volumes (volume "root")
"""

from __future__ import annotations

import logging
from typing import Any

from apimachinery import errors
from apimachinery.scheme import KindInfo
from apiserver.admission import podsecurity
from apiserver.admission.namespacelifecycle import read_namespace
from apiserver.admission.warnings import warn
from apiserver.storage.interface import Storage

log = logging.getLogger(__name__)

TEMPLATE_KINDS = ("Deployment", "ReplicaSet")


class PodSecurityAdmission:
    """Admission: the Pod Security Standards, per namespace, in enforce, warn and audit modes."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def admit_create(self, info: KindInfo, obj: Any) -> None:
        await self._admit(info, obj)

    async def admit_update(self, info: KindInfo, new: Any, old: Any) -> None:
        if info.kind in TEMPLATE_KINDS or info.kind == "Namespace":
            await self._admit(info, new)

    async def _admit(self, info: KindInfo, obj: Any) -> None:
        if info.kind == "Namespace":
            self._check_labels(obj)
        elif info.kind == "Pod":
            await self._check(info, obj, obj.spec, enforce=True)
        elif info.kind in TEMPLATE_KINDS:
            await self._check(info, obj, obj.spec.template.spec, enforce=False)

    @staticmethod
    def _check_labels(ns: Any) -> None:
        bad = podsecurity.label_errors(ns.metadata.labels)
        if bad:
            causes = [
                errors.unsupported(f"metadata.labels[{key}]", value, list(podsecurity.LEVELS))
                for key, value in bad
            ]
            raise errors.Invalid.for_object("Namespace", ns.metadata.name, causes)

    async def _check(self, info: KindInfo, obj: Any, spec: Any, *, enforce: bool) -> None:
        ns = await read_namespace(self.storage, obj.metadata.namespace)
        if ns is None:
            return  # NamespaceLifecycle refuses the write
        levels = podsecurity.namespace_levels(ns.metadata.labels)
        name = f'{info.full_resource} "{obj.metadata.name}"'
        found = podsecurity.violations(levels["enforce"], spec)
        if found:
            summary = podsecurity.summary(levels["enforce"], found)
            if enforce:
                raise errors.Forbidden(f"{name} is forbidden: {summary}")
            # A template: the pods it makes would be refused.
            warn(podsecurity.summary(levels["enforce"], found, would=True))
        found = podsecurity.violations(levels["warn"], spec)
        if found:
            warn(podsecurity.summary(levels["warn"], found, would=True))
        found = podsecurity.violations(levels["audit"], spec)
        if found:
            log.warning(
                "pod security audit",
                extra={
                    "object": name,
                    "namespace": obj.metadata.namespace,
                    "violation": podsecurity.summary(levels["audit"], found),
                },
            )
