"""The policy engine: evaluate the bindings of a target (flow, stage binding, application).

Bindings run in `order`; each binds a policy, a group (the user or one of their groups' ancestors
is in it) or a user. `negate` flips a result; an error or a timeout yields the binding's
`failure_result` as it is set (after negation, as authentik's `PolicyProcess`: negate never flips
it). The target's mode combines them: `all` needs every binding to pass, `any` one. No enabled
binding means pass. What an expression logs (`ak_logger`, `print`) comes back in `Result.log`, in
the shape of authentik's log events, and goes to the server log.

# SECURITY: `Result.error` tells the caller that a binding failed to evaluate; the flow planner
# denies the flow then, instead of skipping the stage, unless the binding's failure_result passes.
# The error's text goes to the `policy_exception` event and the server log only, never into
# `Result.messages` (which end users see on the access-denied page).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from tessera.core import crypto, events, store
from tessera.core.identity import groups
from tessera.core.policies import kinds, metrics
from tessera.core.store import crud

DEFAULT_RETENTION = dt.timedelta(days=365)  # the events' default retention
# Seconds a policy result is reused for the same user and address, unless the caller passes the
# setting (`config.Cache.timeout_policies`, `AUTHENTIK_CACHE__TIMEOUT_POLICIES`).
DEFAULT_RESULT_TTL = 30.0
log = structlog.get_logger(__name__)
LOG_LEVELS = frozenset({"debug", "info", "warning", "error", "critical"})


@dataclass
class Request:
    user: dict[str, Any] | None
    context: dict[str, Any] = field(default_factory=dict)
    client_ip: str = ""
    cache: Any = None  # the cache backend, for kinds that keep counters (reputation)
    result_ttl: float = DEFAULT_RESULT_TTL  # seconds results are reused; 0: never
    groups: list[dict[str, Any]] = field(default_factory=list)  # the user's own groups
    all_groups: list[dict[str, Any]] = field(default_factory=list)  # with inherited ones
    # When the policy being evaluated must be done (`time.monotonic()`), set per binding from its
    # timeout: kinds that run code in a thread (expression) stop it there, since cancelling the
    # awaiting task does not stop the thread.
    deadline: float | None = None
    # The store, for kinds that change state (password expiry without `deny_only`); `decide`
    # sets it from its `db`.
    db: store.Store | None = None


@dataclass
class Result:
    passing: bool
    messages: list[str] = field(default_factory=list)
    error: bool = False
    # Policies that raised or timed out: {"pk", "name", "kind", "message"} (for the events).
    exceptions: list[dict[str, str]] = field(default_factory=list)
    # What the policies logged, as authentik's `LogEvent`s: timestamp, log_level, logger (the
    # policy's name), event, attributes.
    log: list[dict[str, Any]] = field(default_factory=list)


async def bindings_of(tx: store.Tx, target: str) -> list[dict[str, Any]]:
    filters = [crud.Filter("target", "eq", target), crud.Filter("enabled", "eq", True)]
    return await crud.rows(tx, "policy_bindings", filters, ordering=("order",))


@dataclass
class Loaded:
    """What evaluating a target needs from the store, read in one go."""

    rows: list[dict[str, Any]]
    policies: dict[str, dict[str, Any]]
    ancestors: set[str]
    groups: list[dict[str, Any]] = field(default_factory=list)
    all_groups: list[dict[str, Any]] = field(default_factory=list)


async def load(tx: store.Tx, target: str, user: dict[str, Any] | None) -> Loaded:
    rows = await bindings_of(tx, target)
    if not rows:
        return Loaded([], {}, set())
    return await load_rows(tx, rows, user)


async def load_rows(
    tx: store.Tx, rows: list[dict[str, Any]], user: dict[str, Any] | None
) -> Loaded:
    """What evaluating `rows` (stored bindings, or built by a caller such as the prompt stage's
    validation policies) needs: their policies and the user's groups with their ancestors."""
    tree = await groups.Tree.load(tx)
    member_of = (await crud.groups_of_users(tx, [user["pk"]]))[user["pk"]] if user else []
    wanted = [r["policy"] for r in rows if r["policy"]]
    policies = {p["pk"]: p for p in await crud.find_many(tx, "policies", "pk", wanted)}
    ancestors = {a for g in member_of for a in tree.ancestors(g)}
    return Loaded(
        rows,
        policies,
        ancestors,
        [tree.rows[g] for g in member_of],
        [tree.rows[a] for a in sorted(ancestors)],
    )


async def decide(
    loaded: Loaded,
    mode: Literal["all", "any"],
    request: Request,
    db: store.Store | None = None,
    retention: dt.timedelta = DEFAULT_RETENTION,
) -> Result:
    """Run the loaded bindings (outside any transaction: policies may take time). With `db`, a
    policy that raised or timed out is recorded as a `policy_exception` event."""
    if not loaded.rows:
        return Result(True)
    request.groups, request.all_groups = loaded.groups, loaded.all_groups
    request.db = request.db or db
    results = [await _one(row, loaded.policies, loaded.ancestors, request) for row in loaded.rows]
    passing = all(r.passing for r in results) if mode == "all" else any(r.passing for r in results)
    messages = [m for r in results for m in r.messages]
    exceptions = [e for r in results for e in r.exceptions]
    if db is not None and exceptions:
        await _record_exceptions(db, exceptions, request, retention)
    return Result(
        passing,
        messages,
        error=any(r.error for r in results),
        exceptions=exceptions,
        log=[entry for r in results for entry in r.log],
    )


async def evaluate(
    db: store.Store, target: str, mode: Literal["all", "any"], request: Request
) -> Result:
    async with db.read() as tx:
        loaded = await load(tx, target, request.user)
    return await decide(loaded, mode, request, db)


async def _record_exceptions(
    db: store.Store,
    exceptions: list[dict[str, str]],
    request: Request,
    retention: dt.timedelta,
) -> None:
    # SECURITY: the event names the policy and the error, never the request's context (which
    # may hold what a user typed, passwords included).
    async with db.transaction() as tx:
        for failure in exceptions:
            await events.record(
                tx,
                "policy_exception",
                user=request.user,
                client_ip=request.client_ip or None,
                context={"policy": failure, "message": failure["message"]},
                retention=retention,
            )


async def _one(
    row: dict[str, Any], policies: dict[str, dict[str, Any]], ancestors: set[str], request: Request
) -> Result:
    if row["group"] is not None:
        outcome = Result(row["group"] in ancestors)
    elif row["user"] is not None:
        outcome = Result(request.user is not None and request.user["pk"] == row["user"])
    else:
        outcome = await _policy(policies[row["policy"]], row, request)
        if outcome.exceptions:  # the failure result stands as set: negate does not flip it
            return outcome
    if row["negate"]:
        outcome.passing = not outcome.passing
    return outcome


def _cache_key(policy: dict[str, Any], request: Request) -> str | None:
    """Where a result of `policy` for this request may be cached, or None: only requests
    without a flow context (planning, application access), which identify the user and the
    address alone. The key hashes the policy's settings, so an edited policy is never served a
    stale result; no context (which may hold a typed password) goes into it."""
    if request.cache is None or request.context or request.result_ttl <= 0:
        return None
    settings = json.dumps([policy["pk"], policy["kind"], policy["config"]], sort_keys=True)
    user = request.user["pk"] if request.user else "-"
    return f"policy-result:{crypto.secrets.sha256_hex(settings)}:{user}:{request.client_ip}"


async def _policy(policy: dict[str, Any], row: dict[str, Any], request: Request) -> Result:
    started: float | None = None  # set when the policy runs (a cached result is no run)
    try:
        kind = kinds.build(policy["kind"], policy["config"])
        key = _cache_key(policy, request) if kind.cacheable else None
        cached = await request.cache.get(key) if key else None
        if isinstance(cached, dict):
            return Result(bool(cached["passing"]), list(cached["messages"]))
        deadline = time.monotonic() + row["timeout"]
        started = time.perf_counter()
        async with asyncio.timeout(row["timeout"]):
            verdict = await kind.evaluate(dataclasses.replace(request, deadline=deadline))
        _observe(policy, row, "pass" if verdict.passing else "fail", started)
        if key:  # errors are never cached: they raise before this
            value = {"passing": verdict.passing, "messages": verdict.messages}
            await request.cache.set(key, value, request.result_ttl)
    except (TimeoutError, kinds.PolicyError) as exc:
        _observe(policy, row, "error", started)
        message = "Policy timed out." if isinstance(exc, TimeoutError) else str(exc)
        return _failed(policy, row, message)
    except Exception as exc:  # the edge of a policy kind: see below
        # SECURITY: a kind that raises what it should not (a bug, a library's ValueError) is a
        # policy error like any other: the binding's failure result and a `policy_exception`
        # event, never a 500 that would skip the decision.
        log.warning("policy raised", policy=policy["pk"], kind=policy["kind"], exc_info=True)
        _observe(policy, row, "error", started)
        return _failed(policy, row, f"{type(exc).__name__}: {exc}")
    entries = [{**entry, "logger": policy["name"]} for entry in verdict.log]
    for entry in entries:  # to the server log too, as authentik's `ak_logger` writes there
        level = entry["log_level"] if entry["log_level"] in LOG_LEVELS else "info"
        getattr(log, level)(
            "policy log", policy=policy["name"], message=entry["event"], data=entry["attributes"]
        )
    return Result(verdict.passing, verdict.messages, log=entries)


def _observe(
    policy: dict[str, Any], row: dict[str, Any], result: str, started: float | None
) -> None:
    """The run's metrics; nothing when the policy never ran (its settings could not be read)."""
    if started is not None:
        seconds = time.perf_counter() - started
        metrics.observe(policy["kind"], policy["name"], row, result, seconds)


def _failed(policy: dict[str, Any], row: dict[str, Any], message: str) -> Result:
    """The binding's failure result for a policy that raised or timed out. The message goes to
    the event and the log; users see none (the planner's generic refusal, or nothing)."""
    failure = {
        "pk": policy["pk"],
        "name": policy["name"],
        "kind": policy["kind"],
        "message": message[:500],
    }
    log.warning("policy failed to evaluate", policy=policy["pk"], message=failure["message"])
    return Result(
        bool(row["failure_result"]),
        [],
        error=not row["failure_result"],
        exceptions=[failure],
    )
