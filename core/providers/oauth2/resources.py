"""Admin API: `/api/v3/providers/oauth2/`, `/api/v3/providers/all/` and
`/api/v3/propertymappings/provider/scope/` (authentik's paths and shapes)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tessera.core import errors, wire
from tessera.core.api import http, net, resource, state
from tessera.core.identity import util
from tessera.core.policies import sandbox
from tessera.core.providers import base
from tessera.core.providers.oauth2 import records
from tessera.core.store import crud

F = resource.FilterField


class OAuth2Providers(base.ProviderResource):
    path = "providers/oauth2"
    kind = "oauth2"
    records = records
    app_label = "authentik_providers_oauth2"
    model_name = "oauth2provider"
    read_model = wire.oauth2.OAuth2Provider
    request_model = wire.oauth2.OAuth2ProviderRequest
    filters = (F("name", "name"), F("managed", "managed"))

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        return await records.serialize(ctx.tx, ctx.keyring, rows)

    async def create(self, ctx: resource.Ctx, body: Any) -> dict[str, Any]:
        return await records.create(ctx.tx, ctx.keyring, body)

    async def update(self, ctx: resource.Ctx, row: dict[str, Any], body: Any) -> dict[str, Any]:
        return await records.update(ctx.tx, ctx.keyring, row, body)

    def actions(self) -> list[resource.Action]:
        return [
            resource.Action(
                "setup_urls",
                "GET",
                self._setup_urls,
                detail=True,
                response=wire.oauth2.OAuth2ProviderSetupUrls,
                summary="The URLs a relying party is configured with.",
            )
        ]

    async def _setup_urls(self, request: web.Request) -> web.Response:
        async with request.app[state.STORE].read() as tx:
            ctx = resource.Ctx(request, await resource.guard(request, tx), tx)
            row = await self.get_row(ctx, request.match_info["lookup"])
            app = await crud.find(tx, "applications", provider=row["pk"])
            oauth = await crud.get(tx, records.TABLE, pk=row["pk"])
        base = public_base(request)
        slug = app["slug"] if app else ""
        issuer = (
            f"{base}/application/o/{slug}/"
            if oauth["issuer_mode"] == "per_provider"
            else base + "/"
        )
        return http.respond(
            wire.oauth2.OAuth2ProviderSetupUrls(
                issuer=issuer,
                authorize=f"{base}/application/o/authorize/",
                token=f"{base}/application/o/token/",
                user_info=f"{base}/application/o/userinfo/",
                provider_info=f"{base}/application/o/{slug}/.well-known/openid-configuration",
                logout=f"{base}/application/o/{slug}/end-session/",
                jwks=f"{base}/application/o/{slug}/jwks/",
                dcr_registration=None,
            )
        )


class Providers(resource.Resource):
    """Every provider, whatever its kind (read and delete)."""

    path = "providers/all"
    table = "providers"
    tag = "providers"
    app_label = "authentik_providers"
    model_name = "provider"
    read_model = wire.oauth2.Provider
    lookup_kind = "int"
    allow_delete = True
    guard_managed = True
    filters = (F("name", "name"), F("managed", "managed"))
    search_columns = ("name",)
    ordering_columns = ("name", "pk")
    default_ordering = ("name",)

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        return await records.serialize_any(ctx.tx, rows)


class ScopeMappings(resource.Resource):
    path = "propertymappings/provider/scope"
    table = records.MAPPINGS
    tag = "propertymappings"
    app_label = "authentik_providers_oauth2"
    model_name = "scopemapping"
    read_model = wire.oauth2.ScopeMapping
    request_model = wire.oauth2.ScopeMappingRequest
    filters = (
        F("name", "name"),
        F("scope_name", "scope_name"),
        F("managed", "managed"),
        F("managed__isnull", "managed", "isnull", "bool"),
    )
    search_columns = ("name", "scope_name")
    ordering_columns = ("name", "scope_name")
    default_ordering = ("name",)

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        return records.serialize_mappings(rows)

    def _check(self, body: wire.oauth2.ScopeMappingRequest) -> None:
        if body.managed is not None:
            raise errors.ValidationFailed.one(
                "managed", "Only Tessera's system scope mappings are managed; leave this empty."
            )
        try:
            sandbox.compile(body.expression)
        except sandbox.SandboxError as exc:
            raise errors.ValidationFailed.one("expression", str(exc)) from None

    async def create(self, ctx: resource.Ctx, body: Any) -> dict[str, Any]:
        self._check(body)
        return await crud.insert(
            ctx.tx,
            self.table,
            {**body.model_dump(), "pk": util.new_uuid(), "created": util.now()},
        )

    async def update(self, ctx: resource.Ctx, row: dict[str, Any], body: Any) -> dict[str, Any]:
        if row["managed"]:
            raise errors.PermissionDenied("System scope mappings cannot be changed; copy one.")
        self._check(body)
        return await crud.update(ctx.tx, self.table, {"pk": row["pk"]}, body.model_dump())

    async def writable(self, ctx: resource.Ctx, row: dict[str, Any]) -> dict[str, Any]:
        return {k: row[k] for k in wire.oauth2.ScopeMappingRequest.model_fields}

    async def delete(self, ctx: resource.Ctx, row: dict[str, Any]) -> None:
        if row["managed"]:
            raise errors.PermissionDenied("System scope mappings cannot be deleted.")
        await super().delete(ctx, row)


def public_base(request: web.Request) -> str:
    """This server's external URL: the configured public URL, else what the request says."""
    configured = request.app[state.SETTINGS].web.public_url.rstrip("/")
    if configured:
        return configured
    scheme = "https" if net.is_secure(request) else "http"
    return f"{scheme}://{request.host}"


RESOURCES = (OAuth2Providers(), Providers(), ScopeMappings())
