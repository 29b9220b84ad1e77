"""`/api/v3/stages/invitation/invitations/`: the invitations the invitation stage admits.

Superusers only (the admin API's rule). `created_by` is the requesting user, read-only. The
link to hand out is the enrollment flow's URL with `?itoken=<pk>`.
"""

from __future__ import annotations

from typing import Any

from tessera.core import wire
from tessera.core.api import resource
from tessera.core.flows import invitation_admin

F = resource.FilterField


class Invitations(resource.Resource):
    path = "stages/invitation/invitations"
    table = invitation_admin.TABLE
    tag = "stages"
    app_label = "authentik_stages_invitation"
    model_name = "invitation"
    read_model = wire.flows.Invitation
    request_model = wire.flows.InvitationRequest
    filters = (
        F("name", "name"),
        F("expires", "expires", kind="datetime"),
        F(
            "created_by__username",
            "created_by",
            related=("users", "username"),
            description="Invitations made by the user with this username",
        ),
        F(
            "flow__slug",
            "flow",
            related=("flows", "slug"),
            description="Invitations limited to the flow with this slug",
        ),
    )
    search_columns = ("name",)
    ordering_columns = ("name", "expires", "single_use", "created")
    default_ordering = ("-expires",)

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        return await invitation_admin.serialize(ctx.tx, ctx.keyring, rows)

    async def create(self, ctx: resource.Ctx, body: Any) -> dict[str, Any]:
        return await invitation_admin.create(ctx.tx, body, created_by=ctx.principal.user["pk"])

    async def update(self, ctx: resource.Ctx, row: dict[str, Any], body: Any) -> dict[str, Any]:
        return await invitation_admin.update(ctx.tx, row, body)

    async def writable(self, ctx: resource.Ctx, row: dict[str, Any]) -> dict[str, Any]:
        return invitation_admin.writable(row)
