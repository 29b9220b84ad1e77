"""Prompts as the admin API sees them: unique names, expressions that compile, the prompt stages
that ask each one.

Called by the API's `/stages/prompt/prompts/` resource; the prompt stage (`stages.prompt`) reads
the same rows, listed by pk in its settings. Deleting a prompt takes it out of those settings.
"""

from __future__ import annotations

from typing import Any

from tessera.core import errors, store, wire
from tessera.core.flows import stage_admin
from tessera.core.identity import util
from tessera.core.policies import sandbox
from tessera.core.stages import prompt
from tessera.core.store import crud

TABLE = prompt.TABLE


async def _values(tx: store.Tx, body: wire.flows.PromptRequest, pk: str | None) -> dict[str, Any]:
    clash = await crud.find(tx, TABLE, name=body.name)
    if clash is not None and clash["pk"] != pk:
        raise errors.ValidationFailed.one("name", "Prompt with this name already exists.")
    for field in ("initial_value", "placeholder"):
        if getattr(body, f"{field}_expression"):
            try:
                sandbox.compile(getattr(body, field))
            except sandbox.SandboxError as exc:
                raise errors.ValidationFailed.one(field, str(exc)) from None
    return body.model_dump()


async def create(tx: store.Tx, body: wire.flows.PromptRequest) -> dict[str, Any]:
    values = await _values(tx, body, None)
    return await crud.insert(tx, TABLE, {**values, "pk": util.new_uuid(), "created": util.now()})


async def update(
    tx: store.Tx, row: dict[str, Any], body: wire.flows.PromptRequest
) -> dict[str, Any]:
    return await crud.update(tx, TABLE, {"pk": row["pk"]}, await _values(tx, body, row["pk"]))


def writable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in wire.flows.PromptRequest.model_fields}


async def _prompt_stages(tx: store.Tx) -> list[dict[str, Any]]:
    found = await crud.find_many(tx, "stages", "kind", ["prompt"])
    return sorted(found, key=lambda s: s["name"])


def _asks(stage: dict[str, Any], pk: str) -> bool:
    fields = stage["config"].get("fields")
    return isinstance(fields, list) and pk in fields


async def delete(tx: store.Tx, row: dict[str, Any]) -> None:
    """Delete the prompt and take it out of the prompt stages that ask it."""
    for stage in await _prompt_stages(tx):
        if _asks(stage, row["pk"]):
            fields = [f for f in stage["config"]["fields"] if f != row["pk"]]
            config = {**stage["config"], "fields": fields}
            await crud.update(tx, "stages", {"pk": stage["pk"]}, {"config": config})
    await crud.delete(tx, TABLE, pk=row["pk"])


async def serialize(
    tx: store.Tx,
    rows: list[dict[str, Any]],
    model: type[wire.flows.PromptBase],
    stage_model: type[wire.flows.Stage],
) -> list[wire.flows.PromptBase]:
    """`model` is the prompt's response model, whose `prompt_stages_obj` are `stage_model`s."""
    stage_rows = await _prompt_stages(tx)
    stages = {s.pk: s for s in await stage_admin.serialize(tx, stage_rows, stage_model)}
    return [
        model.model_construct(
            **writable(r),
            pk=r["pk"],
            prompt_stages_obj=[stages[s["pk"]] for s in stage_rows if _asks(s, r["pk"])],
        )
        for r in rows
    ]
