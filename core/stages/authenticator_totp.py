"""TOTP setup stage (`ak-stage-authenticator-totp`): enrol an authenticator app.

`before` creates an unconfirmed device for the user (its pk kept in the flow context; the
executor saves the context before it renders, so `challenge` only reads); `challenge` shows the
otpauth:// URI (`config_url`, which authentik's clients draw as a QR code; Tessera's page draws it
in `web`); `on_valid` confirms the device once the user types a code from it. Devices live in
`identity.devices`.

The user is the logged-in one (`run.session_user`), or the pending user of an authentication
flow once a stage has authenticated them (`auth_method` in the context); when the validate stage
inserted this stage into the plan (`not_configured_action: configure`), only the pending user it
was inserted for, and the confirmed device then counts as the flow's second factor
(`base.device_configured`). The validate and static setup stages use `setup_user` too.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from tessera.core import wire
from tessera.core.identity import devices
from tessera.core.stages import base

CONTEXT_KEY = "authenticator_totp_device"
INVALID = "Code does not match"
NO_USER = "You need to log in to set up an authenticator."


def _digits_text(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class Config(base.StageConfig):
    # authentik's enum of strings; older settings hold the number.
    digits: Annotated[Literal["6", "8"], BeforeValidator(_digits_text)] = "6"
    friendly_name: Annotated[str, Field(max_length=200)] = ""
    configure_flow: wire.flows.FlowRef | None = None  # the flow a user runs to set one up


class Response(base.ChallengeResponse):
    code: Annotated[str, Field(min_length=1, max_length=16)]


async def setup_user(run: base.Run) -> dict[str, Any] | None:
    """The user enrolling a device: the pending user once authenticated, else the logged-in one."""
    # SECURITY: a pending user who has only been identified (no auth_method) may not enrol a
    # device; otherwise knowing a username would let anyone add a second factor to it.
    if run.inserted is not None:
        # SECURITY: inserted by the validate stage (`configure`): only for the pending user it
        # was inserted for, who passed a first factor in this flow; never the logged-in user.
        inserted_for = run.inserted["user"]
        if inserted_for is None or run.state.pending_user != inserted_for:
            return None
        if not run.state.context.get("auth_method"):
            return None
        user = await run.pending_user()
    elif run.state.pending_user is None:
        user = run.session_user
    elif run.state.context.get("auth_method"):
        user = await run.pending_user()
    else:
        return None
    return user if user is not None and user["is_active"] else None


def _pending_pk(run: base.Run) -> object:
    return run.state.context.get(CONTEXT_KEY)


class AuthenticatorTotp(base.Stage):
    kind = "authenticator_totp"
    component = "ak-stage-authenticator-totp"
    Config = Config
    Response = Response

    async def before(self, run: base.Run) -> base.Outcome | None:
        assert isinstance(self.config, Config)
        user = await setup_user(run)
        if user is None:
            return base.Outcome.deny(NO_USER)
        async with run.services.store.transaction() as tx:
            device = await devices.pending(tx, _pending_pk(run), user["pk"], "totp")
            if device is None:
                keyring = run.services.keyring
                device = await devices.create_totp(tx, keyring, user["pk"], int(self.config.digits))
        run.state.context[CONTEXT_KEY] = device["pk"]
        return None

    async def challenge(self, run: base.Run) -> dict[str, Any]:
        user = await setup_user(run)
        if user is None:
            return {"config_url": ""}
        async with run.services.store.read() as tx:
            device = await devices.pending(tx, _pending_pk(run), user["pk"], "totp")
        if device is None:
            return {"config_url": ""}
        return {
            "config_url": devices.provisioning_uri(run.services.keyring, device, user["username"])
        }

    async def on_valid(self, run: base.Run, response: base.ChallengeResponse) -> base.Outcome:
        assert isinstance(self.config, Config) and isinstance(response, Response)
        user = await setup_user(run)
        if user is None:
            return base.Outcome.deny(NO_USER)
        keyring = run.services.keyring
        async with run.services.store.transaction() as tx:
            device = await devices.pending(tx, _pending_pk(run), user["pk"], "totp")
            if device is None:
                return base.Outcome.deny("The device to set up has expired; start again.")
            if not await devices.verify_totp(tx, keyring, device["pk"], response.code.strip()):
                return base.Outcome.retry("code", INVALID, "invalid")
            device = await devices.confirm(tx, device["pk"], self.config.friendly_name)
        run.state.context.pop(CONTEXT_KEY, None)
        base.device_configured(run, device)
        return base.Outcome.next()
