"""`/api/v3/core/users/`: users, with `set_password` and `me`."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tessera.core import wire
from tessera.core.api import auth, http, resource, state
from tessera.core.identity import users
from tessera.core.store import crud

F = resource.FilterField


def _flag(ctx: resource.Ctx, name: str) -> bool:
    """authentik's `include_*` switches of the listing: on unless `false` (a malformed value is
    a 400 naming it)."""
    value = ctx.request.query.get(name)
    return True if value is None else resource._parse("bool", name, value)


class Users(resource.Resource):
    path = "core/users"
    table = "users"
    tag = "core"
    model_name = "user"
    read_model = wire.core.User
    request_model = wire.core.UserRequest
    lookup_kind = "int"
    filters = (
        F("username", "username"),
        F("email", "email"),
        F("name", "name"),
        F("is_active", "is_active", kind="bool"),
        F("path", "path"),
        F("path_startswith", "path", "startswith"),
        F("type", "type"),
        F("uuid", "uuid", kind="uuid"),
        F("last_login__gt", "last_login", "gt", "datetime"),
        F("last_login__lt", "last_login", "lt", "datetime"),
        F("last_login__isnull", "last_login", "isnull", "bool"),
        F("date_joined__gt", "date_joined", "gt", "datetime"),
        F("date_joined__lt", "date_joined", "lt", "datetime"),
    )
    list_params = (
        ("include_groups", "bool", "Carry each user's groups in `groups_obj` (default true)."),
        ("include_roles", "bool", "Carry each user's roles in `roles_obj` (default true)."),
    )
    search_columns = ("username", "name", "email")
    ordering_columns = (
        "pk",
        "username",
        "name",
        "email",
        "is_active",
        "last_login",
        "date_joined",
        "path",
        "type",
    )
    default_ordering = ("username",)

    def member_filters(self, params: Any) -> list[crud.Member]:
        out = []
        if names := params.getall("groups_by_name", []):
            out.append(crud.Member("group_name", tuple(names[:100])))
        if pks := params.getall("groups_by_pk", []):
            out.append(
                crud.Member(
                    "group_pk", tuple(resource._parse("uuid", "groups_by_pk", p) for p in pks[:100])
                )
            )
        return out

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        return await users.serialize(
            ctx.tx,
            ctx.keyring,
            rows,
            include_groups=_flag(ctx, "include_groups"),
            include_roles=_flag(ctx, "include_roles"),
        )

    async def create(self, ctx: resource.Ctx, body: Any) -> dict[str, Any]:
        return await users.create(ctx.tx, body)

    async def update(self, ctx: resource.Ctx, row: dict[str, Any], body: Any) -> dict[str, Any]:
        return await users.update(ctx.tx, row, body)

    async def writable(self, ctx: resource.Ctx, row: dict[str, Any]) -> dict[str, Any]:
        return await users.writable(ctx.tx, row)

    async def delete(self, ctx: resource.Ctx, row: dict[str, Any]) -> None:
        await users.delete(ctx.tx, row)

    def actions(self) -> list[resource.Action]:
        return [
            resource.Action(
                "me",
                "GET",
                self._me,
                detail=False,
                response=wire.core.SessionUser,
                superuser=False,
                summary="The calling user",
            ),
            resource.Action(
                "set_password",
                "POST",
                self._set_password,
                detail=True,
                request=wire.core.UserSetPassword,
                status=204,
                summary="Set the user's password",
            ),
        ]

    async def _me(self, request: web.Request) -> web.Response:
        principal = await auth.authenticate(request)
        async with request.app[state.STORE].read() as tx:
            row = await crud.get(tx, self.table, pk=principal.user["pk"])
            user = await users.serialize_self(tx, request.app[state.KEYRING], row)
        return http.respond(wire.core.SessionUser.model_construct(user=user, users=[user]))

    async def _set_password(self, request: web.Request) -> web.Response:
        principal = await auth.require_superuser(request)
        body = await http.read_body(request, wire.core.UserSetPassword)
        directories = request.app.get(state.DIRECTORIES)
        directory_holds = False
        if directories is not None:  # written back first: a refusal stops the change
            async with request.app[state.STORE].read() as tx:
                found = await self.get_row(
                    resource.Ctx(request, principal, tx), request.match_info["lookup"]
                )
            directory_holds = await directories.changed(found, body.password)
        async with request.app[state.STORE].transaction() as tx:
            ctx = resource.Ctx(request, principal, tx)
            row = await self.get_row(ctx, request.match_info["lookup"])
            await users.set_password(tx, row["pk"], body.password)
            if directory_holds:  # the directory alone decides: no local copy
                await users.set_unusable_password(tx, row["pk"])
            await self.record(ctx, "password_set", row)
        return web.Response(status=204)
