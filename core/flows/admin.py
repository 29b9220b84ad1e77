"""Flows as the admin API sees them: unique slugs, their stages in order, cascading deletes.

Called by the API's `/flows/instances/` resource. Managed flows (the defaults) may be edited and
deleted, as in authentik (`defaults.ensure` recreates a deleted default at the next start).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tessera.core import errors, store, wire
from tessera.core.identity import util
from tessera.core.policies import binding_admin
from tessera.core.store import crud

TABLE = "flows"


async def _check_slug(tx: store.Tx, slug: str, pk: str | None) -> None:
    clash = await crud.find(tx, TABLE, slug=slug)
    if clash is not None and clash["pk"] != pk:
        raise errors.ValidationFailed.one("slug", "Flow with this slug already exists.")


# Request fields with no column: authentik's empty value is all they take.
UNSTORED = {"background"}


def _stored(body: wire.flows.FlowRequest) -> dict[str, Any]:
    return body.model_dump(exclude=UNSTORED)


async def create(tx: store.Tx, body: wire.flows.FlowRequest) -> dict[str, Any]:
    await _check_slug(tx, body.slug, None)
    return await crud.insert(
        tx, TABLE, {**_stored(body), "pk": util.new_uuid(), "created": util.now()}
    )


async def update(tx: store.Tx, row: dict[str, Any], body: wire.flows.FlowRequest) -> dict[str, Any]:
    await _check_slug(tx, body.slug, row["pk"])
    return await crud.update(tx, TABLE, {"pk": row["pk"]}, _stored(body))


def writable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in wire.flows.FlowRequest.model_fields if k not in UNSTORED}


async def delete(tx: store.Tx, row: dict[str, Any]) -> None:
    """Delete the flow, its stage bindings (by cascade) and the policy bindings on both."""
    bound = await crud.find_many(tx, "flow_stage_bindings", "target", [row["pk"]])
    await binding_admin.unbind(tx, [row["pk"], *(b["pk"] for b in bound)])
    await crud.delete(tx, TABLE, pk=row["pk"])


async def _related(tx: store.Tx, table: str, pks: list[str], column: str) -> dict[str, list[str]]:
    """For each flow, `column` of the rows of `table` bound to it, in binding order."""
    out: dict[str, list[str]] = defaultdict(list)
    rows = await crud.find_many(tx, table, "target", pks)
    for r in sorted(rows, key=lambda r: (r["order"], r["pk"])):
        if r[column] is not None:
            out[r["target"]].append(r[column])
    return out


def _flow_set_fields(row: dict[str, Any]) -> dict[str, Any]:
    """What `FlowSet` (a flow named inside a stage) and `Flow` share."""
    return {
        k: row[k]
        for k in wire.flows.FlowSet.model_fields
        if k in wire.flows.FlowRequest.model_fields
    } | {
        "pk": row["pk"],
        "policybindingmodel_ptr_id": row["pk"],
        "background_url": wire.flows.DEFAULT_BACKGROUND,
        "export_url": f"/api/v3/flows/instances/{row['slug']}/export/",
    }


def flow_set(row: dict[str, Any]) -> wire.flows.FlowSet:
    return wire.flows.FlowSet.model_construct(**_flow_set_fields(row))


async def serialize(tx: store.Tx, rows: list[dict[str, Any]]) -> list[wire.flows.Flow]:
    pks = [r["pk"] for r in rows]
    stages = await _related(tx, "flow_stage_bindings", pks, "stage")
    policies = await _related(tx, "policy_bindings", pks, "policy")
    return [
        wire.flows.Flow.model_construct(
            **_flow_set_fields(r),
            authentication=r["authentication"],
            stages=stages[r["pk"]],
            policies=policies[r["pk"]],
            managed=r["managed"],
            background=None,
            background_themed_urls=None,
            cache_count=0,
        )
        for r in rows
    ]
