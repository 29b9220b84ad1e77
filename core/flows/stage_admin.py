"""Stages as the admin API sees them: unique names, per-kind settings, cascading deletes.

Called by the API's `/stages/<kind>/` and `/stages/all/` resources. A stage row keeps its kind's
settings as JSON in `config` (the `Config` model's dump); the request models are the kind's
`Config` plus `name`, so settings arrive here already validated.
"""

from __future__ import annotations

from typing import Any

import pydantic
import structlog

from tessera.core import errors, stages, store, wire
from tessera.core.identity import util
from tessera.core.policies import binding_admin
from tessera.core.store import crud

TABLE = "stages"
log = structlog.get_logger(__name__)


async def _check_name(tx: store.Tx, name: str, pk: str | None) -> None:
    clash = await crud.find(tx, TABLE, name=name)
    if clash is not None and clash["pk"] != pk:
        raise errors.ValidationFailed.one("name", "Stage with this name already exists.")


def _split(body: wire.common.Request) -> tuple[str, dict[str, Any]]:
    """The name, and the settings as stored."""
    config = body.model_dump(mode="json")
    return str(config.pop("name")), config


async def create(tx: store.Tx, kind: str, body: wire.common.Request) -> dict[str, Any]:
    name, config = _split(body)
    await _check_name(tx, name, None)
    values = {"pk": util.new_uuid(), "name": name, "kind": kind, "config": config}
    return await crud.insert(tx, TABLE, {**values, "created": util.now()})


async def update(tx: store.Tx, row: dict[str, Any], body: wire.common.Request) -> dict[str, Any]:
    name, config = _split(body)
    await _check_name(tx, name, row["pk"])
    return await crud.update(tx, TABLE, {"pk": row["pk"]}, {"name": name, "config": config})


def settings(row: dict[str, Any]) -> dict[str, Any]:
    """The stage's settings with their defaults; stored values the kind no longer accepts are
    shown as stored (and logged) rather than failing the listing."""
    kind = stages.KINDS.get(row["kind"])
    if kind is None:
        return dict(row["config"])
    try:
        config = kind.Config.model_validate(row["config"])
    except pydantic.ValidationError:
        log.warning("stage settings invalid", stage=row["pk"], kind=row["kind"])
        return {k: v for k, v in row["config"].items() if k in kind.Config.model_fields}
    return {k: getattr(config, k) for k in kind.Config.model_fields}


def stored_settings(row: dict[str, Any]) -> dict[str, Any]:
    """The settings the row stores, in today's form (an integer duration of an older version
    shown as authentik's `seconds=<n>`), without the defaults it does not store."""
    kind = stages.KINDS.get(row["kind"])
    try:
        current = kind.Config.model_validate(row["config"]).model_dump(mode="json") if kind else {}
    except pydantic.ValidationError:
        current = {}
    return {k: current.get(k, v) for k, v in row["config"].items()}


def writable(row: dict[str, Any], request: type[wire.common.Request]) -> dict[str, Any]:
    """The request-shaped current values (the base of a PATCH)."""
    current = {"name": row["name"], **row["config"]}
    base = {k: current[k] for k in request.model_fields if k in current}
    try:  # fill in the defaults so that a PATCH changes only what it names
        return request.model_validate(base).model_dump(mode="json")
    except pydantic.ValidationError:
        return base


def summary(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "pk": row["pk"],
        "name": row["name"],
        "kind": row["kind"],
        "managed": row["managed"],
        **wire.flows.stage_names(row["kind"]),
    }


def serialize(
    rows: list[dict[str, Any]], model: type[wire.flows.Stage] = wire.flows.Stage
) -> list[wire.flows.Stage]:
    """`model` is `wire.flows.Stage` (the summary) or a kind's generated model (with settings)."""
    extra = model is not wire.flows.Stage
    return [model.model_construct(**summary(r), **(settings(r) if extra else {})) for r in rows]


async def delete(tx: store.Tx, row: dict[str, Any]) -> None:
    """Delete the stage, its flow bindings (by cascade) and the policy bindings on those."""
    bound = await crud.find_many(tx, "flow_stage_bindings", "stage", [row["pk"]])
    await binding_admin.unbind(tx, [b["pk"] for b in bound])
    await crud.delete(tx, TABLE, pk=row["pk"])
