"""Admin API: `/api/v3/providers/proxy/` and `/api/v3/outposts/proxy/` (authentik's shapes).

`providers/proxy/` is for admins (the operator's objects need its header, as every provider's).
`outposts/proxy/` is for outposts: a page of `ProxyOutpostConfig`, one for each proxy provider of
the calling outpost (found from its token) that an application uses.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tessera.core import errors, store, wire
from tessera.core.api import auth, net, resource, state
from tessera.core.providers import base
from tessera.core.providers.proxy import configs, records
from tessera.core.store import crud

F = resource.FilterField


def _proxy(name: str, column: str) -> resource.FilterField:
    return base.detail(records.TABLE, name, column)


class ProxyProviders(base.ProviderResource):
    path = "providers/proxy"
    kind = records.KIND
    app_label = "authentik_providers_proxy"
    model_name = "proxyprovider"
    read_model = wire.outposts.ProxyProvider
    request_model = wire.outposts.ProxyProviderRequest
    filters = (
        F("name__iexact", "name", "ieq"),
        F("managed", "managed"),
        _proxy("mode__iexact", "mode"),
        _proxy("external_host__iexact", "external_host"),
        _proxy("internal_host__iexact", "internal_host"),
        _proxy("cookie_domain__iexact", "cookie_domain"),
    )

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        return await records.serialize(ctx.tx, rows)

    async def create(self, ctx: resource.Ctx, body: Any) -> dict[str, Any]:
        return await records.create(ctx.tx, ctx.keyring, body)

    async def update(self, ctx: resource.Ctx, row: dict[str, Any], body: Any) -> dict[str, Any]:
        return await records.update(ctx.tx, row, body)

    async def writable(self, ctx: resource.Ctx, row: dict[str, Any]) -> dict[str, Any]:
        return await records.writable(ctx.tx, row)


class OutpostProxyConfigs(resource.Resource):
    """A listing only, for an outpost's token (authentik's `IsOutpostServiceAccount`)."""

    path = "outposts/proxy"
    table = "providers"
    tag = "outposts"
    app_label = "authentik_providers_proxy"
    model_name = "proxyprovider"
    read_model = wire.outposts.ProxyOutpostConfig
    allow_retrieve = False
    filters = (F("name", "name"),)
    search_columns = ("name",)
    ordering_columns = ("name",)
    default_ordering = ("name",)

    async def authorize(self, request: web.Request, tx: store.Tx | None = None) -> state.Principal:
        principal = await auth.authenticate(request, tx)
        if principal.outpost is None:
            raise errors.PermissionDenied("Only an outpost's token reads its providers' settings.")
        return principal

    def query(self, ctx: resource.Ctx) -> crud.Query:
        # SECURITY: the calling outpost's own providers only, proxy ones with an application.
        outpost = ctx.principal.outpost
        mine = crud.Lookup("outpost_providers", "provider", "outpost", outpost)
        return crud.Query(
            filters=[crud.Filter("pk", "in", mine), crud.Filter("component", "eq", records.KIND)]
        )

    async def narrowing(
        self, ctx: resource.Ctx, params: Any, detail: bool
    ) -> resource.Narrow | None:
        """Of those, the providers an application uses (authentik serves no other)."""
        assert ctx.principal.outpost is not None
        served = {b["pk"] for b in await configs.served_providers(ctx.tx, ctx.principal.outpost)}

        async def keep(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [r for r in rows if r["pk"] in served]

        return keep

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        return await configs.configs(ctx.tx, ctx.keyring, rows, net.public_base(ctx.request))


RESOURCES = (ProxyProviders(), OutpostProxyConfigs())
