"""Username-less passkey login: a discoverable WebAuthn credential names its own user.

Two stages call this module. The identification stage with a `webauthn_stage` (authentik's
"passkey autofill") puts `request_options` into its challenge as `passkey_challenge` and checks a
`passkey` answer with `authenticate`; the authenticator validate stage does the same when it runs
without a pending user (a passwordless flow). `request_options` issues a challenge with an empty
`allowCredentials`, bound to this flow state and to no user (`authenticator_webauthn.issue`);
`authenticate` finds the credential by its id (`identity.devices.find_credential`), checks the
user handle, the user, the assertion (`crypto.webauthn.verify_authentication`) and the signature
counter (`identity.devices.use_webauthn`), and returns the user.

# SECURITY: the challenge is single use and bound to this flow state; origin and RP id come from
# the configured public URL. An unknown credential, a user handle that is not the credential's
# user, a credential of an inactive user and a bad signature all give the same error, so no
# answer tells whether an account exists. Each attempt is counted, before it is checked, against
# the client address and (once the credential names one) the user, in the same counters and
# limits as the password stage (`throttle`), and taken back only on success; failures also write
# `login_failed` and count towards the flow's `attempts.MAX_FAILURES`. A signature counter that
# does not increase denies the flow and writes `suspicious_request`, as in second-factor validation.
"""

from __future__ import annotations

from typing import Any

from tessera.core import events, store
from tessera.core.crypto import webauthn
from tessera.core.identity import devices, users
from tessera.core.policies import reputation
from tessera.core.stages import attempts, authenticator_webauthn, base, throttle
from tessera.core.store import crud

INVALID = "Failed to authenticate."
CLONED = "This passkey cannot be used; contact an administrator."


async def request_options(run: base.Run, user_verification: webauthn.Requirement) -> dict[str, Any]:
    """PublicKeyCredentialRequestOptions for any discoverable credential (empty when no RP)."""
    try:
        rp = webauthn.relying_party(run.services.settings.web.public_url)
    except webauthn.NotConfigured:
        return {}
    options, challenge = webauthn.authentication_options(rp, [], user_verification)
    await authenticator_webauthn.issue(run, "get", None, challenge)
    return options


async def authenticate(
    run: base.Run,
    credential: authenticator_webauthn.AuthenticationCredential,
    user_verification: webauthn.Requirement,
    field: str,
) -> tuple[dict[str, Any], dict[str, Any]] | base.Outcome:
    """The user and device of a verified assertion, or the outcome of a refusal (errors on
    `field`)."""
    rp = await authenticator_webauthn.relying_party(run)
    if isinstance(rp, base.Outcome):
        return rp
    challenge = await authenticator_webauthn.take(run, "get", None)
    limits = run.services.settings.login_throttle
    counters = [throttle.ip_counter(run.client_ip)]
    if not await throttle.reserve(run, {counters[0]: limits.per_ip}):
        async with run.services.store.transaction() as tx:
            return await throttle.refuse(tx, run, {"stage": run.stage_name})
    async with run.services.store.transaction() as tx:
        device, user = await _owner(tx, run, credential)
        if device is None or user is None or challenge is None:
            return await _failed(tx, run, user, field)
        await devices.lock_user(tx, user["pk"])
        counters.append(throttle.user_counter(user["username"]))
        if not await throttle.reserve(run, {counters[1]: limits.per_username}):
            await throttle.release(run, counters[:1])
            # In this transaction: a second one would wait on SQLite's single writer, held here.
            return await throttle.refuse(tx, run, {"stage": run.stage_name})
        try:
            asserted = webauthn.verify_authentication(
                rp,
                credential.as_dict(),
                challenge,
                devices.secret(run.services.keyring, device),
                require_uv=user_verification == "required",
            )
        except webauthn.WebAuthnError:
            return await _failed(tx, run, user, field)
        if not await devices.use_webauthn(tx, device["pk"], asserted.sign_count):
            return await cloned(tx, run, user, device, asserted.sign_count)
    await throttle.release(run, counters)
    await reputation.record(run.services.cache, user["username"], run.client_ip, +1)
    return user, device


def signed_in(run: base.Run, user: dict[str, Any], device: dict[str, Any]) -> None:
    """Make the passkey's user the flow's authenticated pending user."""
    run.state.pending_user = user["pk"]
    run.state.context["pending_user_identifier"] = user["username"]
    run.state.context["auth_method"] = base.PASSKEY_METHOD
    args = run.state.context.setdefault("auth_method_args", {})
    args.setdefault("mfa_devices", []).append(
        {"pk": device["pk"], "device_class": "webauthn", "name": device["name"]}
    )


async def _owner(
    tx: store.Tx, run: base.Run, credential: authenticator_webauthn.AuthenticationCredential
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The confirmed device holding this credential and its user, if active and the assertion's
    user handle (when given) is that user's."""
    try:
        credential_id = webauthn.normalised_id(credential.rawId)
        handle = credential.response.userHandle
        handle = webauthn.normalised_id(handle) if handle is not None else None
    except webauthn.WebAuthnError:
        return None, None
    device = await devices.find_credential(tx, credential_id)
    if device is None:
        return None, None
    user = await crud.find(tx, "users", pk=device["user_pk"])
    if user is None or not user["is_active"]:
        return device, None
    expected = webauthn.encode_id(users.uid(run.services.keyring, user["pk"]).encode())
    if handle is not None and not webauthn.same_id(handle, expected):
        return device, None
    return device, user


async def _failed(
    tx: store.Tx, run: base.Run, user: dict[str, Any] | None, field: str
) -> base.Outcome:
    """A failed attempt: it stays counted, and is recorded."""
    return await attempts.failed(
        tx, run, user, username="", reason="invalid passkey", field=field, message=INVALID
    )


async def cloned(
    tx: store.Tx, run: base.Run, user: dict[str, Any], device: dict[str, Any], sign_count: int
) -> base.Outcome:
    await events.record(
        tx,
        "suspicious_request",
        user=user,
        client_ip=run.client_ip,
        context={
            "reason": "WebAuthn signature counter did not increase (cloned authenticator?)",
            "device": {"pk": device["pk"], "name": device["name"]},
            "stored_sign_count": device["data"].get("sign_count", 0),
            "received_sign_count": sign_count,
            "stage": run.stage_name,
        },
        retention=run.retention,
    )
    return base.Outcome.deny(CLONED)
