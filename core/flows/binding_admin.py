"""Flow-stage bindings as the admin API sees them: existing flow and stage, unique placement.

Called by the API's `/flows/bindings/` resource. A binding is itself a policy target, so
deleting one removes the policy bindings on it.
"""

from __future__ import annotations

from typing import Any

from tessera.core import errors, store, wire
from tessera.core.flows import stage_admin
from tessera.core.identity import util
from tessera.core.policies import binding_admin
from tessera.core.store import crud

TABLE = "flow_stage_bindings"
UNIQUE = "The fields target, stage, order must make a unique set."


async def _existing(tx: store.Tx, table: str, field: str, value: str) -> str:
    pk = util.normalise_uuid(value)
    if not await crud.exists(tx, table, pk=pk):
        raise errors.ValidationFailed.one(field, f'Invalid pk "{value}" - object does not exist.')
    return pk


async def _values(
    tx: store.Tx, body: wire.flows.FlowStageBindingRequest, pk: str | None
) -> dict[str, Any]:
    values = body.model_dump() | {
        "target": await _existing(tx, "flows", "target", body.target),
        "stage": await _existing(tx, "stages", "stage", body.stage),
    }
    same = await crud.find(
        tx, TABLE, target=values["target"], stage=values["stage"], order=values["order"]
    )
    if same is not None and same["pk"] != pk:
        raise errors.ValidationFailed.one("non_field_errors", UNIQUE)
    return values


async def _write(tx: store.Tx, values: dict[str, Any], pk: str | None) -> dict[str, Any]:
    try:
        if pk is None:
            return await crud.insert(tx, TABLE, {**values, "pk": util.new_uuid()})
        return await crud.update(tx, TABLE, {"pk": pk}, values)
    except errors.Conflict:  # a concurrent request placed the same binding first
        raise errors.ValidationFailed.one("non_field_errors", UNIQUE) from None


async def create(tx: store.Tx, body: wire.flows.FlowStageBindingRequest) -> dict[str, Any]:
    return await _write(tx, await _values(tx, body, None), None)


async def update(
    tx: store.Tx, row: dict[str, Any], body: wire.flows.FlowStageBindingRequest
) -> dict[str, Any]:
    return await _write(tx, await _values(tx, body, row["pk"]), row["pk"])


def writable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in wire.flows.FlowStageBindingRequest.model_fields}


async def delete(tx: store.Tx, row: dict[str, Any]) -> None:
    await binding_admin.unbind(tx, [row["pk"]])
    await crud.delete(tx, TABLE, pk=row["pk"])


async def serialize(tx: store.Tx, rows: list[dict[str, Any]]) -> list[wire.flows.FlowStageBinding]:
    stage_rows = await crud.find_many(tx, "stages", "pk", {r["stage"] for r in rows})
    stages = {s.pk: s for s in await stage_admin.serialize(tx, stage_rows)}
    return [
        wire.flows.FlowStageBinding.model_construct(
            **writable(r),
            pk=r["pk"],
            policybindingmodel_ptr_id=r["pk"],
            stage_obj=stages[r["stage"]],
        )
        for r in rows
    ]
