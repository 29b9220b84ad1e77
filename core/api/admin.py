"""`/api/v3/admin/`: `version/`, `system/` and `settings/`, the endpoints scripts call first.

- `version/` (any authenticated caller, as in authentik): the authentik release whose API Tessera
  speaks. Tessera does not ask the internet for newer releases, so it never claims to know the
  latest one (`version_latest_valid` false) nor to be outdated.
- `system/` (superusers): the request as the core saw it and the runtime. # SECURITY: headers
  that carry credentials (`Authorization`, `Cookie`) are left out of `http_headers`.
- `settings/` (superusers; GET, PUT, PATCH): authentik's system settings. Tessera keeps the ones
  its behaviour reads (`avatars`, `event_retention`) in `store.system_settings`; every other
  setting shows what Tessera does, and a request that asks for anything else is refused with a
  400 naming the field, rather than stored and ignored.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import ssl
from typing import Any

import pydantic
from aiohttp import web

from tessera.core import errors, wire
from tessera.core.api import auth, http, net, state
from tessera.core.store import system_settings

# The authentik release whose API Tessera follows (the `authentik-client` the tests drive).
AUTHENTIK_VERSION = "2026.8.5"
STORED = frozenset({"avatars", "event_retention"})
_HIDDEN_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
# Why a fixed setting cannot change: what Tessera does instead.
_FIXED_BECAUSE = {
    "base_url": "Tessera takes its base URL from the configuration (web.public_url).",
    "default_user_change_name": "Tessera's user settings flow always lets users change it.",
    "default_user_change_email": "Tessera's user settings flow always lets users change it.",
    "default_user_change_username": "Tessera's user settings flow always lets users change it.",
    "reputation_lower_limit": "Tessera keeps reputation scores within -20 and 5.",
    "reputation_upper_limit": "Tessera keeps reputation scores within -20 and 5.",
    "footer_links": "Tessera's pages show no footer links.",
    "gdpr_compliance": "Tessera keeps a deleted user's events until they expire.",
    "impersonation": "Tessera has no impersonation.",
    "impersonation_require_reason": "Tessera has no impersonation.",
    "default_token_duration": "Tessera's tokens expire after 30 minutes unless given a time.",
    "default_token_length": "Tessera's token keys are 60 characters long.",
    "pagination_default_page_size": "Tessera's pages hold 20 objects unless asked for more.",
    "pagination_max_page_size": "Tessera's pages hold at most 100 objects.",
    "flags": "Tessera lets anyone open an application without policies, and has none of the "
    "other flags' behaviours.",
}


async def version(request: web.Request) -> web.Response:
    await auth.authenticate(request)
    return http.respond(
        wire.admin.Version(
            version_current=AUTHENTIK_VERSION,
            version_latest=AUTHENTIK_VERSION,
            version_latest_valid=False,
            build_hash="",
            outdated=False,
            outpost_outdated=False,
        )
    )


def _environment() -> str:
    """authentik's names for where it runs."""
    if "KUBERNETES_SERVICE_HOST" in os.environ:
        return "kubernetes"
    if os.path.exists("/.dockerenv"):
        return "compose"
    return "custom"


def _base_url(request: web.Request) -> str:
    return request.app[state.SETTINGS].web.public_url.rstrip("/")


async def system(request: web.Request) -> web.Response:
    await auth.require_superuser(request)
    scheme = "https" if net.is_secure(request) else "http"
    return http.respond(
        wire.admin.SystemInfo(
            http_headers={
                k: v for k, v in request.headers.items() if k.lower() not in _HIDDEN_HEADERS
            },
            http_host=request.host,
            http_is_secure=net.is_secure(request),
            runtime=wire.admin.SystemInfoRuntime(
                python_version=platform.python_version(),
                environment=_environment(),
                architecture=platform.machine(),
                platform=platform.platform(),
                uname=" ".join(platform.uname()),
                openssl_version=ssl.OPENSSL_VERSION,
                openssl_fips_enabled=None,  # not known without asking the provider
                authentik_version=AUTHENTIK_VERSION,
            ),
            brand="",  # Tessera has no brands
            server_time=dt.datetime.now(dt.UTC),
            embedded_outpost_disabled=request.app[state.SETTINGS].outposts.disable_embedded_outpost,
            embedded_outpost_host=_base_url(request) or f"{scheme}://{request.host}",
            base_url=_base_url(request),
        )
    )


def _defaults(request: web.Request) -> wire.admin.SettingsRequest:
    config = request.app[state.SETTINGS]
    return wire.admin.SettingsRequest(
        base_url=_base_url(request), event_retention=f"days={config.events.retention_days}"
    )


async def _current(request: web.Request) -> wire.admin.SettingsRequest:
    async with request.app[state.STORE].read() as tx:
        stored = await system_settings.stored(tx)
    values = _defaults(request).model_dump()
    for name in sorted(STORED & set(stored)):
        try:
            wire.admin.SettingsRequest.model_validate({**values, name: stored[name]})
        except pydantic.ValidationError:
            continue  # stored under other rules than today's: the default stands
        values[name] = stored[name]
    return wire.admin.SettingsRequest.model_validate(values)


def _out(current: wire.admin.SettingsRequest) -> wire.admin.Settings:
    return wire.admin.Settings.model_validate(current.model_dump())


async def settings(request: web.Request) -> web.Response:
    await auth.require_superuser(request)
    return http.respond(_out(await _current(request)))


async def _change(request: web.Request, partial: bool) -> web.Response:
    await auth.require_superuser(request)
    data = await http.read_json(request)
    current = await _current(request)
    base = current.model_dump() if partial else None
    body = http.validate(wire.admin.SettingsRequest, data, base=base)
    fixed = _defaults(request).model_dump()
    refused = {
        name: [_FIXED_BECAUSE[name]]
        for name, value in body.model_dump().items()
        if name not in STORED and value != fixed[name]
    }
    if refused:
        raise errors.ValidationFailed(refused)
    values = {name: getattr(body, name) for name in sorted(STORED)}
    async with request.app[state.STORE].transaction() as tx:
        await system_settings.save(tx, values)
    return http.respond(_out(body))


async def update(request: web.Request) -> web.Response:
    return await _change(request, partial=False)


async def partial_update(request: web.Request) -> web.Response:
    return await _change(request, partial=True)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/v3/admin/version/", version, allow_head=False),
        web.get("/api/v3/admin/system/", system, allow_head=False),
        web.post("/api/v3/admin/system/", system),
        web.get("/api/v3/admin/settings/", settings, allow_head=False),
        web.put("/api/v3/admin/settings/", update),
        web.patch("/api/v3/admin/settings/", partial_update),
    ]


REF = "#/components/schemas/{model}"  # as `api.openapi` names the models


def _json(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}}}


def _operation(
    name: str,
    summary: str,
    response: type[pydantic.BaseModel],
    body: type[pydantic.BaseModel] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"admin_{name}",
        "tags": ["admin"],
        "summary": summary,
        "responses": {"200": {"description": "OK", **_json(response)}},
    }
    if body is not None:
        op["requestBody"] = {"required": True, **_json(body)}
    return op


def openapi_paths() -> dict[str, Any]:
    """The OpenAPI description of these endpoints (their models: `MODELS`)."""
    info, settings_, request = (
        wire.admin.SystemInfo,
        wire.admin.Settings,
        wire.admin.SettingsRequest,
    )
    return {
        "/admin/version/": {
            "get": _operation("version_retrieve", "The running version", wire.admin.Version)
        },
        "/admin/system/": {
            "get": _operation("system_retrieve", "System information", info),
            "post": _operation("system_create", "System information", info),
        },
        "/admin/settings/": {
            "get": _operation("settings_retrieve", "The system settings", settings_),
            "put": _operation("settings_update", "Change the settings", settings_, request),
            # Every field of the request is optional: PATCH takes the same model.
            "patch": _operation("settings_partial_update", "Change some", settings_, request),
        },
    }


MODELS: list[type[pydantic.BaseModel]] = [
    wire.admin.Version,
    wire.admin.SystemInfo,
    wire.admin.Settings,
    wire.admin.SettingsRequest,
]
