"""Static setup stage (`ak-stage-authenticator-static`): issue single-use recovery codes.

`before` creates an unconfirmed static device for the user (pk in the flow context);
`challenge` draws fresh codes each time it renders, stores their digests and shows them (so a
code is shown once: rendering again replaces them); the empty response confirms the device.
Devices live in `identity.devices`; the user is chosen as in `authenticator_totp.setup_user`.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from tessera.core import wire
from tessera.core.identity import devices
from tessera.core.stages import authenticator_totp, base

CONTEXT_KEY = "authenticator_static_device"


class Config(base.StageConfig):
    token_count: Annotated[int, Field(ge=1, le=100)] = 6
    token_length: Annotated[int, Field(ge=8, le=devices.MAX_CODE_LENGTH)] = 12
    friendly_name: Annotated[str, Field(max_length=200)] = ""
    configure_flow: wire.flows.FlowRef | None = None  # the flow a user runs to set one up


class AuthenticatorStatic(base.Stage):
    kind = "authenticator_static"
    component = "ak-stage-authenticator-static"
    Config = Config

    async def before(self, run: base.Run) -> base.Outcome | None:
        user = await authenticator_totp.setup_user(run)
        if user is None:
            return base.Outcome.deny(authenticator_totp.NO_USER)
        async with run.services.store.transaction() as tx:
            device = await devices.create_static(tx, run.services.keyring, user["pk"])
        run.state.context[CONTEXT_KEY] = device["pk"]
        return None

    async def challenge(self, run: base.Run) -> dict[str, Any]:
        assert isinstance(self.config, Config)
        user = await authenticator_totp.setup_user(run)
        if user is None:
            return {"codes": []}
        codes = devices.new_static_codes(self.config.token_count, self.config.token_length)
        async with run.services.store.transaction() as tx:
            key = run.state.context.get(CONTEXT_KEY)
            device = await devices.pending(tx, key, user["pk"], "static")
            if device is None:
                return {"codes": []}
            # SECURITY: only the codes' keyed digests are stored; the clear codes leave once,
            # in this challenge.
            await devices.set_static_codes(tx, run.services.keyring, device, codes)
        return {"codes": codes}

    async def on_valid(self, run: base.Run, response: base.ChallengeResponse) -> base.Outcome:
        assert isinstance(self.config, Config)
        user = await authenticator_totp.setup_user(run)
        if user is None:
            return base.Outcome.deny(authenticator_totp.NO_USER)
        async with run.services.store.transaction() as tx:
            key = run.state.context.get(CONTEXT_KEY)
            device = await devices.pending(tx, key, user["pk"], "static")
            if device is None:
                return base.Outcome.deny("The codes to set up have expired; start again.")
            device = await devices.confirm(tx, device["pk"], self.config.friendly_name)
        run.state.context.pop(CONTEXT_KEY, None)
        base.device_configured(run, device)
        return base.Outcome.next()
