"""Identification stage (`ak-stage-identification`): who is logging in.

# SECURITY: with `pretend_user_exists` (the default), an unknown or inactive account continues
# to the password stage exactly like a real one and fails there with the same message, so no
# response reveals whether an account exists.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from tessera.core import store
from tessera.core.identity import users
from tessera.core.stages import base
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
    enrollment_flow: Annotated[str, Field(max_length=50, pattern=r"^[-a-zA-Z0-9_]+$")] | None = None
    recovery_flow: Annotated[str, Field(max_length=50, pattern=r"^[-a-zA-Z0-9_]+$")] | None = None


class Response(base.ChallengeResponse):
    uid_field: Annotated[str, Field(min_length=1, max_length=254)]


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
            **(
                {"recovery_url": f"/if/flow/{self.config.recovery_flow}/"}
                if self.config.recovery_flow
                else {}
            ),
            **(
                {"enroll_url": f"/if/flow/{self.config.enrollment_flow}/"}
                if self.config.enrollment_flow
                else {}
            ),
        }

    async def on_valid(self, run: base.Run, response: base.ChallengeResponse) -> base.Outcome:
        assert isinstance(self.config, Config) and isinstance(response, Response)
        async with run.services.store.read() as tx:
            user = await self._find(tx, response.uid_field.strip())
        if user is not None and user["is_active"]:
            run.state.pending_user = user["pk"]
            # SECURITY: echo what was typed, not the stored spelling, which would tell a real
            # account (whose canonical case differs) from a made-up one.
            run.state.context["pending_user_identifier"] = response.uid_field.strip()
            return base.Outcome.next()
        if self.config.pretend_user_exists:
            run.state.pending_user = None
            run.state.context["pending_user_identifier"] = response.uid_field.strip()
            return base.Outcome.next()
        return base.Outcome.retry("uid_field", "Failed to authenticate.", "invalid")

    async def _find(self, tx: store.Tx, uid: str) -> dict[str, Any] | None:
        assert isinstance(self.config, Config)
        if "username" in self.config.user_fields:
            if self.config.case_insensitive_matching:
                found = await users.find_by_username(tx, uid)
            else:
                found = await crud.find(tx, "users", username=uid)
            if found is not None:
                return found
        if "email" in self.config.user_fields and "@" in uid:
            rows, count = await crud.page(
                tx,
                "users",
                crud.Query(filters=[crud.Filter("email", "ieq", uid)], limit=2),
            )
            if count == 1:  # an email shared by several accounts identifies none of them
                return rows[0]
        return None
