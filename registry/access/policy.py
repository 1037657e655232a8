"""Who may call which route: every route declares its policy next to it; anything undeclared is refused.

A route's `opt` carries `access`: either PUBLIC, or an `Access` naming the roles allowed.
Roles listed in `own` are allowed only on their own resources — the handler checks that with
`ensure_own` *before* looking anything up, so a refusal never reveals whether a resource exists.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from registry.access.tokens import Identity, Role, TokenService
from registry.errors import Forbidden, Unauthenticated

IDENTITY_SCOPE_KEY = "registry.identity"
TOKEN_COOKIE = "registry_token"
"""Pages keep the bearer token in this HttpOnly cookie; it is honoured for GET requests only."""
PUBLIC = "public"
OPENAPI_PREFIX = "/schema"


class Access(msgspec.Struct, kw_only=True, frozen=True):
    roles: frozenset[Role]
    own: frozenset[Role] = frozenset()
    writes: bool = False
    if_match: bool = False
    """The write honours `If-Match` on its resource's stream (registry.http.commands.run_command)."""


def allow(*roles: Role, own: tuple[Role, ...] = (), writes: bool = False, if_match: bool = False) -> dict[str, Any]:
    """Route `opt` granting `roles` (those also in `own` only for their own resources)."""
    if writes and Role.regulator in roles:
        raise ValueError("regulators read everything and write nothing")
    if if_match and not writes:
        raise ValueError("only a write can be conditional on If-Match")
    return {"access": Access(roles=frozenset(roles) | frozenset(own), own=frozenset(own), writes=writes,
                             if_match=if_match)}


def public() -> dict[str, Any]:
    return {"access": PUBLIC}


READ_ALL = (Role.operator, Role.regulator)


def _token_service(connection: ASGIConnection) -> TokenService:
    return connection.app.state.tokens


def authenticate(connection: ASGIConnection) -> Identity:
    header = connection.headers.get("authorization", "")
    if not header and connection.scope.get("method") == "GET" and connection.cookies.get(TOKEN_COOKIE):
        # pages: a GET may carry the token in its cookie; a write never does (no cross-site writes)
        header = f"Bearer {connection.cookies[TOKEN_COOKIE]}"
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send a bearer token: Authorization: Bearer <token>")
    return _token_service(connection).verify(token.strip())


async def authorize(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """The app-wide guard: authenticate, then check the route's declared policy."""
    policy = handler.opt.get("access")
    if connection.scope.get("method") == "OPTIONS":
        return  # Litestar's automatic OPTIONS answers list allowed methods, nothing more
    if policy == PUBLIC or (policy is None and connection.scope["path"].startswith(OPENAPI_PREFIX)):
        return
    identity = authenticate(connection)
    if not isinstance(policy, Access):
        raise Forbidden("this route declares no access policy")
    if identity.role not in policy.roles:
        raise Forbidden(f"the {identity.role} role may not do this", role=str(identity.role))
    connection.scope[IDENTITY_SCOPE_KEY] = identity  # type: ignore[literal-required]


def identity_of(connection: ASGIConnection) -> Identity:
    identity = connection.scope.get(IDENTITY_SCOPE_KEY)  # type: ignore[misc]
    if identity is None:
        raise Unauthenticated("authentication is required")
    return identity


def ensure_own(identity: Identity, role: Role, subject: str) -> None:
    """Enterprises and investors act only for themselves; others pass (their access was checked)."""
    if identity.role is role and identity.subject != subject:
        raise Forbidden("you may only act on your own records")
    if identity.role in (Role.enterprise, Role.investor) and identity.role is not role:
        raise Forbidden("you may only act on your own records")
