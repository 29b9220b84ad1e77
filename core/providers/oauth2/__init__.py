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
from tessera.core.providers.oauth2 import device, logout, records, service, views
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


def setup(app: web.Application) -> None:
    app[state.PROVIDER_OBJECTS] = records.serialize_any
    app[state.PROVIDER_LAUNCH_URLS] = records.launch_urls
    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)
    r = app.router
    r.add_route("*", "/application/o/authorize/", views.authorize)
    r.add_post("/application/o/token/", views.token)
    r.add_route("*", "/application/o/userinfo/", views.userinfo)
    r.add_post("/application/o/introspect/", views.introspect)
    r.add_post("/application/o/revoke/", views.revoke)
    r.add_post("/application/o/device/", _device_authorization)
    r.add_get("/device", _with_service(device.entry))
    r.add_post("/device", _with_service(device.submit))
    r.add_get("/device/finish/", _with_service(device.finish))
    r.add_get("/application/o/{slug}/.well-known/openid-configuration", views.discovery)
    r.add_get("/.well-known/oauth-authorization-server/application/o/{slug}/", views.discovery)
    r.add_get("/application/o/{slug}/jwks/", views.jwks)
    r.add_route("*", "/application/o/{slug}/end-session/", _end_session)
    r.add_get("/application/o/{slug}/end-session/done/", _with_service(logout.end_session_done))
    r.add_get("/application/o/{slug}/", views.provider_root)


__all__ = ["RESOURCES", "setup"]
