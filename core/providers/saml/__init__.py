"""The SAML 2.0 identity provider: admin API resources and the `/application/saml/` endpoints.

`RESOURCES` (`/api/v3/providers/saml/`, `/api/v3/propertymappings/provider/saml/`) are
registered with the admin API by the app; `setup(app)` adds the endpoints, creates authentik's
system SAML property mappings at start-up, listens for ended sessions (back-channel logout) and
prepares the front-channel logout steps of logout flows (`frontchannel`).
It runs on the OAuth2 slice's `Service` (store, cache, keyring, flow executor), so it starts after
it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tessera.core import store
from tessera.core.api import flows as flows_api
from tessera.core.api import state
from tessera.core.providers.oauth2 import views as oauth2_views
from tessera.core.providers.saml import frontchannel, logout, records, resources, views
from tessera.core.providers.saml.resources import RESOURCES
from tessera.core.store import crud

NOTIFIER = web.AppKey("saml_notifier", logout.Notifier)


async def _start(app: web.Application) -> None:
    settings = app[state.SETTINGS]
    await records.ensure_default_mappings(app[state.STORE])
    base = settings.web.public_url.rstrip("/") or f"http://{settings.listen.http}"
    notifier = logout.Notifier(app[oauth2_views.SERVICE], base)
    app[NOTIFIER] = notifier
    app[flows_api.EXECUTOR].logout_listeners.append(notifier.session_ended)
    front = frontchannel.FrontChannel(app[oauth2_views.SERVICE], base)
    app[flows_api.EXECUTOR].before_logout.append(front.prepare)


async def _stop(app: web.Application) -> None:
    if NOTIFIER in app:
        await app[NOTIFIER].close()


def _launch_urls(app: web.Application) -> Any:
    """The providers' launch URLs as the slice before this one gives them, plus SAML
    applications' IdP-initiated SSO (authentik launches a SAML application that way)."""
    previous = app[state.PROVIDER_LAUNCH_URLS]

    async def launch_urls(tx: store.Tx, pks: list[int]) -> dict[int, str]:
        out = await previous(tx, pks)
        if not pks:
            return out
        saml = {r["pk"] for r in await crud.find_many(tx, records.TABLE, "pk", pks)}
        if saml:
            base = app[state.SETTINGS].web.public_url.rstrip("/")
            for found in await crud.find_many(tx, "applications", "provider", sorted(saml)):
                slug = found["slug"]
                out[found["provider"]] = f"{base}/application/saml/{slug}/sso/binding/init/"
        return out

    return launch_urls


def setup(app: web.Application) -> None:
    app[views.LOADED] = {}
    app[state.PROVIDER_LAUNCH_URLS] = _launch_urls(app)  # after the OAuth2 slice's
    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)
    r = app.router
    root = "/application/saml/{slug}/"
    r.add_get(root + "sso/binding/redirect/", views.sso, allow_head=False)
    r.add_post(root + "sso/binding/post/", views.sso)
    r.add_route("*", root + "sso/binding/init/", views.sso_init)
    r.add_get(root + "sso/continue/", views.sso_continue, allow_head=False)
    r.add_get(root + "slo/binding/redirect/", views.slo, allow_head=False)
    r.add_post(root + "slo/binding/post/", views.slo)
    r.add_get(root + "slo/binding/init/", views.slo_init, allow_head=False)
    r.add_get(root + "metadata/", views.metadata_view, allow_head=False)
    r.add_get(root, views.unified, allow_head=False)
    r.add_post(root, views.unified)
    r.add_route("*", root + "init/", views.sso_init)


__all__ = ["RESOURCES", "records", "resources", "setup", "views"]
