"""`/api/v3/policies/bindings/`: a policy, group or user bound to a flow, stage binding or app."""

from __future__ import annotations

from typing import Any

from tessera.core import wire
from tessera.core.api import resource
from tessera.core.api.resources import flows
from tessera.core.policies import binding_admin
from tessera.core.store import crud

F = resource.FilterField


class PolicyBindings(resource.Resource):
    path = "policies/bindings"
    table = "policy_bindings"
    tag = "policies"
    app_label = "authentik_policies"
    model_name = "policybinding"
    read_model = wire.policies.PolicyBinding
    request_model = wire.policies.PolicyBindingRequest
    filters = (
        F("target", "target", kind="uuid"),
        F("policy", "policy", kind="uuid"),
        F("policy__isnull", "policy", "isnull", "bool"),
        F("group", "group", kind="uuid"),
        F("user", "user", kind="int"),
        F("enabled", "enabled", kind="bool"),
        F("order", "order", kind="int"),
        F("timeout", "timeout", kind="int"),
    )
    ordering_columns = ("order", "target", "pk")
    default_ordering = ("order",)

    def list_query(self, ctx: resource.Ctx, params: Any) -> tuple[crud.Query, int, int]:
        flows.check_int32(params, ("order", "timeout"))
        return super().list_query(ctx, params)

    def describe(self, row: dict[str, Any]) -> str:
        return f"Policy binding {row['pk']}"

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        return await binding_admin.serialize(ctx.tx, ctx.keyring, rows)

    async def _check_target(self, ctx: resource.Ctx, target: str) -> None:
        """Bindings of an application the operator manages belong to its resource too."""
        app = await crud.find(ctx.tx, "applications", pk=target)
        if app is not None:
            resource.check_managed(ctx.request, app["managed"])

    async def create(self, ctx: resource.Ctx, body: Any) -> dict[str, Any]:
        await self._check_target(ctx, body.target)
        return await binding_admin.create(ctx.tx, body)

    async def update(self, ctx: resource.Ctx, row: dict[str, Any], body: Any) -> dict[str, Any]:
        await self._check_target(ctx, row["target"])
        await self._check_target(ctx, body.target)
        return await binding_admin.update(ctx.tx, row, body)

    async def delete(self, ctx: resource.Ctx, row: dict[str, Any]) -> None:
        await self._check_target(ctx, row["target"])
        await super().delete(ctx, row)

    async def writable(self, ctx: resource.Ctx, row: dict[str, Any]) -> dict[str, Any]:
        return binding_admin.writable(row)
