"""`/api/v3/flows/instances/` (by pk or slug) and `/api/v3/flows/bindings/` (stages in flows)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tessera.core import errors, wire
from tessera.core.api import auth, resource, state
from tessera.core.flows import admin, binding_admin, export
from tessera.core.store import crud

F = resource.FilterField
INT32 = 2**31


def check_int32(params: Any, names: tuple[str, ...]) -> None:
    """Refuse integer filters outside the 32-bit columns they compare with (PostgreSQL would)."""
    for name in names:
        raw = params.get(name)
        if raw and not -INT32 <= resource._parse("int", name, raw) < INT32:
            raise errors.ValidationFailed.one(name, "Enter a valid int.")


class FlowInstances(resource.Resource):
    path = "flows/instances"
    table = "flows"
    tag = "flows"
    app_label = "authentik_flows"
    model_name = "flow"
    read_model = wire.flows.Flow
    request_model = wire.flows.FlowRequest
    alternate_lookup = "slug"
    filters = (
        F("slug", "slug"),
        F("name", "name"),
        F("designation", "designation"),
        F("authentication", "authentication"),
        F("managed", "managed"),
    )
    search_columns = ("name", "slug", "title", "designation")
    ordering_columns = ("slug", "name", "designation", "title")
    default_ordering = ("slug",)

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        return await admin.serialize(ctx.tx, rows)

    async def create(self, ctx: resource.Ctx, body: Any) -> dict[str, Any]:
        return await admin.create(ctx.tx, body)

    async def update(self, ctx: resource.Ctx, row: dict[str, Any], body: Any) -> dict[str, Any]:
        return await admin.update(ctx.tx, row, body)

    async def writable(self, ctx: resource.Ctx, row: dict[str, Any]) -> dict[str, Any]:
        return admin.writable(row)

    async def delete(self, ctx: resource.Ctx, row: dict[str, Any]) -> None:
        await admin.delete(ctx.tx, row)

    def actions(self) -> list[resource.Action]:
        return [
            resource.Action(
                "export",
                "GET",
                self._export,
                detail=True,
                summary="The flow, its stages and policies as a blueprint (YAML)",
            )
        ]

    async def _export(self, request: web.Request) -> web.Response:
        principal = await auth.require_superuser(request)
        async with request.app[state.STORE].read() as tx:
            ctx = resource.Ctx(request, principal, tx)
            row = await self.get_row(ctx, request.match_info["lookup"])
            document = await export.export(tx, row)
        return web.Response(
            text=document,
            content_type="text/yaml",
            headers={"Content-Disposition": f'attachment; filename="{row["slug"]}.yaml"'},
        )


class FlowStageBindings(resource.Resource):
    path = "flows/bindings"
    table = "flow_stage_bindings"
    tag = "flows"
    app_label = "authentik_flows"
    model_name = "flowstagebinding"
    read_model = wire.flows.FlowStageBinding
    request_model = wire.flows.FlowStageBindingRequest
    filters = (
        F("target", "target", kind="uuid"),
        F("stage", "stage", kind="uuid"),
        F("order", "order", kind="int"),
        F("evaluate_on_plan", "evaluate_on_plan", kind="bool"),
        F("re_evaluate_policies", "re_evaluate_policies", kind="bool"),
        F("invalid_response_action", "invalid_response_action"),
        F("policy_engine_mode", "policy_engine_mode"),
    )
    ordering_columns = ("order", "target", "stage")
    default_ordering = ("order",)

    def list_query(self, ctx: resource.Ctx, params: Any) -> tuple[crud.Query, int, int]:
        check_int32(params, ("order",))
        return super().list_query(ctx, params)

    def describe(self, row: dict[str, Any]) -> str:
        return f"Flow-stage binding {row['pk']}"

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        return await binding_admin.serialize(ctx.tx, rows)

    async def create(self, ctx: resource.Ctx, body: Any) -> dict[str, Any]:
        return await binding_admin.create(ctx.tx, body)

    async def update(self, ctx: resource.Ctx, row: dict[str, Any], body: Any) -> dict[str, Any]:
        return await binding_admin.update(ctx.tx, row, body)

    async def writable(self, ctx: resource.Ctx, row: dict[str, Any]) -> dict[str, Any]:
        return binding_admin.writable(row)

    async def delete(self, ctx: resource.Ctx, row: dict[str, Any]) -> None:
        await binding_admin.delete(ctx.tx, row)
