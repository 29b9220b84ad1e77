"""RP-initiated logout (`/application/o/<slug>/end-session/`) and back-channel logout notices.

End-session runs the provider's invalidation flow for a logged-in browser, then goes back to
`post_logout_redirect_uri` only when it is registered for the client (type `logout`) and the
`id_token_hint` was issued by this provider; otherwise it shows a page here. When a flow logs a
user out, every relying party that received tokens in that session and registered a back-channel
`logout_uri` gets a signed logout token, and the grants of that session are revoked.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import urllib.parse
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from tessera.core import crypto
from tessera.core import web as pages
from tessera.core.api import flows as flows_api
from tessera.core.providers.oauth2 import tokens
from tessera.core.providers.oauth2.clients import Client
from tessera.core.providers.oauth2.resources import public_base
from tessera.core.providers.oauth2.service import Service
from tessera.core.store import crud

log = structlog.get_logger(__name__)
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
NOTICE_TIMEOUT = 5.0
PENDING_TTL = 900


def _key(key: str) -> str:
    return "oauth2:end-session:" + crypto.secrets.sha256_hex(key[:128])


def _hint_ok(client: Client, hint: str) -> bool:
    """An ID token this provider issued to this client (expired ones are fine for a hint)."""
    try:
        _header, claims = crypto.jwt.verify(hint, client.verify_keys)
    except crypto.jwt.InvalidToken:
        return False
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    return client.client_id in auds


async def end_session(request: web.Request, service: Service, client: Client) -> web.StreamResponse:
    params: dict[str, str] = {}
    source: Any = request.query
    if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
        source = await request.post()
    for name in ("id_token_hint", "post_logout_redirect_uri", "state", "client_id"):
        value = source.get(name)
        if isinstance(value, str) and len(value) <= 16384:
            params[name] = value
    target = params.get("post_logout_redirect_uri")
    hint = params.get("id_token_hint")
    if target is not None:
        trusted = (hint is not None and _hint_ok(client, hint)) or (
            hint is None and params.get("client_id") == client.client_id
        )
        if not trusted or not client.redirect_allowed(target, "logout"):
            target = None
    if target is not None and params.get("state"):
        joiner = "&" if urllib.parse.urlsplit(target).query else "?"
        target += joiner + urllib.parse.urlencode({"state": params["state"]})
    who = await flows_api.browser(request)
    if who.user is None or not client.invalidation_flow:
        return _finish(request, target)
    key = secrets.token_urlsafe(32)
    slug = client.application["slug"] if client.application else ""
    done_path = f"/application/o/{slug}/end-session/done/?" + urllib.parse.urlencode({"k": key})
    await service.cache.set(_key(key), {"target": target}, PENDING_TTL)
    refused = await service.flows.start(
        client.invalidation_flow, who, context={}, next_path=done_path, done_key=key
    )
    if refused:
        return _finish(request, target)
    raise web.HTTPFound(f"/if/flow/{client.invalidation_flow}/")


async def end_session_done(request: web.Request, service: Service) -> web.StreamResponse:
    key = request.query.get("k", "")
    pending = await service.cache.pop(_key(key)) if key else None
    target = pending.get("target") if isinstance(pending, dict) else None
    return _finish(request, target if isinstance(target, str) else None)


def _finish(request: web.Request, target: str | None) -> web.StreamResponse:
    if target:
        raise web.HTTPFound(target)
    return pages.render(
        request,
        "oauth2.html",
        title="Logged out",
        page="message",
        message="You have been logged out.",
    )


# Back-channel logout -------------------------------------------------------------------------


class Notifier:
    """Sends back-channel logout tokens in the background (a slow RP never holds up logout)."""

    def __init__(self, service: Service, base_url: str) -> None:
        self.service = service
        self.base_url = base_url
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None

    async def session_ended(self, session_digest: str, user: dict[str, Any]) -> None:
        try:
            await self._revoke_and_notify(session_digest, user)
        except Exception:  # a listener must not break the logout that called it
            log.exception("backchannel_logout_failed")

    async def _revoke_and_notify(self, session_digest: str, user: dict[str, Any]) -> None:
        service = self.service
        async with service.db.transaction() as tx:
            rows = await crud.rows(
                tx,
                "oauth2_grants",
                [
                    crud.Filter("session_digest", "eq", session_digest),
                    crud.Filter("revoked", "eq", False),
                ],
            )
            for row in rows:
                await tokens.revoke_grant(tx, row["pk"])
        providers = {row["provider"] for row in rows}
        snapshot = await service.clients.get()
        for client in snapshot.by_client_id.values():
            if (
                client.pk in providers
                and client.logout_uri
                and client.logout_method == "backchannel"
            ):
                token = self._logout_token(client, user, session_digest)
                task = asyncio.create_task(self._send(client.logout_uri, token))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _logout_token(self, client: Client, user: dict[str, Any], sid: str) -> str:
        now = int(time.time())
        claims = {
            "iss": client.issuer(self.base_url),
            "aud": client.client_id,
            "iat": now,
            "exp": now + 120,
            "jti": secrets.token_hex(16),
            "sub": tokens.sub_of(client, user, self.service.keyring),
            "sid": sid,
            "events": {BACKCHANNEL_EVENT: {}},
        }
        return crypto.jwt.sign(claims, client.signing, typ="logout+jwt")

    async def _send(self, url: str, token: str) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=NOTICE_TIMEOUT))
        try:
            async with self._http.post(url, data={"logout_token": token}) as answer:
                if answer.status >= 400:
                    log.warning("backchannel_logout_refused", url=url, status=answer.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("backchannel_logout_unreachable", url=url, error=type(exc).__name__)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=NOTICE_TIMEOUT)
        if self._http is not None:
            await self._http.close()


__all__ = ["Notifier", "end_session", "end_session_done", "public_base"]
