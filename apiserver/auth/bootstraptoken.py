"""The bootstrap token authenticator: a bearer token that is a kube-system Secret.

Kubernetes' plugin/pkg/auth/authenticator/token/bootstrap. A node that
joins the cluster has no certificate yet; it has a bootstrap token
(`tinykube token create`), which it presents as `Authorization: Bearer
abcdef.0123456789abcdef` for as long as it takes to ask for one (a CSR,
which the csrapproving controller grants to bootstrappers). The token is
checked against the Secret `kube-system/bootstrap-token-abcdef`
(apimachinery/clusterbootstrap.py has the layout), and every step must pass:

    1. the token has the form [a-z0-9]{6}.[a-z0-9]{16}
    2. the Secret bootstrap-token-<id> exists in kube-system, not being deleted
    3. its type is bootstrap.kubernetes.io/token
    4. its token-secret equals the token's secret half (constant-time compare)
       and its token-id equals the id
    5. it has not expired (expiration, RFC 3339; an unreadable one has)
    6. usage-bootstrap-authentication is "true"
    7. auth-extra-groups are all system:bootstrappers:... groups

Then the user is `system:bootstrap:<id>` in `system:bootstrappers` plus the
extra groups (kubeadm's tokens add system:bootstrappers:kubeadm:default-node-
token). Any failure is None: the caller answers `Unauthorized`, and nothing
about which step failed reaches the client (it must not learn which token ids
exist). The reason goes to the server's debug log with the Secret's name,
never the secret half.

The functions are pure over a lookup, so the authenticator decides where
Secrets come from (storage, a cache):

    user = bootstrap_token_user(lambda name: secrets.get(name), token)
    user = await bootstrap_token_user_async(read_kube_system_secret, token)

The lookup gets the Secret's name in kube-system and returns it, or None.
"""

from __future__ import annotations

import datetime
import hmac
import logging
from collections.abc import Awaitable, Callable

from apimachinery import clusterbootstrap as bt
from apiserver.auth.authorizer import UserInfo
from protos import core_pb2

log = logging.getLogger(__name__)

SecretLookup = Callable[[str], "core_pb2.Secret | None"]
AsyncSecretLookup = Callable[[str], Awaitable["core_pb2.Secret | None"]]


def _refuse(secret: core_pb2.Secret, why: str) -> None:
    log.debug(
        "bootstrap token refused",
        extra={"secret": f"{bt.NAMESPACE}/{secret.metadata.name}", "reason": why},
    )


def user_for_secret(
    secret: core_pb2.Secret | None, token: bt.Token, now: datetime.datetime | None = None
) -> UserInfo | None:
    """Steps 2-7 of the module docstring for a parsed token and the Secret found for it."""
    if secret is None:
        log.debug("bootstrap token refused", extra={"secret": token.secret_name, "reason": "none"})
        return None
    if secret.metadata.HasField("deletion_timestamp"):
        _refuse(secret, "is deleted and awaiting removal")
        return None
    if secret.type != bt.SECRET_TYPE:
        _refuse(secret, f"has invalid type, expected {bt.SECRET_TYPE}")
        return None
    stored = bt.data(secret, bt.TOKEN_SECRET_KEY).encode()
    if not hmac.compare_digest(stored, token.secret.encode()):
        _refuse(secret, f"has invalid value for key {bt.TOKEN_SECRET_KEY}")
        return None
    if bt.data(secret, bt.TOKEN_ID_KEY) != token.id:
        _refuse(secret, f"has invalid value for key {bt.TOKEN_ID_KEY}")
        return None
    if bt.time_to_expiry(secret, now)[1]:
        _refuse(secret, "has expired")
        return None
    if bt.data(secret, bt.USAGE_AUTHENTICATION) != "true":
        _refuse(secret, f"not marked {bt.USAGE_AUTHENTICATION}=true")
        return None
    try:
        groups = bt.groups(secret)
    except ValueError as err:
        _refuse(secret, f"has invalid value for key {bt.EXTRA_GROUPS_KEY}: {err}")
        return None
    return UserInfo(bt.BOOTSTRAP_USER_PREFIX + token.id, groups)


def bootstrap_token_user(
    secret_lookup: SecretLookup, token: str, *, now: datetime.datetime | None = None
) -> UserInfo | None:
    """The user a bootstrap token authenticates as, or None (see the module docstring)."""
    parsed = bt.parse_token(token)
    if parsed is None:
        return None  # not a bootstrap token at all: another authenticator's, or nobody's
    return user_for_secret(secret_lookup(parsed.secret_name), parsed, now)


async def bootstrap_token_user_async(
    secret_lookup: AsyncSecretLookup, token: str, *, now: datetime.datetime | None = None
) -> UserInfo | None:
    """bootstrap_token_user with a lookup that must be awaited (storage)."""
    parsed = bt.parse_token(token)
    if parsed is None:
        return None
    return user_for_secret(await secret_lookup(parsed.secret_name), parsed, now)
