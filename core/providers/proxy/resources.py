"""Admin API: `/api/v3/providers/proxy/` and `/api/v3/outposts/proxy/` (authentik's shapes).

`providers/proxy/` is for admins (the operator's objects need its header, as every provider's).
`outposts/proxy/` is for outposts: a page of `ProxyOutpostConfig`, one for each proxy provider of
the calling outpost (found from its token) that an application uses.
"""

from __future__ import annotations

from typing import Any

from tessera.core import store, wire
from tessera.core.api import net, resource
from tessera.core.providers import base
from tessera.core.providers.proxy import configs, records

F = resource.FilterField


def _proxy(name: str, column: str) -> resource.FilterField:
    return base.detail(records.TABLE, name, column)


class ProxyProviders(base.ProviderResource):
    path = "providers/proxy"
    kind = records.KIND
    records = records
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

    async def create(self, ctx: resource.Ctx, body: Any) -> dict[str, Any]:
        return await records.create(ctx.tx, ctx.keyring, body)  # seals the new secrets


class OutpostProxyConfigs(base.OutpostConfigs):
    """The proxy outposts' listing."""

    path = "outposts/proxy"
    kind = records.KIND
    app_label = "authentik_providers_proxy"
    model_name = "proxyprovider"
    read_model = wire.outposts.ProxyOutpostConfig

    async def served(self, tx: store.Tx, outpost_pk: str) -> list[dict[str, Any]]:
        return await configs.served_providers(tx, outpost_pk)

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        return await configs.configs(ctx.tx, ctx.keyring, rows, net.public_base(ctx.request))


RESOURCES = (ProxyProviders(), OutpostProxyConfigs())
