"""`/api/v3/root/config/` (public) and `/recovery/use-token/<key>/` (single-use login links)."""

from __future__ import annotations

import datetime as dt
import secrets

from aiohttp import web

from tessera.core import events, wire
from tessera.core.api import auth, http, net, state
from tessera.core.identity import sessions, tokens
from tessera.core.store import crud

_ROUTE = "/recovery/use-token/{key}/"  # the recovery link's route, as the app registers it
CAPABILITIES: list[wire.root.Capability] = []  # authentik's optional capabilities; none enabled yet


async def config(request: web.Request) -> web.Response:
    settings = request.app[state.SETTINGS]
    body = wire.root.Config(
        error_reporting=wire.root.ErrorReportingConfig(
            enabled=settings.error_reporting.enabled,
            sentry_dsn="",
            environment="",
            send_pii=False,
            traces_sample_rate=0.0,
        ),
        capabilities=CAPABILITIES,
        cache_timeout=300,
        cache_timeout_flows=300,
        cache_timeout_policies=int(settings.cache.timeout_policies),
    )
    return http.respond(body)


def set_session_cookies(
    request: web.Request, response: web.StreamResponse, key: str, ttl: dt.timedelta | None
) -> None:
    """The session cookie and its CSRF cookie; `ttl` None makes them browser-session cookies
    (no Max-Age), as a user_login stage with `session_duration` `seconds=0` wants."""
    secure = net.is_secure(request)
    max_age = int(ttl.total_seconds()) if ttl is not None else None
    response.set_cookie(
        sessions.COOKIE,
        key,
        max_age=max_age,
        httponly=True,
        samesite="Lax",
        secure=secure,
        path="/",
    )
    response.set_cookie(
        auth.CSRF_COOKIE,
        secrets.token_urlsafe(32),
        max_age=max_age,
        samesite="Lax",
        secure=secure,
        path="/",
    )


async def use_recovery_token(request: web.Request) -> web.StreamResponse:
    """Log the token's user in once; the token is deleted in the same transaction."""
    key = request.match_info["key"]
    settings = request.app[state.SETTINGS]
    ttl = dt.timedelta(hours=settings.sessions.duration_hours)
    async with request.app[state.STORE].transaction() as tx:
        found = None
        if 0 < len(key) <= 128:
            found = await tokens.authenticate(
                tx, request.app[state.KEYRING], key, intent="recovery"
            )
        if found is None:
            raise web.HTTPNotFound(text="Token not found or expired.\n")
        token, user = found
        # SECURITY: single use even under concurrent requests: only the deleter logs in.
        if await crud.delete(tx, tokens.TABLE, pk=token["pk"]) != 1:
            raise web.HTTPNotFound(text="Token not found or expired.\n")
        session_key, _ = await sessions.create(
            tx,
            user["pk"],
            ttl,
            ip=net.client_ip(request) or "",
            user_agent=request.headers.get("User-Agent", ""),
        )
        await events.record(
            tx,
            "login",
            user=user,
            client_ip=net.client_ip(request),
            context={
                "method": "recovery",
                "identifier": token["identifier"],
                # SECURITY: the route's pattern, not the path, which holds the recovery key.
                "http_request": events.http_request(
                    request.method, _ROUTE, request.headers.get("User-Agent", "")
                ),
            },
            retention=state.retention(request),
        )
    response = web.HTTPFound("/if/user/")
    set_session_cookies(request, response, session_key, ttl)
    raise response
