"""API authentication: `Authorization: Bearer <token>`, or the session cookie plus CSRF header.

# SECURITY: tokens are looked up by keyed digest and compared in constant time; expired tokens,
# non-API intents and inactive users are refused with 401. Session-authenticated unsafe requests
# must carry `X-authentik-CSRF` equal to the `authentik_csrf` cookie (double submit).
"""

from __future__ import annotations

import contextlib

from aiohttp import web

from tessera.core import crypto, errors, store
from tessera.core.api import state
from tessera.core.identity import sessions, tokens, users

CSRF_COOKIE = "authentik_csrf"
CSRF_HEADER = "X-authentik-CSRF"
_SAFE = {"GET", "HEAD", "OPTIONS"}
_MAX_KEY = 512


async def authenticate(request: web.Request, tx: store.Tx | None = None) -> state.Principal:
    """The caller, or NotAuthenticated (401); reads in `tx` when the handler has one open."""
    if state.PRINCIPAL in request:
        return request[state.PRINCIPAL]
    async with contextlib.AsyncExitStack() as stack:
        if tx is None:
            tx = await stack.enter_async_context(request.app[state.STORE].read())
        principal = await _from_header(request, tx) or await _from_session(request, tx)
    if principal is None:
        raise errors.NotAuthenticated("Authentication credentials were not provided.")
    request[state.PRINCIPAL] = principal
    return principal


async def require_superuser(request: web.Request, tx: store.Tx | None = None) -> state.Principal:
    principal = await authenticate(request, tx)
    if not principal.is_superuser:
        raise errors.PermissionDenied("You do not have permission to perform this action.")
    return principal


async def _from_header(request: web.Request, tx: store.Tx) -> state.Principal | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or len(key) > _MAX_KEY:
        raise errors.NotAuthenticated("Invalid token header.")
    found = await tokens.authenticate(tx, request.app[state.KEYRING], key)
    if found is None:
        raise errors.NotAuthenticated("Token invalid/expired")
    _, user = found
    superuser = await users.is_superuser(tx, user["pk"])
    return state.Principal(user=user, is_superuser=superuser, via="token")


async def _from_session(request: web.Request, tx: store.Tx) -> state.Principal | None:
    key = request.cookies.get(sessions.COOKIE)
    if not key:
        return None
    user = await sessions.user_for(tx, key)
    if user is None:
        return None
    superuser = await users.is_superuser(tx, user["pk"])
    if request.method not in _SAFE:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        header = request.headers.get(CSRF_HEADER, "")
        if not cookie or not crypto.secrets.equal(cookie, header):
            raise errors.PermissionDenied("CSRF Failed: CSRF token missing or incorrect.")
    return state.Principal(user=user, is_superuser=superuser, via="session")
