"""Device authorization (RFC 8628): `POST /application/o/device/` starts a grant; the user enters
its code at `/device` (logged in), goes through the provider's authorization flow, and the device
polls the token endpoint until then."""

from __future__ import annotations

import datetime as dt
import secrets
import urllib.parse

from aiohttp import web

from tessera.core import crypto, errors
from tessera.core import web as pages
from tessera.core.api import flows as flows_api
from tessera.core.flows import executor
from tessera.core.identity import sessions, util
from tessera.core.providers.oauth2 import grants, tokens
from tessera.core.providers.oauth2.resources import public_base
from tessera.core.providers.oauth2.service import Service
from tessera.core.store import crud

DEVICE_TTL_SECONDS = 600
INTERVAL = 5
ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # no vowels (no words), no look-alikes
GUESSES = 10  # wrong codes one browser may enter per window
GUESS_WINDOW = 600
PENDING_TTL = 900


def _user_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(8))


def normalize(code: str) -> str:
    return "".join(c for c in code.upper() if c in ALPHABET)[:8]


def pretty(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


async def authorization(
    request: web.Request, service: Service, form: dict[str, list[str]]
) -> web.Response:
    """The device's first request: a device code for it, a user code for the person."""
    parsed = grants.parse(
        {**form, "grant_type": [grants.DEVICE_GRANT]}, request.headers.get("Authorization", "")
    )
    client = await service.clients.by_client_id(parsed.client_id)
    if client is None or client.application is None:
        raise grants.invalid_client()
    if parsed.client_secret is not None:
        client = await grants.authenticate(service, parsed)
    scopes = [s for s in (parsed.scopes() or ["openid"]) if s == "openid" or s in client.mappings]
    device_code = tokens.new_secret()
    async with service.db.transaction() as tx:
        while True:
            user_code = _user_code()
            if not await crud.exists(tx, "oauth2_device_codes", user_code=user_code):
                break
        await crud.insert(
            tx,
            "oauth2_device_codes",
            {
                "digest": tokens.digest(service.keyring, device_code),
                "user_code": user_code,
                "provider": client.pk,
                "scope": " ".join(scopes),
                "status": "pending",
                "expires": util.now() + dt.timedelta(seconds=DEVICE_TTL_SECONDS),
            },
        )
    base = public_base(request)
    return web.json_response(
        {
            "device_code": device_code,
            "verification_uri": f"{base}/device",
            "verification_uri_complete": f"{base}/device?"
            + urllib.parse.urlencode({"code": pretty(user_code)}),
            "user_code": pretty(user_code),
            "expires_in": DEVICE_TTL_SECONDS,
            "interval": INTERVAL,
        },
        headers={"Cache-Control": "no-store"},
    )


def _login_redirect(request: web.Request) -> web.HTTPFound:
    query = urllib.parse.urlencode({"next": request.path_qs})
    return web.HTTPFound(f"/if/flow/{pages.AUTH_FLOW}/?{query}")


def _entry_page(
    request: web.Request,
    who: executor.Browser,
    code: str = "",
    message: str = "",
    status: int = 200,
) -> web.Response:
    return pages.render(
        request,
        "oauth2.html",
        status=status,
        title="Connect a device",
        page="device",
        code=code,
        message=message,
        csrf_token=pages.form_token(request, who.key),
    )


async def entry(request: web.Request, service: Service) -> web.StreamResponse:
    who = await flows_api.browser(request)
    if who.user is None:
        raise _login_redirect(request)
    return _entry_page(request, who, code=request.query.get("code", "")[:16])


async def submit(request: web.Request, service: Service) -> web.StreamResponse:
    who = await flows_api.browser(request)
    if who.user is None:
        raise _login_redirect(request)
    form = await request.post()
    token = form.get("csrf_token")
    if not isinstance(token, str) or not crypto.secrets.equal(
        token, pages.form_token(request, who.key)
    ):
        return _entry_page(request, who, message="The form expired; try again.", status=403)
    raw = form.get("code")
    code = normalize(raw if isinstance(raw, str) else "")
    guesses = f"oauth2:device-guesses:{sessions.digest(who.key)}"
    if await service.cache.incr(guesses, GUESS_WINDOW) > GUESSES:
        return _entry_page(
            request, who, message="Too many attempts; wait a few minutes.", status=429
        )
    async with service.db.read() as tx:
        row = await crud.find(tx, "oauth2_device_codes", user_code=code) if len(code) == 8 else None
    if row is None or row["status"] != "pending" or row["expires"] <= util.now():
        return _entry_page(request, who, message="This code is not valid.", status=400)
    snapshot = await service.clients.get()
    client = next((c for c in snapshot.by_client_id.values() if c.pk == row["provider"]), None)
    if client is None or client.application is None:
        return _entry_page(request, who, message="This code is not valid.", status=400)
    if not await grants.may_use(
        service, client, who.user, who.client_ip, {"oauth_grant_type": "device_code"}
    ):
        return _entry_page(
            request, who, message="You are not allowed to use this application.", status=403
        )
    key = secrets.token_urlsafe(32)
    await service.cache.set(_pending(key), {"digest": row["digest"]}, PENDING_TTL)
    finish = "/device/finish/?" + urllib.parse.urlencode({"k": key})
    refused = await service.flows.start(
        client.authorization_flow,
        who,
        context={
            "application": client.application["pk"],
            "consent_permissions": row["scope"].split(),
        },
        next_path=finish,
        done_key=key,
    )
    if refused:
        return _entry_page(request, who, message=refused, status=403)
    reply = await service.flows.get(client.authorization_flow, who, {})
    if reply.body.get("component") == executor.REDIRECT:
        raise web.HTTPFound(finish)
    raise web.HTTPFound(f"/if/flow/{client.authorization_flow}/")


def _pending(key: str) -> str:
    return "oauth2:device:" + crypto.secrets.sha256_hex(key[:128])


async def finish(request: web.Request, service: Service) -> web.StreamResponse:
    who = await flows_api.browser(request)
    if who.user is None:
        raise _login_redirect(request)
    key = request.query.get("k", "")
    pending = await service.cache.pop(_pending(key)) if key else None
    outcome = await service.flows.completed(who, key) if key else None
    if not isinstance(pending, dict) or outcome is None or outcome.get("user") != who.user["pk"]:
        return _entry_page(request, who, message="The authorization was not completed.", status=400)
    async with service.db.transaction() as tx:
        try:
            await crud.update(
                tx,
                "oauth2_device_codes",
                {"digest": pending["digest"], "status": "pending"},
                {
                    "status": "approved",
                    "user_pk": who.user["pk"],
                    "session_digest": sessions.digest(who.key),
                },
            )
        except errors.NotFound:
            return _entry_page(request, who, message="This code is no longer valid.", status=400)
    return pages.render(
        request,
        "oauth2.html",
        title="Device connected",
        page="message",
        message="Your device is connected. You can close this window.",
    )


__all__ = ["authorization", "entry", "finish", "submit"]
