"""Authentication: from a gRPC call to a UserInfo, or `Unauthorized`.

Three ways in (apiserver/listeners.py has the listeners):

* a client certificate: the API port's TLS front (apimachinery/tlsfront.py)
  verified it against `--client-ca-file` and says so for the connection;
  the identity is read from it as Kubernetes does: CN is the user, each O a
  group (`CN=system:node:node2, O=system:nodes`);
* a bearer token, on a TLS connection without a certificate (the API port or
  the token port): `authorization: Bearer TOKEN`, looked up in the static
  token file (`--token-auth-file`, Kubernetes' CSV: `token,user,uid,"g1,g2"`)
  and then among the bootstrap tokens (kube-system Secrets of type
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
# A unix peer -> (came through a TLS front, the client certificate's identity if one was sent).
FrontLookup = Callable[[str], tuple[bool, certs.Identity | None]]


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
        fronts: FrontLookup | None = None,
    ) -> None:
        self.static_tokens = dict(static_tokens or {})
        self.token_lookups = token_lookups
        self.fronts = fronts

    async def authenticate(self, context: grpc.aio.ServicerContext) -> UserInfo:
        peer = context.peer() or ""
        if peer.startswith("unix:"):
            through, identity = self.fronts(peer) if self.fronts else (False, None)
            if not through:
                return ADMIN  # the unix socket itself: file permissions decided
            if identity is not None:  # the TLS front verified it against the client CA
                return _with_authenticated(UserInfo(identity.user, tuple(identity.groups)))
            return await self._token(context)  # TLS without a certificate: a token, or no one
        if context.auth_context().get("transport_security_type", [b""])[0] != b"ssl":
            raise errors.Unauthorized()  # plain TCP is never served; be safe regardless
        return await self._token(context)

    async def _token(self, context: grpc.aio.ServicerContext) -> UserInfo:
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
