"""Small stage kinds: user_logout, deny, dummy, redirect and user_delete."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from tessera.core import store, wire
from tessera.core.stages import base


class UserLogout(base.Stage):
    """Ends the current session (no challenge)."""

    kind = "user_logout"
    component = "ak-stage-user-logout"
    Response = None

    async def on_valid(self, run: base.Run, response: base.ChallengeResponse) -> base.Outcome:
        run.logout = True
        return base.Outcome.next()


class DenyConfig(base.StageConfig):
    deny_message: Annotated[str, Field(max_length=1000)] = ""


class Deny(base.Stage):
    """Ends the flow with access denied (no challenge)."""

    kind = "deny"
    component = "ak-stage-access-denied"
    Config = DenyConfig
    Response = None

    async def on_valid(self, run: base.Run, response: base.ChallengeResponse) -> base.Outcome:
        assert isinstance(self.config, DenyConfig)
        return base.Outcome.deny(self.config.deny_message or "Access denied.")


class DummyConfig(base.StageConfig):
    throw_error: Annotated[bool, wire.flows.only(False)] = False  # authentik's test switch


class Dummy(base.Stage):
    """Shows a button and continues; for tests and demonstrations."""

    kind = "dummy"
    component = "ak-stage-dummy"
    Config = DummyConfig

    async def challenge(self, run: base.Run) -> dict[str, Any]:
        return {"name": run.stage_name}


class RedirectConfig(base.StageConfig):
    # Tessera's redirect to a flow starts it afresh (authentik's keep_context off).
    keep_context: Annotated[bool, wire.flows.only(False)] = False
    mode: Literal["static", "flow"] = "static"
    target_static: Annotated[str, Field(max_length=2000)] = ""
    target_flow: wire.flows.FlowRef | None = None

    @field_validator("target_flow", mode="before")
    @classmethod
    def _none_for_empty(cls, value: Any) -> Any:
        return value or None  # older settings held "" for no flow


class Redirect(base.Stage):
    """Sends the browser elsewhere: a URL, or another flow (no challenge)."""

    kind = "redirect"
    component = "xak-flow-redirect"
    Config = RedirectConfig
    Response = None

    async def on_valid(self, run: base.Run, response: base.ChallengeResponse) -> base.Outcome:
        assert isinstance(self.config, RedirectConfig)
        if self.config.mode == "flow":
            slug = await run.flow_slug(self.config.target_flow)
            if slug is None:
                return base.Outcome.deny("The flow to continue with does not exist.")
            return base.Outcome.redirect(f"/if/flow/{slug}/")
        return base.Outcome.redirect(self.config.target_static)


class UserDelete(base.Stage):
    """Deletes the authenticated pending (or logged-in) user and ends the session."""

    kind = "user_delete"
    component = "ak-stage-user-delete"
    Response = None

    async def on_valid(self, run: base.Run, response: base.ChallengeResponse) -> base.Outcome:
        user = await run.pending_user() or run.session_user
        proven = run.state.context.get("auth_method") or (
            run.session_user is not None
            and user is not None
            and run.session_user["pk"] == user["pk"]
        )
        if user is None or not proven:
            return base.Outcome.deny("Failed to authenticate.")
        async with run.services.store.transaction() as tx:
            await store.crud.delete(tx, "users", pk=user["pk"])
        run.logout = True
        return base.Outcome.next()
