"""Admin API: `/api/v3/providers/ldap/` (with `search_access/`) and `/api/v3/outposts/ldap/`
(with the outpost's calls), authentik's paths and shapes.

`providers/ldap/` is for admins (the operator's objects need its header, as every provider's);
`search_access/` reads and replaces who holds "search full directory" on a provider (`grants`).
`outposts/ldap/` is for outposts: a page of `LDAPOutpostConfig`, one for each LDAP provider of
the calling outpost (found from its token) that an application uses; under it, per provider,
the calls of `calls`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tessera.core import errors, events, store, wire
from tessera.core.api import http, resource, state
from tessera.core.providers import base
from tessera.core.providers.ldap import calls, configs, grants, records

F = resource.FilterField


def _ldap(name: str, column: str) -> resource.FilterField:
    return base.detail(records.TABLE, name, column)


class LDAPProviders(base.ProviderResource):
    path = "providers/ldap"
    kind = records.KIND
    records = records
    app_label = "authentik_providers_ldap"
    model_name = "ldapprovider"
    read_model = wire.ldap.LDAPProvider
    request_model = wire.ldap.LDAPProviderRequest
    filters = (
        F("name", "name"),
        F("name__iexact", "name", "ieq"),
        F("managed", "managed"),
        _ldap("base_dn", "base_dn"),
        _ldap("search_mode", "search_mode"),
        _ldap("bind_mode", "bind_mode"),
        _ldap("tls_server_name", "tls_server_name"),
        _ldap("certificate", "certificate"),
    )

    def actions(self) -> list[resource.Action]:
        return [
            resource.Action(
                "search_access",
                "GET",
                self._search_access,
                detail=True,
                response=wire.ldap.LDAPSearchAccess,
                summary="Who may search this provider's whole directory (users and groups).",
            ),
            resource.Action(
                "search_access",
                "PUT",
                self._set_search_access,
                detail=True,
                request=wire.ldap.LDAPSearchAccessRequest,
                response=wire.ldap.LDAPSearchAccess,
                summary="Replace who may search this provider's whole directory.",
            ),
        ]

    async def _provider(self, ctx: resource.Ctx) -> dict[str, Any]:
        row = await self.get_row(ctx, ctx.request.match_info["lookup"])
        if not self.visible(ctx, row):
            raise errors.NotFound(ctx.request.match_info["lookup"])
        return row

    async def _search_access(self, request: web.Request) -> web.Response:
        async with request.app[state.STORE].read() as tx:
            ctx = resource.Ctx(request, await self.authorize(request, tx), tx)
            row = await self._provider(ctx)
            return http.respond(await grants.holders(tx, row["pk"]))

    async def _set_search_access(self, request: web.Request) -> web.Response:
        principal = await self.authorize(request)
        body = await http.read_body(request, wire.ldap.LDAPSearchAccessRequest)
        async with request.app[state.STORE].transaction() as tx:
            ctx = resource.Ctx(request, principal, tx)
            row = await self._provider(ctx)
            resource.check_managed(request, row.get("managed"))
            before = await grants.holders(tx, row["pk"])
            after = await grants.replace(tx, row["pk"], body)
            diff = events.diff(
                {"search_access": before.model_dump(mode="json")},
                {"search_access": after.model_dump(mode="json")},
            )
            await self.record(ctx, "model_updated", row, diff=diff)
        return http.respond(after)


class OutpostLDAPConfigs(base.OutpostConfigs):
    """The LDAP outposts' listing, and the outpost's calls per provider."""

    path = "outposts/ldap"
    kind = records.KIND
    app_label = "authentik_providers_ldap"
    model_name = "ldapprovider"
    read_model = wire.ldap.LDAPOutpostConfig

    async def served(self, tx: store.Tx, outpost_pk: str) -> list[dict[str, Any]]:
        return await configs.served(tx, outpost_pk)

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        return await configs.configs(ctx.tx, rows)

    def actions(self) -> list[resource.Action]:
        return [
            resource.Action(
                "check_access",
                "GET",
                calls.check_access,
                detail=True,
                superuser=False,
                response=wire.ldap.LDAPCheckAccess,
                summary="The caller's (or, for an outpost, a bound session's) access.",
                params=(
                    ("app_slug", "str", "The application's slug"),
                    ("session_id", "str", "A session a bind opened (an outpost's call)"),
                ),
            ),
            resource.Action(
                "bind",
                "POST",
                calls.bind_,
                request=wire.ldap.BindRequest,
                response=wire.ldap.BindResult,
                summary="Run the bind flow and the application's policies for a simple bind.",
                detail=True,
                superuser=False,
            ),
            resource.Action(
                "unbind",
                "POST",
                calls.unbind,
                request=wire.ldap.UnbindRequest,
                status=204,
                summary="End the session a bind opened.",
                detail=True,
                superuser=False,
            ),
            resource.Action(
                "directory",
                "GET",
                calls.directory_,
                response=wire.ldap.Directory,
                summary="Every user and group, or those changed since a generation.",
                params=(("since", "int", "Answer only what changed after this generation"),),
                detail=True,
                superuser=False,
            ),
            resource.Action(
                "search",
                "POST",
                calls.search,
                request=wire.ldap.SearchRequest,
                response=wire.ldap.Directory,
                summary="The users and groups a search filter can match (direct search mode).",
                detail=True,
                superuser=False,
            ),
            resource.Action(
                "password",
                "POST",
                calls.password,
                request=wire.ldap.PasswordChangeRequest,
                status=204,
                summary="Change a bound user's password through the password policies.",
                detail=True,
                superuser=False,
            ),
        ]


RESOURCES = (LDAPProviders(), OutpostLDAPConfigs())
