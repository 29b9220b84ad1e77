"""Authenticator validate stage (`ak-stage-authenticator-validate`): the second factor.

Runs after a first factor (usually the password stage) in an authentication flow. `before`
decides without asking when the user has no confirmed device of the configured classes
(`not_configured_action`) or used one within `last_auth_threshold` seconds; otherwise the
challenge lists one entry per device class and the response's `code` is checked against the
user's TOTP devices, then static codes (`identity.devices.verify_totp` / `consume_static`).
Success sets `auth_method` to `auth_mfa` for user_login and the login event.

`not_configured_action: configure` denies for now, with a message saying to set up an
authenticator first: authentik would insert `configuration_stages` into the plan, and the executor
cannot insert stages yet. The challenge's `configuration_stages` is therefore always empty.

# SECURITY: a pending user who has not passed a first factor is denied (identification alone
# proves nothing). Each failure writes a `login_failed` event (without the code); after
# MAX_FAILURES the flow is cancelled, and failures are also counted per user across flows in the
# cache (the `login_throttle` limits and window), so restarting the flow does not give an
# attacker who knows the password unlimited guesses at the 10^6 TOTP space. The check, the
# verification and the count run under a per-user lock, so parallel guesses are counted too.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import Field

from tessera.core import events, store
from tessera.core.identity import devices, util
from tessera.core.policies import reputation
from tessera.core.stages import base

INVALID = "Invalid Token"
NOT_AUTHENTICATED = "Failed to authenticate."
MAX_FAILURES = 5
SUPPORTED = ("totp", "static")  # webauthn is accepted in the settings but not checked yet

DeviceClass = Literal["totp", "static", "webauthn"]


def _all_classes() -> list[DeviceClass]:
    return ["totp", "static", "webauthn"]


class Config(base.StageConfig):
    device_classes: list[DeviceClass] = Field(default_factory=_all_classes)
    not_configured_action: Literal["skip", "deny", "configure"] = "skip"
    configuration_stages: list[str] = Field(default_factory=list)
    last_auth_threshold: Annotated[int, Field(ge=0, le=366 * 86400)] = 0  # seconds


class Response(base.ChallengeResponse):
    code: Annotated[str, Field(max_length=devices.MAX_CODE_LENGTH)] = ""
    selected_challenge: dict[str, Any] | None = None


class AuthenticatorValidate(base.Stage):
    kind = "authenticator_validate"
    component = "ak-stage-authenticator-validate"
    Config = Config
    Response = Response

    async def _devices(self, run: base.Run) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """The authenticated pending user (None if there is none) and their usable devices."""
        assert isinstance(self.config, Config)
        user = await run.pending_user()
        if user is None or not user["is_active"] or not run.state.context.get("auth_method"):
            return None, []
        kinds: list[str] = [kind for kind in self.config.device_classes if kind in SUPPORTED]
        async with run.services.store.read() as tx:
            return user, await devices.confirmed(tx, user["pk"], kinds)

    def _unconfigured(self) -> base.Outcome:
        assert isinstance(self.config, Config)
        if self.config.not_configured_action == "skip":
            return base.Outcome.next()
        if self.config.not_configured_action == "configure":
            return base.Outcome.deny(
                "Two-factor authentication is required but you have no authenticator; "
                "set one up first or ask an administrator."
            )
        return base.Outcome.deny("Two-factor authentication is required but not configured.")

    async def before(self, run: base.Run) -> base.Outcome | None:
        assert isinstance(self.config, Config)
        user, found = await self._devices(run)
        if user is None:
            return base.Outcome.deny(NOT_AUTHENTICATED)
        if not found:
            return self._unconfigured()
        threshold = self.config.last_auth_threshold
        if threshold and _recently_used(found, threshold):
            return base.Outcome.next()
        return None

    async def challenge(self, run: base.Run) -> dict[str, Any]:
        _, found = await self._devices(run)
        seen: dict[str, dict[str, Any]] = {}
        for device in found:  # one entry per class, as authentik's client expects
            seen.setdefault(device["kind"], device)
        return {
            "device_challenges": [
                {
                    "device_class": kind,
                    "device_uid": str(device["pk"]),
                    "challenge": {},
                    "last_used": device["last_used"].isoformat() if device["last_used"] else None,
                }
                for kind, device in seen.items()
            ],
            "configuration_stages": [],
        }

    async def on_valid(self, run: base.Run, response: base.ChallengeResponse) -> base.Outcome:
        assert isinstance(response, Response)
        user, found = await self._devices(run)
        if user is None:
            return base.Outcome.deny(NOT_AUTHENTICATED)
        if not found:
            return self._unconfigured()
        code = response.code.strip()
        if not code and response.selected_challenge is not None:
            return base.Outcome("retry")  # the client picked a device: show it again
        selected = (response.selected_challenge or {}).get("device_class")
        candidates = [d for d in found if selected in (None, d["kind"])]
        device = await _attempt(run, user, candidates, code)
        if isinstance(device, base.Outcome):
            return device
        run.state.context["auth_method"] = "auth_mfa"
        args = run.state.context.setdefault("auth_method_args", {})
        args.setdefault("mfa_devices", []).append(
            {"pk": device["pk"], "device_class": device["kind"], "name": device["name"]}
        )
        return base.Outcome.next()


def _recently_used(found: list[dict[str, Any]], threshold: int) -> bool:
    since = util.now() - dt.timedelta(seconds=threshold)
    return any(d["last_used"] is not None and d["last_used"] >= since for d in found)


async def _attempt(
    run: base.Run, user: dict[str, Any], candidates: list[dict[str, Any]], code: str
) -> dict[str, Any] | base.Outcome:
    """The device that accepted `code`, or the outcome of a refused or failed attempt."""
    limit = run.services.settings.login_throttle.per_username
    async with run.services.store.transaction() as tx:
        # SECURITY: one attempt per user at a time (an advisory lock shared by replicas), so a
        # burst of parallel guesses cannot all pass the throttle before any of them is counted.
        await devices.lock_user(tx, user["pk"])
        if (await run.services.cache.get(_counter(user)) or 0) >= limit:
            return base.Outcome.deny("Too many failed attempts; try again later.")
        device = await _check(tx, run, candidates, code) if code else None
        return device if device is not None else await _failed(tx, run, user)


async def _check(
    tx: store.Tx, run: base.Run, candidates: list[dict[str, Any]], code: str
) -> dict[str, Any] | None:
    """The device that accepts `code` (and has now used it up), or None."""
    keyring = run.services.keyring
    for device in candidates:
        if device["kind"] == "totp":
            accepted = code.isdigit() and await devices.verify_totp(tx, keyring, device["pk"], code)
        else:
            accepted = await devices.consume_static(tx, keyring, device, code)
        if accepted:
            return device
    return None


def _counter(user: dict[str, Any]) -> str:
    return f"throttle:mfa:user:{user['pk']}"


async def _failed(tx: store.Tx, run: base.Run, user: dict[str, Any]) -> base.Outcome:
    window = run.services.settings.login_throttle.window_seconds
    await run.services.cache.incr(_counter(user), window)
    await reputation.record(run.services.cache, user["username"], run.client_ip, -1)
    key = run.stage_pk
    run.state.failures[key] = run.state.failures.get(key, 0) + 1
    await events.record(
        tx,
        "login_failed",
        user=user,
        client_ip=run.client_ip,
        context={
            "username": run.state.context.get("pending_user_identifier", user["username"]),
            "stage": run.stage_name,
            "reason": "invalid second factor",
        },
        retention=run.retention,
    )
    if run.state.failures[key] >= MAX_FAILURES:
        return base.Outcome.deny("Too many failed attempts; start again.")
    return base.Outcome.retry("code", INVALID, "invalid")
