"""Consent remembered per mode; user_delete removes the logged-in user."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flowkit import make_flow
from helpers import SECRET_KEY

from tessera.core import cache, crypto
from tessera.core.stages import base, consent
from tessera.core.store import crud


async def _run(db: Any, settings: Any, user_pk: int, app_pk: str) -> base.Run:
    services = base.Services(
        store=db,
        cache=cache.from_settings("", 0, 0, "", ""),
        keyring=crypto.Keyring(SECRET_KEY),
        settings=settings,
    )
    state = base.FlowState(
        flow_pk="f",
        slug="s",
        designation="authorization",
        bindings=[],
        pending_user=user_pk,
        context={"application": app_pk, "auth_method": "password"},
    )
    return base.Run(
        services=services,
        state=state,
        session_user=None,
        client_ip="127.0.0.1",
        user_agent="",
        secure=False,
        stage_pk="st",
        stage_name="consent",
    )


async def test_consent_modes(api: Any, bootstrapped: Any, settings: Any, make_user: Any) -> None:
    user = await make_user("consenter")
    _, app = await api("POST", "core/applications/", json={"name": "Wiki", "slug": "wiki"})
    for mode, remembered in (("always_require", False), ("permanent", True)):
        stage = consent.Consent(consent.Config(mode=mode))
        run = await _run(bootstrapped, settings, user["pk"], app["pk"])
        assert await stage.before(run) is None  # asks
        challenge = await stage.challenge(run)
        assert challenge["header_text"] == "You're about to sign into Wiki."
        assert (await stage.on_valid(run, consent.Response())).kind == "next"
        again = await stage.before(await _run(bootstrapped, settings, user["pk"], app["pk"]))
        assert (again is not None) == remembered
        async with bootstrapped.transaction() as tx:
            await crud.delete(tx, "user_consents", user_pk=user["pk"])


async def test_expired_consent_asks_again(
    api: Any, bootstrapped: Any, settings: Any, make_user: Any
) -> None:
    user = await make_user("expiring")
    _, app = await api("POST", "core/applications/", json={"name": "Chat", "slug": "chat"})
    stage = consent.Consent(consent.Config(mode="expiring", consent_expire_in=60))
    run = await _run(bootstrapped, settings, user["pk"], app["pk"])
    await stage.on_valid(run, consent.Response())
    assert await stage.before(run) is not None
    async with bootstrapped.transaction() as tx:
        row = await crud.get(tx, "user_consents", user_pk=user["pk"])
        await crud.update(
            tx,
            "user_consents",
            {"pk": row["pk"]},
            {"expires": dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)},
        )
    assert await stage.before(run) is None


async def test_user_delete_flow_removes_the_logged_in_user(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    user = await make_user("leaver")
    await api("POST", f"core/users/{user['pk']}/set_password/", json={"password": "pw-leaver-123"})
    await make_flow(
        bootstrapped,
        "delete-me",
        [("user_delete", {})],
        designation="unenrollment",
        authentication="require_authenticated",
    )
    login = "/api/v3/flows/executor/default-authentication-flow/"
    await client.get(login)
    await client.post(login, json={"uid_field": "leaver"})
    await client.post(login, json={"password": "pw-leaver-123"})
    csrf = next(c.value for c in client.session.cookie_jar if c.key == "authentik_csrf")
    body = await (
        await client.get("/api/v3/flows/executor/delete-me/", headers={"X-authentik-CSRF": csrf})
    ).json()
    assert body["component"] == "xak-flow-redirect"
    status, _ = await api("GET", f"core/users/{user['pk']}/")
    assert status == 404


async def test_user_delete_refuses_anonymous(client: Any, bootstrapped: Any) -> None:
    await make_flow(bootstrapped, "delete-anon", [("user_delete", {})], designation="unenrollment")
    body = await (await client.get("/api/v3/flows/executor/delete-anon/")).json()
    assert body["component"] == "ak-stage-access-denied"
