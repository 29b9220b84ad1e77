"""Consent stage (`ak-stage-consent`): the user agrees to share their data with an application.

Modes as authentik: `always_require` asks every time; `permanent` remembers the answer;
`expiring` remembers it for `consent_expire_in`, authentik's duration string (`weeks=4`; an
integer is read as seconds, Tessera's earlier form). The application comes from the flow
context (`application`, set by the provider that started the flow); without one there is
nothing to consent to and the stage passes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field

from tessera.core.identity import util
from tessera.core.stages import base
from tessera.core.store import crud
from tessera.core.wire import durations

TABLE = "user_consents"


ConsentLength = Annotated[
    str,
    BeforeValidator(durations.legacy_seconds),
    Field(max_length=durations.MAX_LENGTH),
    AfterValidator(durations.bounded(60, 10 * 366 * 86400)),
]


class Config(base.StageConfig):
    mode: Literal["always_require", "permanent", "expiring"] = "always_require"
    consent_expire_in: ConsentLength = "weeks=4"


class Response(base.ChallengeResponse):
    token: Annotated[str, Field(max_length=100)] = ""


class Consent(base.Stage):
    kind = "consent"
    component = "ak-stage-consent"
    Config = Config
    Response = Response

    async def before(self, run: base.Run) -> base.Outcome | None:
        assert isinstance(self.config, Config)
        app_pk = run.state.context.get("application")
        user = await run.pending_user()
        if app_pk is None or user is None:
            return base.Outcome.next()
        if self.config.mode == "always_require" or "consent" in run.state.context.get(
            "oauth_prompt", []
        ):
            return None  # OAuth2 `prompt=consent` asks again whatever was remembered
        async with run.services.store.read() as tx:
            given = await crud.find(tx, TABLE, user_pk=user["pk"], application=app_pk)
        if given is None or (given["expires"] is not None and given["expires"] <= util.now()):
            return None
        # A remembered consent covers the permissions it was given for, not new ones.
        wanted = set(run.state.context.get("consent_permissions", []))
        if wanted <= set(given["permissions"].split()):
            return base.Outcome.next()
        return None

    async def challenge(self, run: base.Run) -> dict[str, Any]:
        app_pk = run.state.context.get("application")
        async with run.services.store.read() as tx:
            app = await crud.find(tx, "applications", pk=app_pk) if app_pk else None
        name = app["name"] if app else "this application"
        scopes = run.state.context.get("consent_permissions", [])
        return {
            "header_text": f"You're about to sign into {name}.",
            "permissions": [{"name": s, "id": s} for s in scopes],
            "additional_permissions": [],
            "token": run.stage_pk,
        }

    async def on_valid(self, run: base.Run, response: base.ChallengeResponse) -> base.Outcome:
        assert isinstance(self.config, Config)
        app_pk = run.state.context.get("application")
        user = await run.pending_user()
        if app_pk is None or user is None:
            return base.Outcome.next()
        if self.config.mode != "always_require":
            expires = None
            if self.config.mode == "expiring":
                expires = util.now() + durations.parse(self.config.consent_expire_in)
            wanted = list(run.state.context.get("consent_permissions", []))
            async with run.services.store.transaction() as tx:
                old = await crud.find(tx, TABLE, user_pk=user["pk"], application=app_pk)
                kept = old["permissions"].split() if old is not None else []
                permissions = " ".join(dict.fromkeys([*kept, *wanted]))
                await crud.delete(tx, TABLE, user_pk=user["pk"], application=app_pk)
                await crud.insert(
                    tx,
                    TABLE,
                    {
                        "pk": util.new_uuid(),
                        "user_pk": user["pk"],
                        "application": app_pk,
                        "permissions": permissions,
                        "expires": expires,
                        "created": util.now(),
                    },
                )
        return base.Outcome.next()
