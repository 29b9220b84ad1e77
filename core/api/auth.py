"""API authentication: `Authorization: Bearer <token>`, or the session cookie plus CSRF header.

# SECURITY: tokens are looked up by keyed digest and compared in constant time; expired tokens,
# non-API intents and inactive users are refused with 401. Session-authenticated unsafe requests
# must carry `X-authentik-CSRF` equal to the `authentik_csrf` cookie (double submit).
# SECURITY: an outpost's service account (`identity.outposts`) may call only the read routes an
# outpost needs (`OUTPOST_ROUTES`); every other route, and every write, is 403 for it. The
# resources behind those routes narrow further to the outpost's own objects.
"""

from __future__ import annotations

import contextlib
from typing import Any

from aiohttp import web

from tessera.core import crypto, errors, store
from tessera.core.api import state
from tessera.core.identity import outposts, sessions, tokens, users

CSRF_COOKIE = "authentik_csrf"
CSRF_HEADER = "X-authentik-CSRF"
_SAFE = {"GET", "HEAD", "OPTIONS"}
_MAX_KEY = 512
# The routes an outpost's token may call (GET only), as aiohttp names them: its own outpost, its
# providers' configurations, who it is, the root configuration, and the key pairs its providers
# use (authentik gives the outpost's account view permissions on exactly these objects).
OUTPOST_ROUTES = frozenset(
    {
        "/api/v3/outposts/instances/",
        "/api/v3/outposts/instances/{lookup}/",
        "/api/v3/outposts/proxy/",
        "/api/v3/outposts/ldap/",
        "/api/v3/core/users/me/",
        "/api/v3/root/config/",
        "/api/v3/crypto/certificatekeypairs/{lookup}/",
        "/api/v3/crypto/certificatekeypairs/{lookup}/view_certificate/",
        "/api/v3/crypto/certificatekeypairs/{lookup}/view_private_key/",
    }
)


async def authenticate(request: web.Request, tx: store.Tx | None = None) -> state.Principal:
    """The caller, or NotAuthenticated (401); reads in `tx` when the handler has one open."""
    if state.PRINCIPAL in request:
        principal: state.Principal | None = request[state.PRINCIPAL]
    else:
        async with contextlib.AsyncExitStack() as stack:
            if tx is None:
                tx = await stack.enter_async_context(request.app[state.STORE].read())
            principal = await _from_header(request, tx) or await _from_session(request, tx)
        if principal is None:
            raise errors.NotAuthenticated("Authentication credentials were not provided.")
        request[state.PRINCIPAL] = principal
    assert principal is not None
    if principal.outpost is not None and not outpost_may_call(request):
        raise errors.PermissionDenied("You do not have permission to perform this action.")
    return principal


def outpost_may_call(request: web.Request) -> bool:
    """Whether an outpost's account may call this route (`OUTPOST_ROUTES`, reads only)."""
    if request.method not in ("GET", "HEAD"):
        return False
    resource = request.match_info.route.resource
    return resource is not None and resource.canonical in OUTPOST_ROUTES


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
    return state.Principal(
        user=user, is_superuser=superuser, via="token", outpost=await _outpost_of(tx, user)
    )


async def _outpost_of(tx: store.Tx, user: dict[str, Any]) -> str | None:
    outpost = await outposts.of_user(tx, user)
    return None if outpost is None else str(outpost["pk"])


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
    return state.Principal(
        user=user, is_superuser=superuser, via="session", outpost=await _outpost_of(tx, user)
    )
