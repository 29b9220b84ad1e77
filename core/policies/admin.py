"""Policies as the admin API sees them: unique names, per-kind settings, and the `test` action.

Called by the API's `/policies/<kind>/` and `/policies/all/` resources. A policy row keeps its
kind's settings as JSON in `config` (the `Config` model's dump); `test` evaluates one policy for
one user through the kind's own `evaluate`, as the engine would, without a binding.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from typing import Any

import pydantic
import structlog

from tessera.core import errors, store, wire
from tessera.core.identity import util
from tessera.core.policies import engine, kinds
from tessera.core.store import crud

TABLE = "policies"
TEST_TIMEOUT = 30  # seconds, a binding's default timeout
log = structlog.get_logger(__name__)


async def _check_name(tx: store.Tx, name: str, pk: str | None) -> None:
    clash = await crud.find(tx, TABLE, name=name)
    if clash is not None and clash["pk"] != pk:
        raise errors.ValidationFailed.one("name", "Policy with this name already exists.")


def _split(body: wire.common.Request) -> dict[str, Any]:
    """The row's columns: name, execution_logging, and the settings as stored."""
    config = body.model_dump(mode="json")
    name, logging = config.pop("name"), config.pop("execution_logging")
    return {"name": name, "execution_logging": logging, "config": config}


async def create(tx: store.Tx, kind: str, body: wire.common.Request) -> dict[str, Any]:
    values = _split(body)
    await _check_name(tx, values["name"], None)
    return await crud.insert(
        tx, TABLE, {**values, "pk": util.new_uuid(), "kind": kind, "created": util.now()}
    )


async def update(tx: store.Tx, row: dict[str, Any], body: wire.common.Request) -> dict[str, Any]:
    values = _split(body)
    await _check_name(tx, values["name"], row["pk"])
    return await crud.update(tx, TABLE, {"pk": row["pk"]}, values)


def settings(row: dict[str, Any]) -> dict[str, Any]:
    """The policy's settings with their defaults; stored values the kind no longer accepts are
    shown as stored (and logged) rather than failing the listing."""
    kind = kinds.KINDS.get(row["kind"])
    if kind is None:
        return dict(row["config"])
    try:
        config = kind.Config.model_validate(row["config"])
    except pydantic.ValidationError:
        log.warning("policy settings invalid", policy=row["pk"], kind=row["kind"])
        return {k: v for k, v in row["config"].items() if k in kind.Config.model_fields}
    return {k: getattr(config, k) for k in kind.Config.model_fields}


def writable(row: dict[str, Any], request: type[wire.common.Request]) -> dict[str, Any]:
    """The request-shaped current values (the base of a PATCH)."""
    current = {"name": row["name"], "execution_logging": row["execution_logging"], **row["config"]}
    base = {k: current[k] for k in request.model_fields if k in current}
    try:  # fill in the defaults so that a PATCH changes only what it names
        return request.model_validate(base).model_dump(mode="json")
    except pydantic.ValidationError:
        return base


async def serialize(
    tx: store.Tx,
    rows: list[dict[str, Any]],
    model: type[wire.policies.Policy] = wire.policies.Policy,
) -> list[wire.policies.Policy]:
    """`model` is `wire.policies.Policy` (the summary) or a kind's generated model."""
    bindings = await crud.find_many(tx, "policy_bindings", "policy", [r["pk"] for r in rows])
    bound = Counter(b["policy"] for b in bindings)
    extra = model is not wire.policies.Policy
    out = []
    for r in rows:
        values = {
            "pk": r["pk"],
            "name": r["name"],
            "kind": r["kind"],
            "execution_logging": r["execution_logging"],
            "managed": r["managed"],
            "bound_to": bound[r["pk"]],
            **wire.policies.policy_names(r["kind"]),
            **(settings(r) if extra else {}),
        }
        out.append(model.model_construct(**values))
    return out


async def test(policy: dict[str, Any], request: engine.Request) -> wire.policies.PolicyTestResult:
    """Evaluate `policy` alone for `request`; errors and timeouts fail it with their message."""
    try:
        kind = kinds.build(policy["kind"], policy["config"])
        deadline = time.monotonic() + TEST_TIMEOUT
        async with asyncio.timeout(TEST_TIMEOUT):
            verdict = await kind.evaluate(dataclasses.replace(request, deadline=deadline))
    except kinds.PolicyError as exc:
        return _failed(str(exc))
    except pydantic.ValidationError:
        return _failed("The policy's settings are invalid.")
    except TimeoutError:
        return _failed("Policy timed out.")
    return wire.policies.PolicyTestResult(
        passing=verdict.passing, messages=verdict.messages, log_messages=[]
    )


def _failed(message: str) -> wire.policies.PolicyTestResult:
    return wire.policies.PolicyTestResult(passing=False, messages=[message], log_messages=[])
