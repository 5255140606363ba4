"""The token cleaner: deletes bootstrap tokens once they expire.

Kubernetes' pkg/controller/bootstrap/tokencleaner.go, in kube-controller-
manager. A bootstrap token (`tinykube token create`, 24 hours by default) is
a kube-system Secret of type bootstrap.kubernetes.io/token with an
`expiration` (apimachinery/clusterbootstrap.py). The authenticator already
refuses an expired token (apiserver/auth/bootstraptoken.py checks the time on
every request); this controller removes the Secret itself, so a credential
that is no longer good does not linger in storage, in backups, or in
`tinykube token list`.

It watches only those Secrets (kube-system, field selector
`type=bootstrap.kubernetes.io/token`), and for each:

* no expiration: never expires, nothing to do;
* expired, or an expiration that is not RFC 3339 (treated as expired, as
  the authenticator treats it): delete it, with the uid it was read with as
  a precondition, so a Secret recreated under the same name meanwhile is
  not the one deleted;
* not yet expired: look again when it will have (the queue's add_after),
  so no periodic scan is needed.

    token abcdef created 10:00 with --ttl 1h  -> expiration 11:00:00Z
      sync at 10:00: 3600 s left -> add_after(3600)
      sync at 11:00: expired -> delete kube-system/bootstrap-token-abcdef
"""

from __future__ import annotations

import logging

from apimachinery import clusterbootstrap as bt
from apimachinery import errors
from controllers import register
from controllers.base import Controller, ControllerContext
from protos import core_pb2

log = logging.getLogger(__name__)

# Past the expiration by this much before the deletion runs: the clocks of the
# authenticator and of this controller need not agree to the millisecond.
SLACK_SECONDS = 1.0


@register("tokencleaner")
class TokenCleaner(Controller):
    """Deletes kube-system bootstrap-token Secrets whose expiration has passed."""

    name = "tokencleaner"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.secrets = ctx.factory.informer(
            core_pb2.Secret, bt.NAMESPACE, field_selector=f"type={bt.SECRET_TYPE}"
        )
        self.secrets.add_handlers(
            on_add=self.enqueue_obj,
            on_update=lambda _old, new: self.enqueue_obj(new),
        )

    async def sync(self, key: str) -> None:
        secret = self.secrets.store.get(key)
        if secret is None or secret.type != bt.SECRET_TYPE:
            return
        left, expired = bt.time_to_expiry(secret)
        if not expired:
            if left is not None:
                self.queue.add_after(key, left + SLACK_SECONDS)
            return
        try:
            await self.client.delete(
                core_pb2.Secret,
                secret.metadata.name,
                secret.metadata.namespace,
                precondition_uid=secret.metadata.uid,
            )
        except errors.NotFound:
            return
        log.info("expired bootstrap token deleted", extra={"secret": key})
