"""User login stage: turn the authenticated pending user into a session (no challenge).

The executor starts the session: a new session key (never the anonymous one, against session
fixation), the cookie, `last_login` and a `login` event.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import Field

from tessera.core.stages import base


class Config(base.StageConfig):
    session_duration: Annotated[int, Field(ge=0, le=366 * 86400)] = 0  # seconds; 0: the default
    terminate_other_sessions: bool = False


class UserLogin(base.Stage):
    kind = "user_login"
    component = "ak-stage-user-login"
    Config = Config
    Response = None

    async def on_valid(self, run: base.Run, response: base.ChallengeResponse) -> base.Outcome:
        assert isinstance(self.config, Config)
        user = await run.pending_user()
        if user is None or not user["is_active"]:
            return base.Outcome.deny("Failed to authenticate.")
        # SECURITY: identification alone is not authentication. Some stage (password, MFA,
        # passkey, a recovery token) must have proven who this is; otherwise a policy that skips
        # the password stage would log anyone in by name (authentik issue #6169).
        if not run.state.context.get("auth_method"):
            return base.Outcome.deny("Failed to authenticate.")
        seconds = (
            self.config.session_duration or run.services.settings.sessions.duration_hours * 3600
        )
        run.login = (user["pk"], dt.timedelta(seconds=seconds))
        run.state.context["terminate_other_sessions"] = self.config.terminate_other_sessions
        return base.Outcome.next()
