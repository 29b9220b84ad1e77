"""The OAuth2 / OpenID Connect provider: admin API resources and the `/application/o/` endpoints.

`RESOURCES` are registered with the admin API by the app; `setup(app)` adds the endpoints and
builds the shared `Service` once the cache exists.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from authlib.oauth2.rfc6749 import errors as oauth_errors

from tessera.core.api import flows as flows_api
from tessera.core.api import state
from tessera.core.providers.oauth2 import cors, device, logout, records, service, views
from tessera.core.providers.oauth2.resources import RESOURCES

NOTIFIER = web.AppKey("oauth2_notifier", logout.Notifier)


async def _start(app: web.Application) -> None:
    """After the flow executor exists (its own on_startup hook, registered before this one)."""
    settings = app[state.SETTINGS]
    built = service.build(
        app[state.STORE], app[state.CACHE], app[state.KEYRING], settings, app[flows_api.EXECUTOR]
    )
    app[views.SERVICE] = built
    await records.ensure_default_mappings(app[state.STORE])
    base = settings.web.public_url.rstrip("/") or f"http://{settings.listen.http}"
    notifier = logout.Notifier(built, base)
    app[NOTIFIER] = notifier
    app[flows_api.EXECUTOR].logout_listeners.append(notifier.session_ended)


async def _stop(app: web.Application) -> None:
    if NOTIFIER in app:
        await app[NOTIFIER].close()


def _with_service(handler: Any) -> Any:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request, request.app[views.SERVICE])
        return response

    return wrapped


async def _device_authorization(request: web.Request) -> web.StreamResponse:
    try:
        form = await views._form(request)
        return await device.authorization(request, request.app[views.SERVICE], form)
    except oauth_errors.OAuth2Error as exc:
        return views._oauth_error(exc, basic=True)


async def _end_session(request: web.Request) -> web.StreamResponse:
    client = await views._client_of_slug(request)
    return await logout.end_session(request, request.app[views.SERVICE], client)


async def _slug_origins(request: web.Request, response: web.StreamResponse) -> cors.Origins:
    client = await request.app[views.SERVICE].clients.by_slug(request.match_info["slug"])
    return cors.client_origins(client) if client is not None else frozenset()


async def _named_client_origins(request: web.Request, response: web.StreamResponse) -> cors.Origins:
    clients = request.app[views.SERVICE].clients
    client_id = await cors.client_id_of(request)
    client = await clients.by_client_id(client_id) if client_id else None
    if client is not None:
        return cors.client_origins(client)
    return cors.all_origins(await clients.get())


async def _token_holder_origins(request: web.Request, response: web.StreamResponse) -> cors.Origins:
    clients = request.app[views.SERVICE].clients
    if response.status == 200:  # the handler verified the token: its audience is the client
        audience = await cors.audience_of(request)
        client = await clients.by_client_id(audience) if audience else None
        return cors.client_origins(client) if client is not None else frozenset()
    return cors.all_origins(await clients.get())


def setup(app: web.Application) -> None:
    app[state.PROVIDER_OBJECTS] = records.serialize_any
    app[state.PROVIDER_LAUNCH_URLS] = records.launch_urls
    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)
    r = app.router
    r.add_route("*", "/application/o/authorize/", views.authorize)
    # The endpoints a browser app calls from its own origin: CORS, preflights answered (`cors`).
    for path, handler in (
        ("/application/o/token/", views.token),
        ("/application/o/introspect/", views.introspect),
        ("/application/o/revoke/", views.revoke),
        ("/application/o/device/", _device_authorization),
    ):
        with_cors = cors.wrap(handler, _named_client_origins)
        r.add_post(path, with_cors)
        r.add_route("OPTIONS", path, with_cors)
    r.add_route("*", "/application/o/userinfo/", cors.wrap(views.userinfo, _token_holder_origins))
    r.add_get("/device", _with_service(device.entry))
    r.add_post("/device", _with_service(device.submit))
    r.add_get("/device/finish/", _with_service(device.finish))
    for path, handler in (
        ("/application/o/{slug}/.well-known/openid-configuration", views.discovery),
        ("/.well-known/oauth-authorization-server/application/o/{slug}/", views.discovery),
        ("/application/o/{slug}/jwks/", views.jwks),
    ):
        with_cors = cors.wrap(handler, _slug_origins)
        r.add_get(path, with_cors)
        r.add_route("OPTIONS", path, with_cors)
    r.add_route("*", "/application/o/{slug}/end-session/", _end_session)
    r.add_get("/application/o/{slug}/end-session/done/", _with_service(logout.end_session_done))
    r.add_get("/application/o/{slug}/", views.provider_root)


__all__ = ["RESOURCES", "setup"]
