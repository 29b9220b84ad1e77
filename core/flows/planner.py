"""Planning: which stages of a flow apply to this browser, as the policies decide.

`plan` checks the flow's authentication requirement and its policies, then lists its stage
bindings in order, dropping those evaluated at planning time whose policies fail. `current`
loads the binding at the state's index and re-evaluates its policies when asked to. An entry a
stage inserted while the flow ran (`FlowState.insert`: the validate stage's configuration stage)
has no binding: `current` loads its stage directly, with no policies and the `retry` action; so
does a provided stage a layer above inserted (`FlowState.insert_provided`: the SAML provider's
front-channel logout), which no flow binds.

# SECURITY: a binding whose policies fail to evaluate (error or timeout, with the default
# failure_result) ends the flow with access denied; it never just skips the stage.
# SECURITY: an inserted entry whose stage is gone, or is no longer listed in the
# `configuration_stages` of the stage that inserted it, ends the flow too: skipping it would reach
# user_login without the second factor.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from tessera.core import events, stages
from tessera.core.flows import definitions, metrics
from tessera.core.identity import users
from tessera.core.policies import engine
from tessera.core.stages import base
from tessera.core.store import crud

POLICY_ERROR = "A policy could not be evaluated; access denied."
MISCONFIGURED = "This flow is misconfigured; access denied."


def _retention(services: base.Services) -> dt.timedelta:
    return dt.timedelta(days=services.settings.events.retention_days)


@dataclass
class Step:
    binding_row: dict[str, Any]
    stage_row: dict[str, Any]
    stage: base.Stage


async def _requirement_met(
    services: base.Services, flow: dict[str, Any], user: dict[str, Any] | None, redirected: bool
) -> str:
    """An empty string when the flow's authentication requirement holds, else why not."""
    requirement = flow["authentication"]
    if requirement == "require_redirect" and not redirected:
        return "This flow can only be reached from an application."
    if requirement == "require_outpost":  # browsers never are outposts
        return "This flow can only be used by an outpost."
    if requirement == "require_authenticated" and user is None:
        return "This flow requires you to be logged in."
    if requirement == "require_unauthenticated" and user is not None:
        return "This flow is only for visitors who are not logged in."
    if requirement == "require_superuser":
        if user is None:
            return "This flow requires a superuser."
        async with services.store.read() as tx:
            if not await users.is_superuser(tx, user["pk"]):
                return "This flow requires a superuser."
    return ""


async def admits(
    services: base.Services,
    snapshot: definitions.Snapshot,
    flow: dict[str, Any],
    user: dict[str, Any] | None,
    client_ip: str,
    *,
    redirected: bool = False,
) -> str:
    """An empty string when this browser may start the flow (its authentication requirement and
    the policies bound to the flow itself), else why not. `plan` starts with this; the user
    settings list asks it of each configure flow."""
    refusal = await _requirement_met(services, flow, user, redirected)
    if refusal:
        return refusal
    loaded = await snapshot.policy_load(services.store, flow["pk"], user)
    verdict = await engine.decide(
        loaded,
        flow["policy_engine_mode"],
        _policy_request(services, user, client_ip),
        services.store,
        _retention(services),
    )
    if verdict.error:
        return POLICY_ERROR
    if not verdict.passing:
        return " ".join(verdict.messages) or "Access denied."
    return ""


def _policy_request(
    services: base.Services, user: dict[str, Any] | None, client_ip: str
) -> engine.Request:
    return engine.Request(
        user=user,
        client_ip=client_ip,
        cache=services.cache,
        result_ttl=services.settings.cache.timeout_policies,
    )


async def plan(
    services: base.Services,
    snapshot: definitions.Snapshot,
    flow: dict[str, Any],
    user: dict[str, Any] | None,
    client_ip: str,
    *,
    redirected: bool = False,
) -> base.FlowState | base.Outcome:
    """The flow's plan for this browser. `redirected`: an application or another flow sent the
    browser here with an accepted `next` (for `require_redirect`)."""
    with metrics.timed(metrics.PLAN_TIME, flow["slug"]):
        return await _plan(services, snapshot, flow, user, client_ip, redirected)


async def _plan(
    services: base.Services,
    snapshot: definitions.Snapshot,
    flow: dict[str, Any],
    user: dict[str, Any] | None,
    client_ip: str,
    redirected: bool,
) -> base.FlowState | base.Outcome:
    refusal = await admits(services, snapshot, flow, user, client_ip, redirected=redirected)
    if refusal:
        return base.Outcome.deny(refusal)
    request = _policy_request(services, user, client_ip)
    kept = []
    for row in snapshot.bindings.get(flow["pk"], []):
        if row["evaluate_on_plan"]:
            loaded = await snapshot.policy_load(services.store, row["pk"], user)
            result = await engine.decide(
                loaded, row["policy_engine_mode"], request, services.store, _retention(services)
            )
            if result.error:
                return base.Outcome.deny(POLICY_ERROR)
            if not result.passing:
                continue
        kept.append(row["pk"])
    return base.FlowState(
        flow_pk=flow["pk"], slug=flow["slug"], designation=flow["designation"], bindings=kept
    )


async def current(
    services: base.Services,
    snapshot: definitions.Snapshot,
    state: base.FlowState,
    user: dict[str, Any] | None,
    client_ip: str,
) -> Step | base.Outcome | None:
    """The step at the state's index; None when its policies say skip; Outcome on error."""
    inserted = state.insertion()
    if inserted is not None:
        return await _inserted(services, snapshot, state, inserted, user, client_ip)
    binding = snapshot.binding_rows.get(state.bindings[state.index])
    stage_row = snapshot.stage_rows.get(binding["stage"]) if binding else None
    if binding is None or stage_row is None:
        return None  # removed while the flow was running
    if binding["re_evaluate_policies"] and snapshot.policy_bindings.get(binding["pk"]):
        subject = user
        if state.pending_user:
            async with services.store.read() as tx:
                subject = await crud.find(tx, "users", pk=state.pending_user) or user
        loaded = await snapshot.policy_load(services.store, binding["pk"], subject)
        request = engine.Request(
            user=subject,
            context=dict(state.context),
            client_ip=client_ip,
            cache=services.cache,
            result_ttl=services.settings.cache.timeout_policies,
        )
        result = await engine.decide(
            loaded, binding["policy_engine_mode"], request, services.store, _retention(services)
        )
        if result.error:
            return base.Outcome.deny(POLICY_ERROR)
        if not result.passing:
            return None
    return await _step(services, snapshot, state, binding, stage_row, user, client_ip)


async def _inserted(
    services: base.Services,
    snapshot: definitions.Snapshot,
    state: base.FlowState,
    inserted: base.Insertion,
    user: dict[str, Any] | None,
    client_ip: str,
) -> Step | base.Outcome:
    """The step of an inserted entry: its stage, under a stand-in binding that only retries."""
    if not inserted["by"]:  # a provided stage (`FlowState.insert_provided`)
        kind = inserted["stage"]
        provided = stages.PROVIDED.get(kind)
        if provided is None:
            return base.Outcome.deny(MISCONFIGURED)
        row = {"pk": kind, "name": kind, "kind": kind, "config": {}}
        return Step(_stand_in(state, kind), row, provided(provided.Config()))
    stage_row = snapshot.stage_rows.get(inserted["stage"])
    by = snapshot.stage_rows.get(inserted["by"])
    listed = by["config"].get("configuration_stages", []) if by is not None else []
    if stage_row is None or inserted["stage"] not in listed:
        return base.Outcome.deny(MISCONFIGURED)
    binding = _stand_in(state, stage_row["pk"])
    return await _step(services, snapshot, state, binding, stage_row, user, client_ip)


def _stand_in(state: base.FlowState, stage: str) -> dict[str, Any]:
    """The binding an inserted entry runs under: no policies, invalid answers retried."""
    return {
        "pk": state.bindings[state.index],
        "target": state.flow_pk,
        "stage": stage,
        "order": 0,
        "evaluate_on_plan": False,
        "re_evaluate_policies": False,
        "policy_engine_mode": "any",
        "invalid_response_action": "retry",
    }


async def _step(
    services: base.Services,
    snapshot: definitions.Snapshot,
    state: base.FlowState,
    binding: dict[str, Any],
    stage_row: dict[str, Any],
    user: dict[str, Any] | None,
    client_ip: str,
) -> Step | base.Outcome:
    try:
        stage = snapshot.stage(stage_row["pk"])
    except stages.StageError as exc:
        # SECURITY: a broken stage ends the flow; it is never skipped.
        async with services.store.transaction() as tx:
            await events.record(
                tx,
                "configuration_error",
                user=user,
                client_ip=client_ip,
                context={
                    "message": str(exc)[:500],
                    "flow": state.slug,
                    "stage": {"pk": stage_row["pk"], "name": stage_row["name"]},
                },
                retention=_retention(services),
            )
        return base.Outcome.deny(MISCONFIGURED)
    return Step(binding, stage_row, stage)
