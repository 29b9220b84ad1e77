"""Applications: unique slugs, at most one application per provider."""

from __future__ import annotations

from typing import Any

from tessera.core import errors, store, wire
from tessera.core.identity import util
from tessera.core.store import crud

TABLE = "applications"


async def _check(tx: store.Tx, body: wire.core.ApplicationRequest, pk: str | None) -> None:
    clash = await crud.find(tx, TABLE, slug=body.slug)
    if clash is not None and clash["pk"] != pk:
        raise errors.ValidationFailed.one("slug", "Application with this slug already exists.")
    if body.provider is None:
        return
    if not await crud.exists(tx, "providers", pk=body.provider):
        raise errors.ValidationFailed.one(
            "provider", f'Invalid pk "{body.provider}" - object does not exist.'
        )
    user = await crud.find(tx, TABLE, provider=body.provider)
    if user is not None and user["pk"] != pk:
        raise errors.ValidationFailed.one(
            "provider", "This provider is already used by another application."
        )


async def create(tx: store.Tx, body: wire.core.ApplicationRequest) -> dict[str, Any]:
    await _check(tx, body, None)
    return await crud.insert(
        tx, TABLE, {**body.model_dump(), "pk": util.new_uuid(), "created": util.now()}
    )


async def update(
    tx: store.Tx, row: dict[str, Any], body: wire.core.ApplicationRequest
) -> dict[str, Any]:
    await _check(tx, body, row["pk"])
    return await crud.update(tx, TABLE, {"pk": row["pk"]}, body.model_dump())


async def writable(tx: store.Tx, row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in wire.core.ApplicationRequest.model_fields}


async def serialize(tx: store.Tx, rows: list[dict[str, Any]]) -> list[wire.core.Application]:
    return [
        wire.core.Application(
            **{k: r[k] for k in wire.core.ApplicationRequest.model_fields},
            pk=r["pk"],
            launch_url=r["meta_launch_url"] or None,
            meta_icon=None,
        )
        for r in rows
    ]
