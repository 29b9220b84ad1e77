"""`/api/v3/core/groups/`: groups, nested through `parents`, with `add_user` and `remove_user`.

The listing carries the nested lists authentik's `include_users` (default on),
`include_parents`, `include_children` and `include_inherited_roles` (default off) ask for.
"""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import Field

from tessera.core import errors, events, wire
from tessera.core.api import auth, http, resource, state
from tessera.core.identity import groups
from tessera.core.store import crud

F = resource.FilterField


class UserReference(wire.common.Request):
    pk: Annotated[int, Field(ge=1, le=2**53)]


def _flag(ctx: resource.Ctx, name: str, default: bool) -> bool:
    value = ctx.request.query.get(name)
    return default if value is None else resource._parse("bool", name, value)


class Groups(resource.Resource):
    path = "core/groups"
    table = "groups"
    tag = "core"
    model_name = "group"
    read_model = wire.core.Group
    request_model = wire.core.GroupRequest
    filters = (
        F("name", "name"),
        F("is_superuser", "is_superuser", kind="bool"),
    )
    list_params = (
        ("include_users", "bool", "Carry each group's members in `users_obj` (default true)."),
        ("include_parents", "bool", "Carry each group's parents in `parents_obj`."),
        ("include_children", "bool", "Carry each group's children in `children_obj`."),
        ("include_inherited_roles", "bool", "Carry `inherited_roles_obj` (empty: no roles)."),
    )
    search_columns = ("name",)
    ordering_columns = ("name", "is_superuser", "num_pk")
    default_ordering = ("name",)

    def member_filters(self, params: Any) -> list[crud.Member]:
        out = []
        if pks := params.getall("members_by_pk", []):
            out.append(
                crud.Member(
                    "user_pk", tuple(resource._parse("int", "members_by_pk", p) for p in pks[:100])
                )
            )
        if names := params.getall("members_by_username", []):
            out.append(crud.Member("username", tuple(names[:100])))
        return out

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        include = groups.Include(
            users=_flag(ctx, "include_users", True),
            parents=_flag(ctx, "include_parents", False),
            children=_flag(ctx, "include_children", False),
            inherited_roles=_flag(ctx, "include_inherited_roles", False),
        )
        return await groups.serialize(ctx.tx, ctx.keyring, rows, include)

    async def create(self, ctx: resource.Ctx, body: Any) -> dict[str, Any]:
        return await groups.create(ctx.tx, body)

    async def update(self, ctx: resource.Ctx, row: dict[str, Any], body: Any) -> dict[str, Any]:
        return await groups.update(ctx.tx, row, body)

    async def writable(self, ctx: resource.Ctx, row: dict[str, Any]) -> dict[str, Any]:
        return await groups.writable(ctx.tx, row)

    def actions(self) -> list[resource.Action]:
        return [
            resource.Action(
                "add_user",
                "POST",
                self._add,
                detail=True,
                request=UserReference,
                status=204,
                summary="Add a user to the group",
            ),
            resource.Action(
                "remove_user",
                "POST",
                self._remove,
                detail=True,
                request=UserReference,
                status=204,
                summary="Remove a user from the group",
            ),
        ]

    async def _membership(self, request: web.Request, add: bool) -> web.Response:
        principal = await auth.require_superuser(request)
        body = await http.read_body(request, UserReference)
        async with request.app[state.STORE].transaction() as tx:
            ctx = resource.Ctx(request, principal, tx)
            row = await self.get_row(ctx, request.match_info["lookup"])
            if not await crud.exists(tx, "users", pk=body.pk):
                raise errors.ValidationFailed.one(
                    "pk", f'Invalid pk "{body.pk}" - object does not exist.'
                )
            before = await groups.writable(tx, row)
            if add:
                await crud.add_member(tx, user_pk=body.pk, group_pk=row["pk"])
            else:
                await crud.remove_member(tx, user_pk=body.pk, group_pk=row["pk"])
            after = await groups.writable(tx, row)
            await self.record(ctx, "model_updated", row, diff=events.diff(before, after))
        return web.Response(status=204)

    async def _add(self, request: web.Request) -> web.Response:
        return await self._membership(request, add=True)

    async def _remove(self, request: web.Request) -> web.Response:
        return await self._membership(request, add=False)
