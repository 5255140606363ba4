"""Authentication: from a gRPC call to a UserInfo, or `Unauthorized`.

Three ways in, one per kind of listener (see server.py for why there are two
TLS ports):

* the certificate port (mTLS): gRPC has already verified the client's
  certificate against `--client-ca-file` during the handshake; the identity
  is read from it as Kubernetes does: CN is the user, each O a group
  (`CN=system:node:node2, O=system:nodes`);
* the token port (TLS, no client certificate): the call must carry
  `authorization: Bearer TOKEN`. A token is looked up in the static token
  file (`--token-auth-file`, Kubernetes' CSV: `token,user,uid,"g1,g2"`) and
  then among the bootstrap tokens (kube-system Secrets of type
  `bootstrap.kubernetes.io/token`, bootstraptoken.py);
* a unix socket: whoever can open it (its file mode decides) is the
  cluster's admin, in `system:masters` — the local cluster's host CLI and
  the API server's own in-process scheduler and controllers come this way.

Every authenticated user is also in `system:authenticated`. Anything else —
no certificate and no token, an unknown or expired token — is refused with
Kubernetes' one word, `Unauthorized`, and nothing about why (a client must
not learn which tokens exist).
"""

from __future__ import annotations

import csv
import hmac
import io
from collections.abc import Awaitable, Callable, Mapping

import grpc

from apimachinery import certs, errors
from apiserver.auth.authorizer import AUTHENTICATED, SYSTEM_MASTERS, UserInfo

ADMIN = UserInfo("kubernetes-admin", (SYSTEM_MASTERS, AUTHENTICATED))
TokenLookup = Callable[[str], Awaitable[UserInfo | None]]


class TokenFileError(ValueError):
    """The static token file cannot be used; the message names the line."""


def parse_token_file(text: str, source: str = "token file") -> dict[str, UserInfo]:
    """Kubernetes' static token CSV: token,user,uid[,"group1,group2"] per line."""
    tokens: dict[str, UserInfo] = {}
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or row[0].startswith("#"):
            continue
        if len(row) < 3 or not row[0] or not row[1]:
            raise TokenFileError(f"{source}:{number}: expected token,user,uid[,groups]")
        groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
        if row[0] in tokens:
            raise TokenFileError(f"{source}:{number}: duplicate token")
        tokens[row[0]] = UserInfo(row[1], groups, uid=row[2])
    return tokens


def _with_authenticated(user: UserInfo) -> UserInfo:
    if AUTHENTICATED in user.groups:
        return user
    return UserInfo(user.name, (*user.groups, AUTHENTICATED), user.uid, user.extra)


def bearer_token(metadata: Mapping[str, str]) -> str:
    value = metadata.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class Authenticator:
    """Who is calling: certificate, token or unix socket, as the module docstring says."""

    def __init__(
        self,
        *,
        static_tokens: Mapping[str, UserInfo] | None = None,
        token_lookups: tuple[TokenLookup, ...] = (),
    ) -> None:
        self.static_tokens = dict(static_tokens or {})
        self.token_lookups = token_lookups

    async def authenticate(self, context: grpc.aio.ServicerContext) -> UserInfo:
        peer = context.peer() or ""
        if peer.startswith("unix:"):
            return ADMIN
        auth = context.auth_context()
        pem = (auth.get("x509_pem_cert") or [b""])[0]
        if pem:  # mTLS: the handshake verified it against the client CA
            identity = certs.identity(certs.load_cert_pem(pem))
            return _with_authenticated(UserInfo(identity.user, tuple(identity.groups)))
        if auth.get("transport_security_type", [b""])[0] != b"ssl":
            raise errors.Unauthorized()  # plain TCP is never served; be safe regardless
        metadata = {m.key: m.value for m in context.invocation_metadata() or ()}
        token = bearer_token({k: v for k, v in metadata.items() if isinstance(v, str)})
        if token:
            user = await self.token_user(token)
            if user is not None:
                return _with_authenticated(user)
        raise errors.Unauthorized()

    async def token_user(self, token: str) -> UserInfo | None:
        for known, static_user in self.static_tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                return static_user
        for lookup in self.token_lookups:
            found = await lookup(token)
            if found is not None:
                return found
        return None
