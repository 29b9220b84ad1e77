"""Identification stage (`ak-stage-identification`): who is logging in.

# SECURITY: with `pretend_user_exists` (the default), an unknown or inactive account continues
# to the password stage exactly like a real one and fails there with the same message, so no
# response reveals whether an account exists.

With `webauthn_stage` (the pk of an authenticator_validate stage, whose
`webauthn_user_verification` applies) the challenge carries `passkey_challenge`, request options
for any discoverable credential, and a response may carry `passkey` (an assertion) instead of
`uid_field`: `stages.passkey` verifies it and the passkey's user is then authenticated
(`auth_method` `auth_webauthn_pwl`), so the password and MFA validation stages let them pass
(authentik's passkey autofill). `passwordless_flow` links to a flow whose validate stage logs in
with a passkey alone (`passwordless_url`).

With `enable_remember_me` the page shows a "Remember me" checkbox and a response may carry
`remember_me` (true or false); the answer goes into the flow context, where a user_login stage
with a `remember_me_offset` takes it instead of asking again. Without the setting the field is
ignored. (authentik's own toggle keeps the username in the browser's local storage instead; see
ARCHITECTURE.md.)
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pydantic
import pydantic_core
from pydantic import Field, field_validator

from tessera.core import store, wire
from tessera.core.crypto import webauthn
from tessera.core.identity import identifiers, users
from tessera.core.stages import authenticator_webauthn, base, passkey, user_login
from tessera.core.store import crud

UserField = Literal["username", "email"]


def _both() -> list[UserField]:
    return ["username", "email"]


class Config(base.StageConfig):
    user_fields: list[UserField] = Field(default_factory=_both)
    case_insensitive_matching: bool = True
    show_matched_user: bool = True
    pretend_user_exists: bool = True
    enable_remember_me: bool = False
    enrollment_flow: wire.flows.FlowRef | None = None
    recovery_flow: wire.flows.FlowRef | None = None
    passwordless_flow: wire.flows.FlowRef | None = None
    webauthn_stage: wire.flows.StageRef | None = None
    # authentik's password field on this page, captcha and sources: not in Tessera.
    password_stage: Annotated[wire.common.Uuid | None, wire.flows.only(None)] = None
    captcha_stage: Annotated[wire.common.Uuid | None, wire.flows.only(None)] = None
    sources: Annotated[list[wire.common.Uuid], wire.flows.only([])] = Field(default_factory=list)
    show_source_labels: Annotated[bool, wire.flows.only(False)] = False


class Response(base.ChallengeResponse):
    passkey: authenticator_webauthn.AuthenticationCredential | None = None
    # authentik's password and captcha on this page: taken and ignored, as authentik ignores
    # them without a `password_stage` or `captcha_stage` (which Tessera does not offer).
    password: Annotated[str, Field(max_length=1024)] | None = None
    captcha_token: Annotated[str, Field(max_length=4096)] | None = None
    # Tessera's: the page's "Remember me" choice, carried to user_login (with enable_remember_me).
    remember_me: bool | None = None
    # Required unless a passkey is given (checked below, reported on `uid_field` as missing).
    uid_field: Annotated[str | None, Field(min_length=1, max_length=254, validate_default=True)] = (
        None
    )

    _parse = field_validator("passkey", mode="before")(authenticator_webauthn.json_text)

    @field_validator("uid_field")
    @classmethod
    def _uid_or_passkey(cls, value: str | None, info: pydantic.ValidationInfo) -> str | None:
        if value is None and info.data.get("passkey") is None:
            raise pydantic_core.PydanticCustomError("missing", "Field required")
        return value


class Identification(base.Stage):
    kind = "identification"
    component = "ak-stage-identification"
    Config = Config
    Response = Response

    async def challenge(self, run: base.Run) -> dict[str, Any]:
        assert isinstance(self.config, Config)
        return {
            "user_fields": self.config.user_fields,
            "password_fields": False,
            "flow_designation": run.state.designation,
            "primary_action": "Log in",
            "sources": [],
            "show_source_labels": False,
            "enable_remember_me": self.config.enable_remember_me,
            **await self._links(run),
            **await self._passkey_challenge(run),
        }

    async def _links(self, run: base.Run) -> dict[str, str]:
        """Links to the recovery, enrollment and passwordless flows the settings name."""
        assert isinstance(self.config, Config)
        named = {
            "recovery_url": self.config.recovery_flow,
            "enroll_url": self.config.enrollment_flow,
            "passwordless_url": self.config.passwordless_flow,
        }
        out = {}
        for key, ref in named.items():
            slug = await run.flow_slug(ref)
            if slug is not None:
                out[key] = f"/if/flow/{slug}/"
        return out

    async def _user_verification(self, run: base.Run) -> webauthn.Requirement | None:
        """The `webauthn_stage`'s user verification; None when passkeys are not offered."""
        assert isinstance(self.config, Config)
        if self.config.webauthn_stage is None:
            return None
        async with run.services.store.read() as tx:
            stage = await crud.find(
                tx, "stages", pk=self.config.webauthn_stage, kind="authenticator_validate"
            )
        if stage is None:
            return None
        value = stage["config"].get("webauthn_user_verification", "preferred")
        return value if value in ("required", "preferred", "discouraged") else "required"

    async def _passkey_challenge(self, run: base.Run) -> dict[str, Any]:
        uv = await self._user_verification(run)
        if uv is None:
            return {}
        options = await passkey.request_options(run, uv)
        return {"passkey_challenge": options} if options else {}

    async def _passkey(
        self, run: base.Run, credential: authenticator_webauthn.AuthenticationCredential
    ) -> base.Outcome:
        """Log in the user of a verified passkey assertion (no username typed)."""
        uv = await self._user_verification(run)
        if uv is None:
            return base.Outcome.retry("passkey", passkey.INVALID, "invalid")
        found = await passkey.authenticate(run, credential, uv, "passkey")
        if isinstance(found, base.Outcome):
            return found
        passkey.signed_in(run, *found)
        return base.Outcome.next()

    async def on_valid(self, run: base.Run, response: base.ChallengeResponse) -> base.Outcome:
        assert isinstance(self.config, Config) and isinstance(response, Response)
        if self.config.enable_remember_me and response.remember_me is not None:
            run.state.context[user_login.REMEMBER_ME] = response.remember_me
        if response.passkey is not None:
            return await self._passkey(run, response.passkey)
        typed = (response.uid_field or "").strip()
        async with run.services.store.read() as tx:
            user = await self._find(tx, typed)
        if user is not None and user["is_active"]:
            run.state.pending_user = user["pk"]
            # SECURITY: echo what was typed, not the stored spelling, which would tell a real
            # account (whose canonical case differs) from a made-up one.
            run.state.context["pending_user_identifier"] = typed
            return base.Outcome.next()
        if self.config.pretend_user_exists:
            run.state.pending_user = None
            run.state.context["pending_user_identifier"] = typed
            return base.Outcome.next()
        return base.Outcome.retry("uid_field", "Failed to authenticate.", "invalid")

    async def _find(self, tx: store.Tx, uid: str) -> dict[str, Any] | None:
        assert isinstance(self.config, Config)
        # SECURITY: a value with "@" is an email address first: a user who named themselves
        # after another user's address (from before `identifiers.check`, or by an admin) does
        # not take that user's email login and recovery. An address shared by several accounts
        # identifies none of them, and then the value is tried as a username.
        if "email" in self.config.user_fields and "@" in uid:
            found = await identifiers.find_by_email(tx, uid)
            if found is not None:
                return found
        if "username" in self.config.user_fields:
            if self.config.case_insensitive_matching:
                return await users.find_by_username(tx, uid)
            return await crud.find(tx, "users", username=uid)
        return None
