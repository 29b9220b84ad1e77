"""Failed attempts at the authenticating stages that check a second factor or a passkey.

Called by `authenticator_validate` (TOTP, static and WebAuthn codes) and `passkey` (username-less
passkey logins). One failure lowers the reputation of the user and client address, counts
towards the flow's limit and is recorded as `login_failed`; at `MAX_FAILURES` the flow is
cancelled. The throttle counters are the callers' own: the login throttle's (`throttle`) for
passkeys, a second-factor counter per user for validation.
"""

from __future__ import annotations

from typing import Any

from tessera.core import events, store
from tessera.core.policies import reputation
from tessera.core.stages import base

MAX_FAILURES = 5
CANCELLED = "Too many failed attempts; start again."


async def failed(
    tx: store.Tx,
    run: base.Run,
    user: dict[str, Any] | None,
    *,
    username: str,
    reason: str,
    field: str,
    message: str,
) -> base.Outcome:
    """Record one failed attempt; the stage asks again, or the flow ends at the limit."""
    if user is not None:
        await reputation.record(run.services.cache, user["username"], run.client_ip, -1)
    key = run.stage_pk
    run.state.failures[key] = run.state.failures.get(key, 0) + 1
    await events.record(
        tx,
        "login_failed",
        user=user,
        client_ip=run.client_ip,
        context={
            "username": username,
            "stage": run.stage_name,
            "reason": reason,
            "http_request": run.http_request,
        },
        retention=run.retention,
    )
    if run.state.failures[key] >= MAX_FAILURES:
        return base.Outcome.deny(CANCELLED)
    return base.Outcome.retry(field, message, "invalid")
