"""RFC 3062 Password Modify for a bound LDAP session, through the core's password policies.

A user changes their password in the core by the password-change flow (the password stage's
`configure_flow`, authentik's "default-password-change"), whose prompt stages carry the password
policies as validation policies. An LDAP client's change goes through the same policies: those
of the prompt stages of the flow the bind flow's password stage names (the default flow when it
names none), evaluated by the prompt stage's own code on `{"password", "password_repeat"}`. An
old password, when given, must be the current one. The change writes `password_set`, as the
flow's user_write stage does; the journal's triggers tell the outposts (`push`), which drop the
user's cached binds.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tessera.core import crypto, errors, events, wire
from tessera.core.flows import definitions
from tessera.core.identity import users
from tessera.core.stages import base, prompt

DEFAULT_FLOW = "default-password-change"
WRONG_OLD = "The old password is not the current one."


def _change_flow(
    snapshot: definitions.Snapshot, bind_flow: dict[str, Any]
) -> dict[str, Any] | None:
    """The flow whose policies a new password must pass (see the module's docstring)."""
    for binding in snapshot.bindings.get(bind_flow["pk"], []):
        row = snapshot.stage_rows.get(binding["stage"])
        if row is not None and row["kind"] == "password" and row["config"].get("configure_flow"):
            found = snapshot.flow_named(row["config"]["configure_flow"])
            if found is not None:
                return found
    return snapshot.flows.get(DEFAULT_FLOW)


async def refusals(
    services: base.Services,
    snapshot: definitions.Snapshot,
    bind_flow: dict[str, Any] | None,
    user: dict[str, Any],
    new_password: str,
    client_ip: str,
) -> list[str]:
    """The messages of the password policies that refuse `new_password` (none: accepted)."""
    flow = _change_flow(snapshot, bind_flow) if bind_flow else snapshot.flows.get(DEFAULT_FLOW)
    if flow is None:
        return []
    state = base.FlowState(
        flow_pk=flow["pk"],
        slug=flow["slug"],
        designation=flow["designation"],
        bindings=[],
        pending_user=user["pk"],
    )
    run = base.Run(services, state, user, client_ip, "", secure=True)
    answers = {"password": new_password, "password_repeat": new_password}
    found: list[str] = []
    for binding in snapshot.bindings.get(flow["pk"], []):
        if snapshot.stage_rows.get(binding["stage"], {}).get("kind") != "prompt":
            continue
        stage = snapshot.stage(binding["stage"])
        assert isinstance(stage, prompt.Prompt)
        found += await stage._validate(run, answers)
    return found


async def change(
    services: base.Services,
    snapshot: definitions.Snapshot,
    bind_flow: dict[str, Any] | None,
    user: dict[str, Any],
    body: wire.ldap.PasswordChangeRequest,
    client_ip: str,
    http_request: dict[str, str],
) -> None:
    """Set the user's new password, or ValidationFailed (400) naming why not."""
    if body.old_password is not None:
        current = user["password"] if user["is_active"] else ""
        ok = await crypto.work.run(crypto.passwords.verify_password, current, body.old_password)
        if not ok:
            raise errors.ValidationFailed.one("old_password", WRONG_OLD)
    problems = await refusals(services, snapshot, bind_flow, user, body.new_password, client_ip)
    if problems:
        raise errors.ValidationFailed.one("new_password", "; ".join(problems))
    async with services.store.transaction() as tx:
        await users.set_password(tx, user["pk"], body.new_password)
        await events.record(
            tx,
            "password_set",
            user=user,
            client_ip=client_ip,
            context={"http_request": http_request},
            retention=dt.timedelta(days=services.settings.events.retention_days),
        )
