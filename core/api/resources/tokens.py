"""`/api/v3/core/tokens/`: tokens addressed by identifier, with `view_key`.

Superusers manage every token. Any other authenticated user lists, creates, shows, changes,
deletes and views the key of their own API tokens and app passwords only: the listing is
filtered to them, another user's token is 404, and a body naming another user is 403
(`identity.tokens.check_self_service`).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tessera.core import store, wire
from tessera.core.api import auth, http, resource, state
from tessera.core.identity import token_rules, tokens
from tessera.core.store import crud

F = resource.FilterField


def _own(principal: state.Principal) -> list[crud.Filter]:
    return token_rules.own_filters(principal.user["pk"])


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
        F("user", "user_pk", kind="int"),  # within what `query` lets the caller see
        F("expiring", "expiring", kind="bool"),
        F("expires__lt", "expires", "lt", "datetime"),
        F("expires__gt", "expires", "gt", "datetime"),
    )
    search_columns = ("identifier", "intent", "description")
    ordering_columns = ("identifier", "intent", "expires", "created")
    default_ordering = ("expires",)

    async def authorize(self, request: web.Request, tx: store.Tx | None = None) -> state.Principal:
        """Any user: a non-superuser sees and writes only their own API tokens and app
        passwords (`query`, `visible`, `tokens.check_self_service`)."""
        return await auth.authenticate(request, tx)

    def query(self, ctx: resource.Ctx) -> crud.Query:
        if ctx.principal.is_superuser:
            return crud.Query()
        return crud.Query(filters=_own(ctx.principal))

    def visible(self, ctx: resource.Ctx, row: dict[str, Any]) -> bool:
        # SECURITY: another user's token, or a system one (recovery, managed), is not found.
        principal = ctx.principal
        return principal.is_superuser or token_rules.is_own(row, principal.user["pk"])

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        return await tokens.serialize(ctx.tx, ctx.keyring, rows)

    async def create(self, ctx: resource.Ctx, body: Any) -> dict[str, Any]:
        user_pk = self._owner(ctx, body, body.user or ctx.principal.user["pk"])
        row, _ = await tokens.create(ctx.tx, ctx.keyring, body, user_pk=user_pk)
        return row

    async def update(self, ctx: resource.Ctx, row: dict[str, Any], body: Any) -> dict[str, Any]:
        user_pk = self._owner(ctx, body, body.user or row["user_pk"])
        return await tokens.update(ctx.tx, row, body, user_pk=user_pk)

    def _owner(self, ctx: resource.Ctx, body: Any, wanted: int) -> int:
        if ctx.principal.is_superuser:
            return wanted
        return tokens.check_self_service(body, ctx.principal.user["pk"])

    async def writable(self, ctx: resource.Ctx, row: dict[str, Any]) -> dict[str, Any]:
        return await tokens.writable(ctx.tx, row)

    def actions(self) -> list[resource.Action]:
        return [
            resource.Action(
                "view_key",
                "GET",
                self._view_key,
                detail=True,
                superuser=False,
                response=wire.core.TokenView,
                summary="Return the token's key",
            )
        ]

    async def _view_key(self, request: web.Request) -> web.Response:
        principal = await auth.authenticate(request)
        async with request.app[state.STORE].transaction() as tx:
            ctx = resource.Ctx(request, principal, tx)
            row = await self.get_row(ctx, request.match_info["lookup"])
            key = tokens.view_key(request.app[state.KEYRING], row)
            await self.record(ctx, "secret_view", row)
        return http.respond(wire.core.TokenView(key=key))
