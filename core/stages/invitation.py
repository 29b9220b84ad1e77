"""Invitation stage (no challenge): admit enrollment only with a valid invitation link.

The link is `/if/flow/<slug>/?itoken=<invitation pk>`; the invitation's `fixed_data` becomes
prompt data (e.g. a fixed email), a `single_use` invitation is deleted when used, an expired one
or one made for another flow is refused.
"""

from __future__ import annotations

from typing import Any

from tessera.core import events
from tessera.core.identity import util
from tessera.core.stages import base
from tessera.core.store import crud

TABLE = "invitations"


class Config(base.StageConfig):
    continue_flow_without_invitation: bool = False


class Invitation(base.Stage):
    kind = "invitation"
    component = "ak-stage-invitation"
    Config = Config
    Response = None

    async def on_valid(self, run: base.Run, response: base.ChallengeResponse) -> base.Outcome:
        assert isinstance(self.config, Config)
        token = str(run.state.context.get("invitation", ""))
        invitation = await self._take(run, token) if token else None
        if invitation is None:
            if self.config.continue_flow_without_invitation:
                return base.Outcome.next()
            return base.Outcome.deny("Invalid or expired invitation.")
        prompt_data = run.state.context.setdefault("prompt_data", {})
        prompt_data.update(invitation["fixed_data"])
        run.state.context["invitation_used"] = invitation["pk"]
        return base.Outcome.next()

    async def _take(self, run: base.Run, token: str) -> dict[str, Any] | None:
        try:
            pk = util.normalise_uuid(token)
        except ValueError:
            return None
        async with run.services.store.transaction() as tx:
            invitation = await crud.find(tx, TABLE, pk=pk)
            if invitation is None:
                return None
            expired = invitation["expires"] is not None and invitation["expires"] <= util.now()
            if expired or invitation["flow"] not in (None, run.state.flow_pk):
                return None
            # SECURITY: single use under concurrency: only the request that deletes it proceeds.
            if invitation["single_use"] and await crud.delete(tx, TABLE, pk=pk) != 1:
                return None
            await events.record(
                tx,
                "invitation_used",
                user=None,
                client_ip=run.client_ip,
                context={"invitation": invitation["name"], "flow": run.state.slug},
                retention=run.retention,
            )
        return invitation
