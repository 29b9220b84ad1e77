"""`/api/v3/core/applications/`: applications, addressable by pk or slug."""

from __future__ import annotations

from typing import Any

from tessera.core import wire
from tessera.core.api import resource
from tessera.core.identity import applications
from tessera.core.policies import binding_admin as policy_bindings

F = resource.FilterField


class Applications(resource.Resource):
    path = "core/applications"
    table = "applications"
    tag = "core"
    model_name = "application"
    read_model = wire.core.Application
    request_model = wire.core.ApplicationRequest
    alternate_lookup = "slug"
    guard_managed = True
    filters = (
        F("managed", "managed"),
        F("name", "name"),
        F("slug", "slug"),
        F("group", "group"),
        F("meta_launch_url", "meta_launch_url"),
        F("meta_publisher", "meta_publisher"),
        F("meta_description", "meta_description"),
        F("provider", "provider", kind="int"),
        F("provider__isnull", "provider", "isnull", "bool"),
        F("policy_engine_mode", "policy_engine_mode"),
    )
    search_columns = ("name", "slug", "meta_publisher", "meta_description", "group")
    ordering_columns = ("name", "slug", "group", "meta_publisher")
    default_ordering = ("name",)

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        return await applications.serialize(ctx.tx, rows)

    async def create(self, ctx: resource.Ctx, body: Any) -> dict[str, Any]:
        return await applications.create(ctx.tx, body)

    async def update(self, ctx: resource.Ctx, row: dict[str, Any], body: Any) -> dict[str, Any]:
        return await applications.update(ctx.tx, row, body)

    async def writable(self, ctx: resource.Ctx, row: dict[str, Any]) -> dict[str, Any]:
        return await applications.writable(ctx.tx, row)

    async def delete(self, ctx: resource.Ctx, row: dict[str, Any]) -> None:
        await policy_bindings.unbind(ctx.tx, [row["pk"]])  # bindings name targets by uuid only
        await super().delete(ctx, row)
