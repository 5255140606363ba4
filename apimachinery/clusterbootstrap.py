"""Bootstrap tokens: the format, the Secret that holds one, and when it expires.

Kubernetes' k8s.io/cluster-bootstrap (token/api, token/util, secret/util), the
one library that kubeadm (which makes tokens), the API server (which
authenticates with them) and the token cleaner (which deletes expired ones)
share. tinykube's three users are `tinykube token` (cli/cmd_token.py), the
authenticator (apiserver/auth/bootstraptoken.py) and the `tokencleaner`
controller (controllers/tokencleaner.py).

A bootstrap token is a short-lived bearer token a new node uses for exactly
one thing: to ask for its real credentials (a CSR for its kubelet client
certificate). It has two halves,

    abcdef.0123456789abcdef          [a-z0-9]{6} "." [a-z0-9]{16}
    ^id    ^secret

and lives as a Secret in kube-system named after the public half:

    name: bootstrap-token-abcdef       type: bootstrap.kubernetes.io/token
    data: token-id: abcdef             token-secret: 0123456789abcdef
          expiration: 2024-05-02T10:00:00Z        (RFC 3339; absent = never)
          usage-bootstrap-authentication: "true"  (may be used as a bearer token)
          usage-bootstrap-signing: "true"         (may sign the cluster-info ConfigMap)
          auth-extra-groups: system:bootstrappers:kubeadm:default-node-token
          description: ...

The id is not a secret (it names the Secret, appears in logs and in the user
name `system:bootstrap:abcdef`); the 16 characters after the dot are, and
are compared in constant time. Tokens are made from `secrets`, the
operating system's random source: 36^16 (about 2^82) possible secrets.

Expiry, as Kubernetes reads it: no `expiration` key means the token never
expires; a value that is not RFC 3339 means it has (a token nobody can read
the end of is not trusted); otherwise it is expired at and after that time.
"""

from __future__ import annotations

import datetime
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from protos import core_pb2

SECRET_TYPE = "bootstrap.kubernetes.io/token"
SECRET_PREFIX = "bootstrap-token-"
NAMESPACE = "kube-system"

TOKEN_ID_KEY = "token-id"
TOKEN_SECRET_KEY = "token-secret"
EXPIRATION_KEY = "expiration"
DESCRIPTION_KEY = "description"
EXTRA_GROUPS_KEY = "auth-extra-groups"
USAGE_PREFIX = "usage-bootstrap-"
USAGE_AUTHENTICATION = "usage-bootstrap-authentication"
USAGE_SIGNING = "usage-bootstrap-signing"

BOOTSTRAP_USER_PREFIX = "system:bootstrap:"
BOOTSTRAPPERS_GROUP = "system:bootstrappers"
DEFAULT_NODE_TOKEN_GROUP = "system:bootstrappers:kubeadm:default-node-token"
DEFAULT_TTL = datetime.timedelta(hours=24)
DEFAULT_USAGES = ("authentication", "signing")

TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
TOKEN_ID_RE = re.compile(r"^[a-z0-9]{6}$")
GROUP_RE = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)"
)


@dataclass(frozen=True)
class Token:
    """A bootstrap token's two halves; str() is the bearer token a node presents."""

    id: str
    secret: str

    def __str__(self) -> str:
        return f"{self.id}.{self.secret}"

    @property
    def secret_name(self) -> str:
        return secret_name(self.id)


def parse_token(text: str) -> Token | None:
    """`abcdef.0123456789abcdef` as a Token; None for anything else."""
    match = TOKEN_RE.fullmatch(text)
    return Token(match.group(1), match.group(2)) if match else None


def generate_token() -> Token:
    """A fresh random token (kubeadm's GenerateBootstrapToken)."""

    def random_string(length: int) -> str:
        return "".join(secrets.choice(_ALPHABET) for _ in range(length))

    return Token(random_string(6), random_string(16))


def secret_name(token_id: str) -> str:
    return SECRET_PREFIX + token_id


# ---- times ---------------------------------------------------------------------------------


def format_rfc3339(when: datetime.datetime) -> str:
    """UTC, whole seconds, "Z": 2024-05-02T10:00:00Z (Go's time.RFC3339 for a UTC time)."""
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> datetime.datetime:
    """An RFC 3339 time with its offset; ValueError for anything else (no offset included)."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f'"{text}" is not an RFC 3339 time')
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    micro = int((match.group(7) or "0").ljust(6, "0")[:6])
    zone = match.group(8)
    offset = datetime.timedelta(0)
    if zone not in ("Z", "z"):
        offset = datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        offset = -offset if zone[0] == "-" else offset
    tz = datetime.timezone(offset)
    return datetime.datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)


def _now(now: datetime.datetime | None) -> datetime.datetime:
    return now if now is not None else datetime.datetime.now(datetime.timezone.utc)


# ---- the Secret ----------------------------------------------------------------------------


def data(secret: core_pb2.Secret, key: str) -> str:
    """A data value as text ("" when absent or not UTF-8)."""
    try:
        return bytes(secret.data.get(key, b"")).decode("utf-8")
    except UnicodeDecodeError:
        return ""


def time_to_expiry(
    secret: core_pb2.Secret, now: datetime.datetime | None = None
) -> tuple[float | None, bool]:
    """(seconds left or None for never, expired?) -- Kubernetes' GetExpiration."""
    text = data(secret, EXPIRATION_KEY)
    if not text:
        return None, False
    try:
        left = (parse_rfc3339(text) - _now(now)).total_seconds()
    except ValueError:
        return 0.0, True  # unreadable: treated as expired
    return (0.0, True) if left <= 0 else (left, False)


def groups(secret: core_pb2.Secret) -> tuple[str, ...]:
    """system:bootstrappers plus the Secret's auth-extra-groups; ValueError naming a bad one."""
    out = [BOOTSTRAPPERS_GROUP]
    for group in data(secret, EXTRA_GROUPS_KEY).split(","):
        group = group.strip()
        if not group:
            continue
        if not GROUP_RE.fullmatch(group):
            raise ValueError(f'group "{group}" does not match {GROUP_RE.pattern}')
        if group not in out:
            out.append(group)
    return tuple(out)


def is_bootstrap_token_secret(secret: core_pb2.Secret) -> bool:
    """A Secret the token machinery owns: its type, in kube-system, named bootstrap-token-ID."""
    name = secret.metadata.name
    return (
        secret.type == SECRET_TYPE
        and secret.metadata.namespace == NAMESPACE
        and name.startswith(SECRET_PREFIX)
        and TOKEN_ID_RE.fullmatch(name[len(SECRET_PREFIX) :]) is not None
    )


def new_token_secret(
    token: Token,
    *,
    ttl: datetime.timedelta | None = DEFAULT_TTL,
    description: str = "",
    usages: Iterable[str] = DEFAULT_USAGES,
    extra_groups: Iterable[str] = (DEFAULT_NODE_TOKEN_GROUP,),
    now: datetime.datetime | None = None,
) -> core_pb2.Secret:
    """The Secret kubeadm writes for `token` (ttl None or zero: it never expires)."""
    secret = core_pb2.Secret(api_version="v1", kind="Secret", type=SECRET_TYPE)
    secret.metadata.name = token.secret_name
    secret.metadata.namespace = NAMESPACE
    values = {TOKEN_ID_KEY: token.id, TOKEN_SECRET_KEY: token.secret}
    if ttl:
        values[EXPIRATION_KEY] = format_rfc3339(_now(now) + ttl)
    if description:
        values[DESCRIPTION_KEY] = description
    for usage in usages:
        values[USAGE_PREFIX + usage] = "true"
    group_list = ",".join(extra_groups)
    if group_list:
        values[EXTRA_GROUPS_KEY] = group_list
    for key, value in values.items():
        secret.data[key] = value.encode("utf-8")
    return secret
