"""`/api/v3/core/tokens/`: tokens addressed by identifier, with `view_key`."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tessera.core import wire
from tessera.core.api import auth, http, resource, state
from tessera.core.identity import tokens

F = resource.FilterField


class Tokens(resource.Resource):
    path = "core/tokens"
    table = "tokens"
    tag = "core"
    model_name = "token"
    read_model = wire.core.Token
    request_model = wire.core.TokenRequest
    lookup = "identifier"
    lookup_kind = "str"
    filters = (
        F("identifier", "identifier"),
        F("intent", "intent"),
        F("managed", "managed"),
        F("description", "description"),
        F("user", "user_pk", kind="int"),
        F("expiring", "expiring", kind="bool"),
        F("expires__lt", "expires", "lt", "datetime"),
        F("expires__gt", "expires", "gt", "datetime"),
    )
    search_columns = ("identifier", "intent", "description")
    ordering_columns = ("identifier", "intent", "expires", "created")
    default_ordering = ("expires",)

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        return await tokens.serialize(ctx.tx, rows)

    async def create(self, ctx: resource.Ctx, body: Any) -> dict[str, Any]:
        user_pk = body.user or ctx.principal.user["pk"]
        row, _ = await tokens.create(ctx.tx, ctx.keyring, body, user_pk=user_pk)
        return row

    async def update(self, ctx: resource.Ctx, row: dict[str, Any], body: Any) -> dict[str, Any]:
        return await tokens.update(ctx.tx, row, body, user_pk=body.user or row["user_pk"])

    async def writable(self, ctx: resource.Ctx, row: dict[str, Any]) -> dict[str, Any]:
        return await tokens.writable(ctx.tx, row)

    def actions(self) -> list[resource.Action]:
        return [
            resource.Action(
                "view_key",
                "GET",
                self._view_key,
                detail=True,
                response=wire.core.TokenView,
                summary="Return the token's key",
            )
        ]

    async def _view_key(self, request: web.Request) -> web.Response:
        principal = await auth.require_superuser(request)
        async with request.app[state.STORE].transaction() as tx:
            ctx = resource.Ctx(request, principal, tx)
            row = await self.get_row(ctx, request.match_info["lookup"])
            key = tokens.view_key(request.app[state.KEYRING], row)
            await self.record(ctx, "secret_view", row)
        return http.respond(wire.core.TokenView(key=key))
