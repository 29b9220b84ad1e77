"""WebAuthn setup stage (`ak-stage-authenticator-webauthn`): register a passkey or security key.

`challenge` sends `registration`, the PublicKeyCredentialCreationOptions as JSON (listing the
user's registered credentials in `excludeCredentials`); the client answers with `response`, the
credential from navigator.credentials.create() as JSON (an object, or that object as a JSON
string from the HTML form). `on_valid` verifies it (`crypto.webauthn.verify_registration`) and
stores a confirmed device (`identity.devices.create_webauthn`). The user is chosen as in
`authenticator_totp.setup_user`.

The validate stage uses this module's helpers too: `relying_party` (the RP from `web.public_url`,
or a `configuration_error` event and a denied flow), `issue` and `take` (challenges).

# SECURITY: a challenge is kept in the cache under a random handle that only this flow state
# holds, together with the user and the ceremony it was issued for, and is taken (atomically
# removed) by the first response that uses it: an answer can be checked against it once, and a
# new one is issued each time the challenge is rendered.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator

from tessera.core import crypto, events, wire
from tessera.core.crypto import webauthn
from tessera.core.identity import devices, users
from tessera.core.stages import authenticator_totp, base

CONTEXT_KEY = "authenticator_webauthn_challenge"
NOT_CONFIGURED = "Passkeys are not available: this server's public URL is not configured."
INVALID = "The passkey could not be verified; try again."
TAKEN = "This passkey is already registered."
Ceremony = Literal["create", "get"]
Base64Url = Annotated[str, Field(max_length=32768, pattern=r"^[A-Za-z0-9_-]*={0,2}$")]


class Config(base.StageConfig):
    user_verification: webauthn.Requirement = "preferred"
    resident_key_requirement: webauthn.Requirement = "preferred"
    authenticator_attachment: webauthn.Attachment | None = None
    friendly_name: Annotated[str, Field(max_length=200)] = ""
    configure_flow: wire.flows.FlowRef | None = None  # the flow a user runs to set one up
    hints: wire.flows.NoHints = Field(default_factory=list)
    device_type_restrictions: wire.flows.NoDeviceTypes = Field(default_factory=list)
    max_attempts: Annotated[int, wire.flows.only(0)] = 0  # no limit of its own


class _Part(wire.common.Request):
    model_config = ConfigDict(extra="ignore")  # browsers add fields (transports, publicKey...)


class AttestationResponse(_Part):
    clientDataJSON: Base64Url  # WebAuthn's JSON names
    attestationObject: Base64Url


class AssertionResponse(_Part):
    clientDataJSON: Base64Url
    authenticatorData: Base64Url
    signature: Base64Url
    userHandle: Base64Url | None = None


def json_text(value: Any) -> Any:
    """The HTML form posts the credential as JSON text; the JSON API as an object."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        raise ValueError("must be a JSON object") from None


class _Credential(_Part):
    id: Base64Url
    rawId: Base64Url
    type: Literal["public-key"]
    authenticatorAttachment: webauthn.Attachment | None = None

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class RegistrationCredential(_Credential):
    response: AttestationResponse


class AuthenticationCredential(_Credential):
    response: AssertionResponse


class Response(base.ChallengeResponse):
    response: RegistrationCredential

    _parse = field_validator("response", mode="before")(json_text)


async def relying_party(run: base.Run) -> webauthn.RelyingParty | base.Outcome:
    """The RP from `web.public_url`; without one, a `configuration_error` event and a denial."""
    try:
        return webauthn.relying_party(run.services.settings.web.public_url)
    except webauthn.NotConfigured as exc:
        async with run.services.store.transaction() as tx:
            await events.record(
                tx,
                "configuration_error",
                user=run.session_user,
                client_ip=run.client_ip,
                context={
                    "message": str(exc),
                    "flow": run.state.slug,
                    "stage": {"pk": run.stage_pk, "name": run.stage_name},
                },
                retention=run.retention,
            )
        return base.Outcome.deny(NOT_CONFIGURED)


def _cache_key(handle: str) -> str:
    return f"webauthn:challenge:{crypto.secrets.sha256_hex(handle)}"


async def issue(run: base.Run, ceremony: Ceremony, user_pk: int | None, challenge: str) -> None:
    """Keep `challenge` for this flow state's next answer (replacing an earlier one); `user_pk`
    None for a username-less login (`stages.passkey`)."""
    earlier = run.state.context.get(CONTEXT_KEY)
    if isinstance(earlier, str):
        await run.services.cache.delete(_cache_key(earlier))
    handle = crypto.secrets.new_token(40)
    record = {"challenge": challenge, "ceremony": ceremony, "user": user_pk}
    await run.services.cache.set(_cache_key(handle), record, webauthn.CHALLENGE_TTL)
    run.state.context[CONTEXT_KEY] = handle


async def take(run: base.Run, ceremony: Ceremony, user_pk: int | None) -> str | None:
    """The challenge issued to this flow state for this user and ceremony, once; else None."""
    handle = run.state.context.pop(CONTEXT_KEY, None)
    if not isinstance(handle, str):
        return None
    record = await run.services.cache.pop(_cache_key(handle))
    if not isinstance(record, dict):
        return None  # expired, or already used by a concurrent answer
    if record.get("ceremony") != ceremony or record.get("user") != user_pk:
        return None
    return str(record["challenge"])


class AuthenticatorWebAuthn(base.Stage):
    kind = "authenticator_webauthn"
    read_only = {"device_type_restrictions_obj": (list[wire.flows.WebAuthnDeviceType], [])}
    component = "ak-stage-authenticator-webauthn"
    Config = Config
    Response = Response

    async def before(self, run: base.Run) -> base.Outcome | None:
        if await authenticator_totp.setup_user(run) is None:
            return base.Outcome.deny(authenticator_totp.NO_USER)
        rp = await relying_party(run)
        return rp if isinstance(rp, base.Outcome) else None

    async def challenge(self, run: base.Run) -> dict[str, Any]:
        assert isinstance(self.config, Config)
        user = await authenticator_totp.setup_user(run)
        try:
            rp = webauthn.relying_party(run.services.settings.web.public_url)
        except webauthn.NotConfigured:
            return {"registration": {}}  # `before` has denied; never reached in practice
        if user is None:
            return {"registration": {}}
        async with run.services.store.read() as tx:
            registered = await devices.confirmed(tx, user["pk"], ["webauthn"])
        options, challenge = webauthn.registration_options(
            rp,
            user_id=users.uid(run.services.keyring, user["pk"]).encode(),
            user_name=user["username"],
            display_name=user["name"],
            exclude=devices.webauthn_ids(registered),
            user_verification=self.config.user_verification,
            resident_key=self.config.resident_key_requirement,
            attachment=self.config.authenticator_attachment,
        )
        await issue(run, "create", user["pk"], challenge)
        return {"registration": options}

    async def on_valid(self, run: base.Run, response: base.ChallengeResponse) -> base.Outcome:
        assert isinstance(self.config, Config) and isinstance(response, Response)
        user = await authenticator_totp.setup_user(run)
        if user is None:
            return base.Outcome.deny(authenticator_totp.NO_USER)
        rp = await relying_party(run)
        if isinstance(rp, base.Outcome):
            return rp
        challenge = await take(run, "create", user["pk"])
        if challenge is None:
            return base.Outcome.retry("response", "The request expired; try again.", "expired")
        try:
            credential = webauthn.verify_registration(
                rp,
                response.response.as_dict(),
                challenge,
                require_uv=self.config.user_verification == "required",
            )
        except webauthn.WebAuthnError:
            return base.Outcome.retry("response", INVALID, "invalid")
        async with run.services.store.transaction() as tx:
            device = await devices.create_webauthn(
                tx, run.services.keyring, user["pk"], credential, self.config.friendly_name
            )
        if device is None:
            return base.Outcome.retry("response", TAKEN, "unique")
        base.device_configured(run, device)
        return base.Outcome.next()
