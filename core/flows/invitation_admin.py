"""Invitations as the admin API sees them: unique names, an existing flow, the creator recorded.

Called by the API's `/stages/invitation/invitations/` resource; the invitation stage
(`stages.invitation`) reads the same rows when an enrollment presents `?itoken=<pk>`.
`created_by` is set from the requesting user on create and never changes afterwards.
"""

from __future__ import annotations

from typing import Any

from tessera.core import crypto, errors, store, wire
from tessera.core.flows import admin
from tessera.core.identity import users, util
from tessera.core.stages import invitation
from tessera.core.store import crud

TABLE = invitation.TABLE


async def _values(
    tx: store.Tx, body: wire.flows.InvitationRequest, pk: str | None
) -> dict[str, Any]:
    clash = await crud.find(tx, TABLE, name=body.name)
    if clash is not None and clash["pk"] != pk:
        raise errors.ValidationFailed.one("name", "invitation with this name already exists.")
    values = body.model_dump()
    if body.flow is not None:
        values["flow"] = util.normalise_uuid(body.flow)
        if not await crud.exists(tx, "flows", pk=values["flow"]):
            raise errors.ValidationFailed.one(
                "flow", f'Invalid pk "{body.flow}" - object does not exist.'
            )
    return values


async def create(
    tx: store.Tx, body: wire.flows.InvitationRequest, created_by: int
) -> dict[str, Any]:
    values = await _values(tx, body, None)
    row = {**values, "pk": util.new_uuid(), "created_by": created_by, "created": util.now()}
    return await crud.insert(tx, TABLE, row)


async def update(
    tx: store.Tx, row: dict[str, Any], body: wire.flows.InvitationRequest
) -> dict[str, Any]:
    return await crud.update(tx, TABLE, {"pk": row["pk"]}, await _values(tx, body, row["pk"]))


def writable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in wire.flows.InvitationRequest.model_fields}


async def serialize(
    tx: store.Tx, keyring: crypto.Keyring, rows: list[dict[str, Any]]
) -> list[wire.flows.Invitation]:
    flow_rows = await crud.find_many(tx, "flows", "pk", {r["flow"] for r in rows} - {None})
    flows = {f.pk: f for f in await admin.serialize(tx, flow_rows)}
    user_rows = await crud.find_many(tx, "users", "pk", {r["created_by"] for r in rows} - {None})
    creators = {u["pk"]: users.partial(keyring, u) for u in user_rows}
    return [
        wire.flows.Invitation.model_construct(
            **writable(r),
            pk=r["pk"],
            created_by=creators[r["created_by"]],
            flow_obj=flows.get(r["flow"]),
        )
        for r in rows
    ]
