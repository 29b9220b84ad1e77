"""Stages as the admin API sees them: unique names, per-kind settings, cascading deletes.

Called by the API's `/stages/<kind>/` and `/stages/all/` resources. A stage row keeps its kind's
settings as JSON in `config` (the `Config` model's dump); the request models are the kind's
`Config` plus `name`, so settings arrive here already validated. Settings that name other objects
(`wire.flows.References`: flows, stages, groups, policies) must name existing ones by pk; a flow
named by slug in older settings is shown by its pk. Every stage carries `flow_set`, the flows
that bind it (as authentik computes it).
"""

from __future__ import annotations

import uuid
from typing import Any

import pydantic
import structlog

from tessera.core import errors, stages, store, wire
from tessera.core.flows import admin
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
    config = body.model_dump(mode="json", exclude=getattr(body, "write_only", None))
    return str(config.pop("name")), config


async def _check_references(tx: store.Tx, body: wire.common.Request) -> None:
    """# SECURITY: a setting naming a flow, stage, group or policy names an existing one, by pk
    (a slug, which older settings held, is not taken from a client)."""
    for name, table in wire.flows.references(type(body)).items():
        value = getattr(body, name)
        for item in value if isinstance(value, list) else [value]:
            if item is None:
                continue
            try:
                pk = str(uuid.UUID(item))
            except ValueError:
                raise errors.ValidationFailed.one(name, "Must be a valid UUID.") from None
            if not await crud.exists(tx, table, pk=pk):
                raise errors.ValidationFailed.one(
                    name, f'Invalid pk "{item}" - object does not exist.'
                )


async def create(tx: store.Tx, kind: str, body: wire.common.Request) -> dict[str, Any]:
    name, config = _split(body)
    await _check_name(tx, name, None)
    await _check_references(tx, body)
    values = {"pk": util.new_uuid(), "name": name, "kind": kind, "config": config}
    return await crud.insert(tx, TABLE, {**values, "created": util.now()})


async def update(tx: store.Tx, row: dict[str, Any], body: wire.common.Request) -> dict[str, Any]:
    name, config = _split(body)
    await _check_name(tx, name, row["pk"])
    await _check_references(tx, body)
    return await crud.update(tx, TABLE, {"pk": row["pk"]}, {"name": name, "config": config})


def settings(row: dict[str, Any]) -> dict[str, Any]:
    """The stage's settings with their defaults; stored values the kind no longer accepts are
    shown as stored (and logged) rather than failing the listing."""
    kind = stages.KINDS.get(row["kind"])
    if kind is None:
        return dict(row["config"])
    computed = {k: value for k, (_, value) in kind.read_only.items()}
    try:
        config = kind.Config.model_validate(row["config"])
    except pydantic.ValidationError:
        log.warning("stage settings invalid", stage=row["pk"], kind=row["kind"])
        shown = {k: v for k, v in row["config"].items() if k in kind.Config.model_fields}
        return shown | computed
    return {k: getattr(config, k) for k in kind.Config.model_fields} | computed


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
        "managed": row["managed"],
        **wire.flows.stage_names(row["kind"]),
    }


async def flow_sets(tx: store.Tx, pks: list[str]) -> dict[str, list[wire.flows.FlowSet]]:
    """For each stage, the flows that bind it (each once, by slug)."""
    bindings = await crud.find_many(tx, "flow_stage_bindings", "stage", pks)
    flows = {
        f["pk"]: f for f in await crud.find_many(tx, "flows", "pk", {b["target"] for b in bindings})
    }
    out: dict[str, list[wire.flows.FlowSet]] = {pk: [] for pk in pks}
    for stage_pk in pks:
        bound = {b["target"] for b in bindings if b["stage"] == stage_pk}
        rows = sorted((flows[t] for t in bound if t in flows), key=lambda f: f["slug"])
        out[stage_pk] = [admin.flow_set(f) for f in rows]
    return out


async def _flow_pks(tx: store.Tx, configs: list[dict[str, Any]], fields: list[str]) -> None:
    """Flows named by slug (older settings) shown by their pk, or None once gone."""
    slugs = {c[f] for c in configs for f in fields if isinstance(c.get(f), str)} - {""}
    slugs = {s for s in slugs if not _is_uuid(s)}
    if not slugs:
        return
    found = {f["slug"]: f["pk"] for f in await crud.find_many(tx, "flows", "slug", slugs)}
    for config in configs:
        for f in fields:
            if config.get(f) in slugs:
                config[f] = found.get(config[f])


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


async def serialize(
    tx: store.Tx, rows: list[dict[str, Any]], model: type[wire.flows.Stage] = wire.flows.Stage
) -> list[wire.flows.Stage]:
    """`model` is `wire.flows.Stage` (the summary) or a kind's generated model (with settings)."""
    sets = await flow_sets(tx, [r["pk"] for r in rows])
    extra = model is not wire.flows.Stage
    configs = [settings(r) if extra else {} for r in rows]
    if extra:
        flow_fields = [k for k, t in wire.flows.references(model).items() if t == "flows"]
        await _flow_pks(tx, configs, flow_fields)
    return [
        model.model_construct(**summary(r), flow_set=sets[r["pk"]], **config)
        for r, config in zip(rows, configs, strict=True)
    ]


async def delete(tx: store.Tx, row: dict[str, Any]) -> None:
    """Delete the stage, its flow bindings (by cascade) and the policy bindings on those."""
    bound = await crud.find_many(tx, "flow_stage_bindings", "stage", [row["pk"]])
    await binding_admin.unbind(tx, [b["pk"] for b in bound])
    await crud.delete(tx, TABLE, pk=row["pk"])
