"""User login stage (`ak-stage-user-login`): turn the authenticated pending user into a session.

The executor starts the session: a new session key (never the anonymous one, against session
fixation), the cookie, `last_login` and a `login` event.

Durations are authentik's strings (`wire.durations`). `session_duration` `seconds=0` (the
default) is a browser session: the cookie has no Max-Age and the server keeps the session for
`sessions.duration_hours` at most. A non-zero `remember_me_offset` makes the stage ask "stay
signed in?" (`remember_me` in the response); a yes lasts `session_duration` plus the offset.
With the offset at zero nothing is asked. An identification stage with `enable_remember_me`
may already have carried the answer (`remember_me` in the flow context); then it is not asked
again.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from tessera.core import wire
from tessera.core.stages import base
from tessera.core.wire import durations

# The flow context's key for a "remember me" answer given earlier in the flow.
REMEMBER_ME = "remember_me"
SessionLength = durations.UpToAYear


NetworkBinding = Literal["no_binding", "bind_asn", "bind_asn_network", "bind_asn_network_ip"]
GeoipBinding = Literal[
    "no_binding", "bind_continent", "bind_continent_country", "bind_continent_country_city"
]


class Config(base.StageConfig):
    session_duration: SessionLength = "seconds=0"
    terminate_other_sessions: bool = False
    remember_me_offset: SessionLength = "seconds=0"
    # authentik's session bindings and remembered devices: not in Tessera.
    network_binding: Annotated[NetworkBinding, wire.flows.only("no_binding")] = "no_binding"
    geoip_binding: Annotated[GeoipBinding, wire.flows.only("no_binding")] = "no_binding"
    remember_device: Annotated[str, wire.flows.only("seconds=0")] = "seconds=0"


class Response(base.ChallengeResponse):
    # authentik requires it; a form's unticked checkbox sends nothing, so absent means no.
    remember_me: bool = False


class UserLogin(base.Stage):
    kind = "user_login"
    component = "ak-stage-user-login"
    Config = Config
    Response = Response

    def asks(self) -> bool:
        assert isinstance(self.config, Config)
        return durations.parse(self.config.remember_me_offset) > dt.timedelta()

    async def before(self, run: base.Run) -> base.Outcome | None:
        refused = await self._refused(run)
        if refused is not None:
            return refused
        carried = run.state.context.get(REMEMBER_ME)
        return await self._login(run, carried) if isinstance(carried, bool) else None

    async def on_valid(self, run: base.Run, response: base.ChallengeResponse) -> base.Outcome:
        refused = await self._refused(run)
        if refused is not None:
            return refused
        return await self._login(run, isinstance(response, Response) and response.remember_me)

    async def _refused(self, run: base.Run) -> base.Outcome | None:
        user = await run.pending_user()
        if user is None or not user["is_active"]:
            return base.Outcome.deny("Failed to authenticate.")
        # SECURITY: identification alone is not authentication. Some stage (password, MFA,
        # passkey, a recovery token) must have proven who this is; otherwise a policy that skips
        # the password stage would log anyone in by name (authentik issue #6169).
        if not run.state.context.get("auth_method"):
            return base.Outcome.deny("Failed to authenticate.")
        return None

    async def _login(self, run: base.Run, remember: bool) -> base.Outcome:
        assert isinstance(self.config, Config) and run.state.pending_user is not None
        length = durations.parse(self.config.session_duration)
        if remember:
            length += durations.parse(self.config.remember_me_offset)
        persistent = length > dt.timedelta()
        if not persistent:  # a browser session; the server still ends it in time
            length = dt.timedelta(hours=run.services.settings.sessions.duration_hours)
        run.login = base.Login(run.state.pending_user, length, persistent)
        run.state.context["terminate_other_sessions"] = self.config.terminate_other_sessions
        return base.Outcome.next()
