"""The login throttle: attempts counted in the cache per username and per client address.

Called by the password stage and by username-less passkey logins (`passkey`), which share these
counters and the limits and window of `login_throttle`. A stage reserves an attempt before it
checks anything, releases it when the attempt succeeds, and refuses (a `suspicious_request`
event, written in the caller's transaction) when a reservation fails. The counters live in the
cache, so they hold across replicas.

# SECURITY: a reservation is an atomic increment checked against its limit, so a burst of
# parallel guesses cannot all pass before any of them is counted; a refused reservation takes
# its increments back, so refusals do not lengthen the lock-out.
"""

from __future__ import annotations

from typing import Any

from tessera.core import crypto, events, store
from tessera.core.stages import base

REFUSED = "Too many failed login attempts; try again later."


def user_counter(identifier: str) -> str:
    """The login-throttle counter of a username or email (as typed, case-folded)."""
    return f"throttle:login:user:{crypto.secrets.sha256_hex(identifier.casefold())}"


def ip_counter(client_ip: str) -> str:
    """The login-throttle counter of a client address."""
    return f"throttle:login:ip:{client_ip}"


async def reserve(run: base.Run, limits: dict[str, int]) -> bool:
    """Count this attempt against each counter of `limits` (counter -> limit); False, and nothing
    left counted, when any of them has used up its attempts in the window."""
    window = run.services.settings.login_throttle.window_seconds
    counts = [await run.services.cache.incr(counter, window) for counter in limits]
    if any(count > limit for count, limit in zip(counts, limits.values(), strict=True)):
        await release(run, list(limits))
        return False
    return True


async def release(run: base.Run, counters: list[str]) -> None:
    """Take back a reserved attempt (it succeeded, or it was refused unchecked)."""
    window = run.services.settings.login_throttle.window_seconds
    for counter in counters:
        await run.services.cache.incr(counter, window, by=-1)


async def refuse(tx: store.Tx, run: base.Run, context: dict[str, Any]) -> base.Outcome:
    """Deny the flow for a refused reservation, recorded as `suspicious_request` in `tx` (the
    event's context: the reason, then `context`)."""
    await events.record(
        tx,
        "suspicious_request",
        user=None,
        client_ip=run.client_ip,
        context={"reason": "too many failed logins", **context},
        retention=run.retention,
    )
    return base.Outcome.deny(REFUSED)
