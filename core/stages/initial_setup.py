"""Initial setup stage: the out-of-the-box flow picks `akadmin`, once (no challenge).

Used by the `initial-setup` flow: this stage → prompt (email, password) → user write → login.

# SECURITY: it refuses as soon as akadmin has a usable password, and user_write re-checks that
# inside its transaction (under the `bootstrap` lock), so two racing visitors cannot both claim
# the instance, and nobody can use the flow to reset the admin's password later.
"""

from __future__ import annotations

from tessera.core.identity import bootstrap, users
from tessera.core.stages import base

DONE = "Initial setup has already been completed."


class InitialSetup(base.Stage):
    kind = "initial_setup"
    component = "ak-stage-initial-setup"
    Response = None

    async def on_valid(self, run: base.Run, response: base.ChallengeResponse) -> base.Outcome:
        async with run.services.store.read() as tx:
            admin = await users.find_by_username(tx, bootstrap.ADMIN_USERNAME)
        if admin is None or admin["password"]:
            return base.Outcome.deny(DONE)
        run.state.pending_user = admin["pk"]
        run.state.context["initial_setup"] = True
        run.state.context["auth_method"] = "initial_setup"
        return base.Outcome.next()
