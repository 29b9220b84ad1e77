"""Policies as the admin API sees them: unique names, per-kind settings, and the `test` action.

Called by the API's `/policies/<kind>/` and `/policies/all/` resources. A policy row keeps its
kind's settings as JSON in `config` (the `Config` model's dump); `test` evaluates one policy for
one user through the engine itself, with a binding of the defaults (`test_binding`) loaded by
`engine.load_rows` (so the user's groups and their ancestors are there, as in a flow), and answers
with the verdict, the error's text (for the administrator) and what the policy logged.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
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
            "execution_logging": r["execution_logging"],
            "managed": r["managed"],
            "bound_to": bound[r["pk"]],
            **wire.policies.policy_names(r["kind"]),
            **(settings(r) if extra else {}),
        }
        out.append(model.model_construct(**values))
    return out


def test_binding(policy: dict[str, Any]) -> dict[str, Any]:
    """A binding of `policy` with authentik's defaults (no negate, failure result false)."""
    return {
        "pk": f"test-{policy['pk']}",
        "target": "",
        "policy": policy["pk"],
        "group": None,
        "user": None,
        "negate": False,
        "enabled": True,
        "failure_result": False,
        "timeout": TEST_TIMEOUT,
        "order": 0,
    }


async def test(
    db: store.Store,
    loaded: engine.Loaded,
    request: engine.Request,
    retention: dt.timedelta,
) -> wire.policies.PolicyTestResult:
    """Evaluate the policy of `loaded` (from `test_binding`) for `request`. An error, a timeout or
    an unexpected exception fails it with its text, shown to the administrator asking, and is
    recorded as a `policy_exception` event as in a flow. Results are never taken from the cache."""
    request = dataclasses.replace(request, result_ttl=0)
    result = await engine.decide(loaded, "all", request, db, retention)
    errors_ = [failure["message"] for failure in result.exceptions]
    return wire.policies.PolicyTestResult(
        passing=result.passing and not result.error,
        messages=[*result.messages, *errors_],
        log_messages=[wire.policies.LogEvent.model_validate(entry) for entry in result.log],
    )
