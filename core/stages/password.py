"""Password stage (`ak-stage-password`): check the pending user's password.

Attempts are counted in the cache per username and per client address before the password is
checked, and a successful one is taken back; past the limits of `login_throttle` the stage
refuses without checking the password, for the rest of the window.

# SECURITY: an unknown user (pretend_user_exists) costs one argon2 hash like a real one and gets
# the same error; after `failed_attempts_before_cancel` failures the flow is cancelled; failures
# write a `login_failed` event without the password.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from pydantic import Field

from tessera.core import crypto, events, wire
from tessera.core.identity import users
from tessera.core.policies import reputation
from tessera.core.stages import base

INVALID = "Invalid password"


class Config(base.StageConfig):
    backends: list[str] = Field(default_factory=lambda: ["tessera.core.auth.InbuiltBackend"])
    failed_attempts_before_cancel: Annotated[int, Field(ge=1, le=1000)] = 5
    allow_show_password: bool = False
    # The flow a user runs to change their password (listed in their user settings).
    configure_flow: wire.common.Slug | None = None


class Response(base.ChallengeResponse):
    password: Annotated[str, Field(max_length=1024)]


class Password(base.Stage):
    kind = "password"
    component = "ak-stage-password"
    Config = Config
    Response = Response

    async def before(self, run: base.Run) -> base.Outcome | None:
        # A passkey verified at identification has authenticated the user already (authentik's
        # passkey autofill); the context is server-side, so only a verified assertion sets it.
        if run.state.context.get("auth_method") == base.PASSKEY_METHOD:
            return base.Outcome.next()
        return None

    async def challenge(self, run: base.Run) -> dict[str, Any]:
        assert isinstance(self.config, Config)
        return {"allow_show_password": self.config.allow_show_password}

    async def on_valid(self, run: base.Run, response: base.ChallengeResponse) -> base.Outcome:
        assert isinstance(self.config, Config) and isinstance(response, Response)
        # SECURITY: the attempt is counted before the password is checked and taken back only
        # when it succeeds, so that a burst of parallel guesses cannot all pass the throttle
        # before any of them is counted (the counters are atomic across replicas).
        if not await _reserve(run):
            return await _refuse(run)
        user = await run.pending_user()
        stored = user["password"] if user is not None and user["is_active"] else ""
        ok = await _verify(stored, response.password)
        identifier = str(run.state.context.get("pending_user_identifier", ""))
        if ok and user is not None:
            await _release(run)
            await reputation.record(run.services.cache, identifier, run.client_ip, +1)
            run.state.context["auth_method"] = "password"
            if crypto.passwords.needs_rehash(stored):
                async with run.services.store.transaction() as tx:
                    await users.set_password(tx, user["pk"], response.password)
            return base.Outcome.next()
        await reputation.record(run.services.cache, identifier, run.client_ip, -1)
        return await self._failed(run, user)

    async def _failed(self, run: base.Run, user: dict[str, Any] | None) -> base.Outcome:
        assert isinstance(self.config, Config)
        key = run.stage_pk
        run.state.failures[key] = run.state.failures.get(key, 0) + 1
        identifier = run.state.context.get("pending_user_identifier", "")
        async with run.services.store.transaction() as tx:
            await events.record(
                tx,
                "login_failed",
                user=user,
                client_ip=run.client_ip,
                context={"username": identifier, "stage": run.stage_name},
                retention=run.retention,
            )
        if run.state.failures[key] >= self.config.failed_attempts_before_cancel:
            return base.Outcome.deny("Too many failed attempts; start again.")
        return base.Outcome.retry("password", INVALID, "invalid")


def user_counter(identifier: str) -> str:
    """The login-throttle counter of a username or email (as typed, case-folded)."""
    return f"throttle:login:user:{crypto.secrets.sha256_hex(identifier.casefold())}"


def ip_counter(client_ip: str) -> str:
    """The login-throttle counter of a client address."""
    return f"throttle:login:ip:{client_ip}"


def _counters(run: base.Run) -> list[str]:
    identifier = str(run.state.context.get("pending_user_identifier", ""))
    return [user_counter(identifier), ip_counter(run.client_ip)]


async def _reserve(run: base.Run) -> bool:
    """Count this attempt against the username and the client address; False (and nothing
    counted) when either has used up its attempts in the window."""
    limits = run.services.settings.login_throttle
    user_key, ip_key = _counters(run)
    window = limits.window_seconds
    user_count = await run.services.cache.incr(user_key, window)
    ip_count = await run.services.cache.incr(ip_key, window)
    if user_count > limits.per_username or ip_count > limits.per_ip:
        await _release(run)
        return False
    return True


async def _release(run: base.Run) -> None:
    """Take back a reserved attempt (it succeeded, or it was refused unchecked)."""
    window = run.services.settings.login_throttle.window_seconds
    for counter in _counters(run):
        await run.services.cache.incr(counter, window, by=-1)


async def _refuse(run: base.Run) -> base.Outcome:
    async with run.services.store.transaction() as tx:
        await events.record(
            tx,
            "suspicious_request",
            user=None,
            client_ip=run.client_ip,
            context={
                "reason": "too many failed logins",
                "username": run.state.context.get("pending_user_identifier", ""),
            },
            retention=run.retention,
        )
    return base.Outcome.deny("Too many failed login attempts; try again later.")


async def _verify(stored: str, password: str) -> bool:
    return await asyncio.to_thread(crypto.passwords.verify_password, stored, password)
