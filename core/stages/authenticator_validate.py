"""Authenticator validate stage (`ak-stage-authenticator-validate`): the second factor.

Runs after a first factor (usually the password stage) in an authentication flow. `before` decides
without asking when the user has no confirmed device of the configured classes
(`not_configured_action`) or this browser passed this stage within `last_auth_threshold`
(its `authentik_mfa` cookie, sealed under the instance key, names the user, the stage and the
device, and expires with the threshold); otherwise the challenge lists one entry per device class
and the response's `code` is checked against the user's TOTP devices, then static codes
(`identity.devices.verify_totp` / `consume_static`), or its `webauthn` assertion against the user's
WebAuthn credentials (the `webauthn` entry's `challenge` is the PublicKeyCredentialRequestOptions
JSON, issued and taken once through `authenticator_webauthn.issue` / `take`, and checked by
`crypto.webauthn.verify_authentication`). Success sets `auth_method` to `auth_mfa` for user_login
and the login event.

`not_configured_action: configure` lets a user without a device enrol one, as in authentik: of
the stages in `configuration_stages` (setup stages only: TOTP, static, WebAuthn), a single one is
inserted into the plan right after this stage (`FlowState.insert`) and the flow goes on there;
with several, the challenge lists them in `configuration_stages` ({pk, name, verbose_name,
meta_model_name}) and the response's `selected_stage` picks the one to insert. The setup stage
enrols the pending user, and its confirmed device counts as this flow's second factor
(`base.device_configured`).

# SECURITY: `selected_stage` is only ever looked up among this stage's own `configuration_stages`
# (a stage pk from anywhere else is refused with a field error), and the planner checks again that
# an inserted entry is listed by the stage that inserted it.
# SECURITY: a pending user who has not passed a first factor is denied (identification alone
# proves nothing). Each failure writes a `login_failed` event (without the code); after
# `attempts.MAX_FAILURES` the flow is cancelled, and failures are also counted per user across
# flows in the cache (the `login_throttle` limits and window), so restarting the flow does not
# give an attacker who knows the password unlimited guesses at the 10^6 TOTP space. The check, the
# verification and the count run under a per-user lock, so parallel guesses are counted too.
# SECURITY: a WebAuthn assertion must answer the challenge this flow state was given (single
# use), come from the configured origin and RP id, be signed by a credential of this user, and
# carry a signature counter above the stored one when either is non-zero; a counter that does not
# increase denies the flow and writes a `suspicious_request` event (a cloned authenticator).
# A user with WebAuthn credentials and no RP configured is denied (`configuration_error`), never
# treated as having no second factor.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from tessera.core import crypto, store, wire
from tessera.core.crypto import webauthn
from tessera.core.identity import devices
from tessera.core.stages import attempts, authenticator_webauthn, base, passkey
from tessera.core.wire import durations

INVALID = "Invalid Token"
MFA_COOKIE = "authentik_mfa"  # authentik's name for the "passed MFA recently" cookie
NOT_AUTHENTICATED = "Failed to authenticate."
SUPPORTED = ("totp", "static", "webauthn")
SETUP_KINDS = ("authenticator_totp", "authenticator_static", "authenticator_webauthn")
INVALID_STAGE = "Invalid stage selected."
NO_SETUP = (
    "Two-factor authentication is required but you have no authenticator, "
    "and none can be set up here; ask an administrator."
)
PASSKEY_REFUSED = passkey.CLONED

DeviceClass = Literal["totp", "static", "webauthn"]


def _all_classes() -> list[DeviceClass]:
    return ["totp", "static", "webauthn"]


class Config(base.StageConfig):
    device_classes: list[DeviceClass] = Field(default_factory=_all_classes)
    not_configured_action: Literal["skip", "deny", "configure"] = "skip"
    configuration_stages: list[wire.flows.StageRef] = Field(default_factory=list)
    last_auth_threshold: durations.UpToAYear = "seconds=0"  # authentik's duration form
    webauthn_user_verification: webauthn.Requirement = "preferred"
    webauthn_hints: wire.flows.NoHints = Field(default_factory=list)
    webauthn_allowed_device_types: wire.flows.NoDeviceTypes = Field(default_factory=list)
    # Tessera's code throttling is its own (`attempts`): no per-kind factors.
    email_otp_throttling_factor: Annotated[float | int | None, wire.flows.only(None)] = None
    sms_otp_throttling_factor: Annotated[float | int | None, wire.flows.only(None)] = None
    totp_otp_throttling_factor: Annotated[float | int | None, wire.flows.only(None)] = None
    static_otp_throttling_factor: Annotated[float | int | None, wire.flows.only(None)] = None


class Response(base.ChallengeResponse):
    code: Annotated[str, Field(max_length=devices.MAX_CODE_LENGTH)] = ""
    selected_challenge: wire.challenges.DeviceChallengeRequest | None = None
    selected_stage: Annotated[str, Field(max_length=64)] | None = None
    webauthn: authenticator_webauthn.AuthenticationCredential | None = None
    # authentik's Duo answer: taken, never valid (Tessera has no Duo devices).
    duo: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None

    _parse = field_validator("webauthn", mode="before")(authenticator_webauthn.json_text)


class AuthenticatorValidate(base.Stage):
    kind = "authenticator_validate"
    read_only = {"webauthn_allowed_device_types_obj": (list[wire.flows.WebAuthnDeviceType], [])}
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
        return user, await run.devices(user["pk"], kinds)

    def _username_less(self, run: base.Run) -> bool:
        """A passwordless flow: nobody identified yet, and WebAuthn accepted (`stages.passkey`)."""
        assert isinstance(self.config, Config)
        return (
            run.state.pending_user is None
            and not run.state.context.get("pending_user_identifier")
            and "webauthn" in self.config.device_classes
        )

    async def _unconfigured(
        self, run: base.Run, selected: str | None = None
    ) -> base.Outcome | None:
        """What a user without a usable device gets; None shows the choice of setup stages."""
        assert isinstance(self.config, Config)
        if self.config.not_configured_action == "skip":
            return base.Outcome.next()
        if self.config.not_configured_action == "deny":
            return base.Outcome.deny("Two-factor authentication is required but not configured.")
        offered = await self._setup_stages(run)
        if not offered:
            return base.Outcome.deny(NO_SETUP)
        if selected is None and len(offered) > 1:
            return None
        if selected is None:
            chosen: dict[str, Any] | None = offered[0]
        else:
            chosen = next((row for row in offered if row["pk"] == selected), None)
        if chosen is None:
            return base.Outcome.retry("selected_stage", INVALID_STAGE, "invalid")
        run.state.insert(chosen["pk"], run.stage_pk)
        return base.Outcome.next()

    async def _setup_stages(self, run: base.Run) -> list[dict[str, Any]]:
        """The stored setup stages among `configuration_stages`, in their configured order."""
        assert isinstance(self.config, Config)
        found = []
        async with run.services.store.read() as tx:
            for pk in dict.fromkeys(self.config.configuration_stages):
                row = await store.crud.find(tx, "stages", pk=pk)
                if row is not None and row["kind"] in SETUP_KINDS:
                    found.append(row)
        return found

    async def before(self, run: base.Run) -> base.Outcome | None:
        assert isinstance(self.config, Config)
        if run.state.context.get("auth_method") == base.PASSKEY_METHOD:
            return base.Outcome.next()  # a passkey at identification: already two factors' worth
        if self._username_less(run):
            rp = await authenticator_webauthn.relying_party(run)
            return rp if isinstance(rp, base.Outcome) else None
        user, found = await self._devices(run)
        if user is None:
            return base.Outcome.deny(NOT_AUTHENTICATED)
        if not found:
            return await self._unconfigured(run)
        threshold = _seconds(self.config.last_auth_threshold)
        if threshold and _remembered(run, user, found, threshold):
            return base.Outcome.next()
        if devices.webauthn_ids(found):
            rp = await authenticator_webauthn.relying_party(run)
            if isinstance(rp, base.Outcome):
                return rp
        return None

    async def challenge(self, run: base.Run) -> dict[str, Any]:
        assert isinstance(self.config, Config)
        if self._username_less(run):
            uv = self.config.webauthn_user_verification
            entry = {
                "device_class": "webauthn",
                "device_uid": "-1",
                "challenge": await passkey.request_options(run, uv),
                "last_used": None,
            }
            return {"device_challenges": [entry], "configuration_stages": []}
        user, found = await self._devices(run)
        if user is not None and not found:  # `configure`, with a choice of setup stages
            return {"device_challenges": [], "configuration_stages": await self._offer(run)}
        seen: dict[str, dict[str, Any]] = {}
        for device in found:  # one entry per class, as authentik's client expects
            seen.setdefault(device["kind"], device)
        entries = []
        for kind, device in seen.items():
            options: dict[str, Any] = {}
            if kind == "webauthn" and user is not None:
                options = await self._request_options(run, user, found)
            entries.append(
                {
                    "device_class": kind,
                    "device_uid": str(device["pk"]),
                    "challenge": options,
                    "last_used": device["last_used"].isoformat() if device["last_used"] else None,
                }
            )
        return {"device_challenges": entries, "configuration_stages": []}

    async def _offer(self, run: base.Run) -> list[dict[str, Any]]:
        """The setup stages to choose from, as authentik's challenge lists them."""
        offered = []
        for row in await self._setup_stages(run):
            names = wire.flows.stage_names(row["kind"])
            offered.append(
                {
                    "pk": row["pk"],
                    "name": row["name"],
                    "verbose_name": names["verbose_name"],
                    "meta_model_name": names["meta_model_name"],
                }
            )
        return offered

    async def _request_options(
        self, run: base.Run, user: dict[str, Any], found: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """PublicKeyCredentialRequestOptions for the user's credentials, with a fresh challenge."""
        assert isinstance(self.config, Config)
        try:
            rp = webauthn.relying_party(run.services.settings.web.public_url)
        except webauthn.NotConfigured:
            return {}  # `before` has denied
        options, challenge = webauthn.authentication_options(
            rp, devices.webauthn_ids(found), self.config.webauthn_user_verification
        )
        await authenticator_webauthn.issue(run, "get", user["pk"], challenge)
        return options

    async def on_valid(self, run: base.Run, response: base.ChallengeResponse) -> base.Outcome:
        assert isinstance(self.config, Config) and isinstance(response, Response)
        if self._username_less(run):
            return await self._passwordless(run, response.webauthn)
        user, found = await self._devices(run)
        if user is None:
            return base.Outcome.deny(NOT_AUTHENTICATED)
        if not found:
            unconfigured = await self._unconfigured(run, response.selected_stage)
            return unconfigured or base.Outcome("retry")  # no choice made: show the choice again
        if response.webauthn is not None:
            outcome = await self._passkey(run, user, found, response.webauthn)
            return outcome if isinstance(outcome, base.Outcome) else self._passed(run, outcome)
        code = response.code.strip()
        if not code and response.selected_challenge is not None:
            return base.Outcome("retry")  # the client picked a device: show it again
        chosen = response.selected_challenge
        selected = chosen.device_class if chosen is not None else None
        candidates = [d for d in found if selected in (None, d["kind"])]
        device = await _attempt(run, user, candidates, code)
        if isinstance(device, base.Outcome):
            return device
        return self._passed(run, device)

    def _passed(self, run: base.Run, device: dict[str, Any]) -> base.Outcome:
        assert isinstance(self.config, Config)
        threshold = _seconds(self.config.last_auth_threshold)
        if threshold:  # this browser may skip this stage for a while
            run.set_cookies.append(
                base.Cookie(MFA_COOKIE, _mfa_cookie(run, device, threshold), threshold)
            )
        return _passed(run, device)

    async def _passwordless(
        self, run: base.Run, credential: authenticator_webauthn.AuthenticationCredential | None
    ) -> base.Outcome:
        """Log in whoever holds the discoverable credential that signed this assertion."""
        assert isinstance(self.config, Config)
        if credential is None:
            return base.Outcome.retry("webauthn", passkey.INVALID, "invalid")
        uv = self.config.webauthn_user_verification
        found = await passkey.authenticate(run, credential, uv, "webauthn")
        if isinstance(found, base.Outcome):
            return found
        passkey.signed_in(run, *found)
        return base.Outcome.next()

    async def _passkey(
        self,
        run: base.Run,
        user: dict[str, Any],
        found: list[dict[str, Any]],
        credential: authenticator_webauthn.AuthenticationCredential,
    ) -> dict[str, Any] | base.Outcome:
        """The WebAuthn device that signed this assertion, or the outcome of a refusal."""
        assert isinstance(self.config, Config)
        rp = await authenticator_webauthn.relying_party(run)
        if isinstance(rp, base.Outcome):
            return rp
        challenge = await authenticator_webauthn.take(run, "get", user["pk"])
        require_uv = self.config.webauthn_user_verification == "required"
        async with run.services.store.transaction() as tx:
            await devices.lock_user(tx, user["pk"])
            if (await run.services.cache.get(_counter(user)) or 0) >= _limit(run):
                return base.Outcome.deny("Too many failed attempts; try again later.")
            device = await _credential_device(tx, user, found, credential)
            if challenge is None or device is None:
                return await _failed(tx, run, user, "webauthn")
            public_key = devices.secret(run.services.keyring, device)
            try:
                asserted = webauthn.verify_authentication(
                    rp, credential.as_dict(), challenge, public_key, require_uv=require_uv
                )
            except webauthn.WebAuthnError:
                return await _failed(tx, run, user, "webauthn")
            if not await devices.use_webauthn(tx, device["pk"], asserted.sign_count):
                return await passkey.cloned(tx, run, user, device, asserted.sign_count)
        return device


def _passed(run: base.Run, device: dict[str, Any]) -> base.Outcome:
    base.mfa_passed(run, device)
    return base.Outcome.next()


def _limit(run: base.Run) -> int:
    return run.services.settings.login_throttle.per_username


async def _credential_device(
    tx: store.Tx,
    user: dict[str, Any],
    found: list[dict[str, Any]],
    credential: authenticator_webauthn.AuthenticationCredential,
) -> dict[str, Any] | None:
    """The user's usable WebAuthn device holding this credential (a fresh read), if any."""
    try:
        credential_id = webauthn.normalised_id(credential.rawId)
    except webauthn.WebAuthnError:
        return None
    if credential_id not in devices.webauthn_ids(found):
        return None  # another user's credential, or a class this stage does not accept
    return await devices.find_webauthn(tx, user["pk"], credential_id)


def _seconds(duration: str) -> int:
    return int(durations.parse(duration).total_seconds())


def _mfa_cookie(run: base.Run, device: dict[str, Any], threshold: int) -> str:
    """Sealed (authenticated encryption under the instance key): who passed which stage with
    which device, and when."""
    claims = {
        "user": device["user_pk"],
        "stage": run.stage_pk,
        "device": device["pk"],
        "until": int(time.time()) + threshold,
    }
    return run.services.keyring.seal(json.dumps(claims), MFA_COOKIE)


def _remembered(
    run: base.Run, user: dict[str, Any], found: list[dict[str, Any]], threshold: int
) -> bool:
    """This browser passed this stage as this user, with one of their current devices, less
    than `threshold` seconds ago (its `authentik_mfa` cookie says so)."""
    sealed = run.cookies.get(MFA_COOKIE, "")
    if not sealed or len(sealed) > 1024:
        return False
    try:
        claims = json.loads(run.services.keyring.unseal(sealed, MFA_COOKIE))
    except (crypto.secrets.UnsealError, ValueError):
        return False
    if not isinstance(claims, dict):
        return False
    now = int(time.time())
    until = claims.get("until")
    return (
        claims.get("user") == user["pk"]
        and claims.get("stage") == run.stage_pk
        and any(d["pk"] == claims.get("device") for d in found)
        and isinstance(until, int)
        and now < until <= now + threshold  # a lowered threshold shortens old cookies too
    )


async def _attempt(
    run: base.Run, user: dict[str, Any], candidates: list[dict[str, Any]], code: str
) -> dict[str, Any] | base.Outcome:
    """The device that accepted `code`, or the outcome of a refused or failed attempt."""
    limit = _limit(run)
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


async def _failed(
    tx: store.Tx, run: base.Run, user: dict[str, Any], field: str = "code"
) -> base.Outcome:
    window = run.services.settings.login_throttle.window_seconds
    await run.services.cache.incr(_counter(user), window)
    return await attempts.failed(
        tx,
        run,
        user,
        username=run.state.context.get("pending_user_identifier", user["username"]),
        reason="invalid second factor",
        field=field,
        message=INVALID,
    )
