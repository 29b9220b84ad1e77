"""The validate stage's `configure` action: a user without a device enrols one inside the login.

One configuration stage is inserted into the plan at once; several are offered for the user to
pick (`selected_stage`). The inserted setup stage enrols only the pending user, its fresh device
counts as the second factor, and user_login is not reached before it is done.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pyotp
from flowkit import call
from mfakit import PASSWORD, mfa_flow, up_to_second_factor, user_with_password

from tessera.core.identity import util
from tessera.core.store import crud

TOTP_COMPONENT = "ak-stage-authenticator-totp"
VALIDATE = "ak-stage-authenticator-validate"


async def _stage(db: Any, name: str, kind: str, config: dict[str, Any] | None = None) -> str:
    """A stage bound to no flow (what `configuration_stages` lists)."""
    async with db.transaction() as tx:
        row = await crud.insert(
            tx,
            "stages",
            {
                "pk": util.new_uuid(),
                "name": name,
                "kind": kind,
                "config": config or {},
                "created": util.now(),
            },
        )
    return str(row["pk"])


async def _flow(db: Any, slug: str, configuration_stages: list[str]) -> str:
    return await mfa_flow(
        db, slug, not_configured_action="configure", configuration_stages=configuration_stages
    )


_user, _password = user_with_password, up_to_second_factor


async def _logged_in_as(client: Any) -> str | None:
    response = await client.get("/api/v3/core/users/me/")
    if response.status == 401:
        return None
    return str((await response.json())["user"]["username"])


async def _devices(db: Any, user_pk: int) -> list[dict[str, Any]]:
    async with db.read() as tx:
        rows = await crud.all_rows(tx, "authenticator_devices")
    return [row for row in rows if row["user_pk"] == user_pk]


async def test_one_totp_stage_is_inserted_and_its_device_is_the_second_factor(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    user = await _user(api, make_user, "newbie")
    totp_stage = await _stage(bootstrapped, "totp-setup", "authenticator_totp")
    path = await _flow(bootstrapped, "mfa-configure-one", [totp_stage])
    body = await _password(client, path, "newbie")
    assert body["component"] == TOTP_COMPONENT and body["pending_user"] == "newbie"
    totp = pyotp.parse_uri(body["config_url"])
    assert isinstance(totp, pyotp.TOTP) and totp.name == "newbie"
    assert (await call(client, path))["component"] == TOTP_COMPONENT  # GET again: same stage
    body = await call(client, path, {"code": "not-a-code"})
    assert body["component"] == TOTP_COMPONENT and "code" in body["response_errors"]
    assert await _logged_in_as(client) is None
    assert (await call(client, path, {"code": totp.now()}))["component"] == "xak-flow-redirect"
    assert await _logged_in_as(client) == "newbie"
    (device,) = await _devices(bootstrapped, user["pk"])
    assert device["kind"] == "totp" and device["confirmed"] is True
    _, events = await api("GET", "events/events/?action=login")
    (login,) = [e for e in events["results"] if e["context"]["flow"] == "mfa-configure-one"]
    assert login["context"]["auth_method"] == "auth_mfa"


async def test_user_login_is_not_reached_without_completing_setup(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    await _user(api, make_user, "skipper")
    totp_stage = await _stage(bootstrapped, "totp-setup", "authenticator_totp")
    path = await _flow(bootstrapped, "mfa-configure-skip", [totp_stage])
    assert (await _password(client, path, "skipper"))["component"] == TOTP_COMPONENT
    for answer in ({}, {"component": "ak-stage-user-login"}, {"code": ""}, {"code": "1" * 17}):
        body = await call(client, path, answer)
        assert body["component"] == TOTP_COMPONENT and "code" in body["response_errors"]
    assert await _logged_in_as(client) is None


async def test_two_stages_are_offered_and_the_chosen_one_runs(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    user = await _user(api, make_user, "chooser")
    totp_stage = await _stage(bootstrapped, "Authenticator app", "authenticator_totp")
    static_stage = await _stage(bootstrapped, "Recovery codes", "authenticator_static")
    path = await _flow(bootstrapped, "mfa-configure-two", [totp_stage, static_stage])
    body = await _password(client, path, "chooser")
    assert body["component"] == VALIDATE and body["device_challenges"] == []
    assert body["configuration_stages"] == [
        {
            "pk": totp_stage,
            "name": "Authenticator app",
            "verbose_name": "Authenticator Totp Stage",
            "meta_model_name": "authentik_stages_authenticator_totp.authenticatortotpstage",
        },
        {
            "pk": static_stage,
            "name": "Recovery codes",
            "verbose_name": "Authenticator Static Stage",
            "meta_model_name": "authentik_stages_authenticator_static.authenticatorstaticstage",
        },
    ]
    body = await call(client, path, {"code": "123456"})  # no choice made: the choice again
    assert body["component"] == VALIDATE and len(body["configuration_stages"]) == 2
    body = await call(client, path, {"selected_stage": static_stage})
    assert body["component"] == "ak-stage-authenticator-static" and len(body["codes"]) == 6
    assert await _logged_in_as(client) is None
    assert (await call(client, path, {}))["component"] == "xak-flow-redirect"
    assert await _logged_in_as(client) == "chooser"
    (device,) = await _devices(bootstrapped, user["pk"])
    assert device["kind"] == "static" and device["confirmed"] is True


async def test_forged_selected_stage_is_refused(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    user = await _user(api, make_user, "forger")
    totp_stage = await _stage(bootstrapped, "totp-setup", "authenticator_totp")
    static_stage = await _stage(bootstrapped, "static-setup", "authenticator_static")
    unlisted = await _stage(bootstrapped, "unlisted-setup", "authenticator_totp")
    login_stage = await _stage(bootstrapped, "a-login", "user_login")
    path = await _flow(bootstrapped, "mfa-configure-forged", [totp_stage, static_stage])
    assert (await _password(client, path, "forger"))["component"] == VALIDATE
    for forged in (unlisted, login_stage, str(uuid.uuid4()), "", "x" * 65, ["a"], {"pk": "a"}):
        body = await call(client, path, {"selected_stage": forged})
        assert body["component"] == VALIDATE, forged
        assert "selected_stage" in body["response_errors"], forged
    assert await _logged_in_as(client) is None
    assert await _devices(bootstrapped, user["pk"]) == []


async def test_a_listed_stage_that_is_not_a_setup_stage_is_never_inserted(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    await _user(api, make_user, "bypass")
    login_stage = await _stage(bootstrapped, "a-login", "user_login")
    path = await _flow(bootstrapped, "mfa-configure-login", [login_stage])
    body = await _password(client, path, "bypass")
    assert body["component"] == "ak-stage-access-denied"
    assert await _logged_in_as(client) is None


async def test_a_stage_unlisted_while_the_flow_runs_ends_the_flow(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    await _user(api, make_user, "unlisted")
    totp_stage = await _stage(bootstrapped, "totp-setup", "authenticator_totp")
    path = await _flow(bootstrapped, "mfa-configure-unlisted", [totp_stage])
    body = await _password(client, path, "unlisted")
    assert body["component"] == TOTP_COMPONENT
    totp = pyotp.parse_uri(body["config_url"])
    async with bootstrapped.transaction() as tx:
        name = "mfa-configure-unlisted-2-authenticator_validate"
        validate = await crud.get(tx, "stages", name=name)
        config = {**validate["config"], "configuration_stages": []}
        await crud.update(tx, "stages", {"pk": validate["pk"]}, {"config": config})
    body = await call(client, path, {"code": totp.now()})
    assert body["component"] == "ak-stage-access-denied"
    assert await _logged_in_as(client) is None


async def test_the_inserted_stage_enrols_the_pending_user_not_the_logged_in_one(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    alice = await _user(api, make_user, "alice-session")
    bob = await _user(api, make_user, "bob-pending")
    totp_stage = await _stage(bootstrapped, "totp-setup", "authenticator_totp")
    path = await _flow(bootstrapped, "mfa-configure-who", [totp_stage])
    await _password(client, path, "alice-session")  # alice is logged in by the setup that follows
    body = await call(client, path)
    alice_totp = pyotp.parse_uri(body["config_url"])
    assert (await call(client, path, {"code": alice_totp.now()}))["component"] == (
        "xak-flow-redirect"
    )
    assert await _logged_in_as(client) == "alice-session"
    # In alice's browser, bob's password starts the flow again: bob's device, not alice's.
    await call(client, path + "?restart=1")
    await call(client, path, {"uid_field": "bob-pending"})
    body = await call(client, path, {"password": PASSWORD})
    assert body["component"] == TOTP_COMPONENT and pyotp.parse_uri(body["config_url"]).name == (
        "bob-pending"
    )
    assert len(await _devices(bootstrapped, alice["pk"])) == 1
    (pending,) = await _devices(bootstrapped, bob["pk"])
    assert pending["confirmed"] is False


async def test_the_pages_offer_the_choice_as_buttons(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    await _user(api, make_user, "pages")
    totp_stage = await _stage(bootstrapped, "Authenticator app", "authenticator_totp")
    static_stage = await _stage(bootstrapped, "Recovery codes", "authenticator_static")
    await _flow(bootstrapped, "mfa-configure-pages", [totp_stage, static_stage])
    page = "/if/flow/mfa-configure-pages/"
    html = await (await client.get(page)).text()
    for fields in ({"uid_field": "pages"}, {"password": PASSWORD}):
        html = await (await _submit(client, page, html, **fields)).text()
    buttons = re.findall(r'<button type="submit" name="selected_stage" value="([^"]+)">', html)
    assert buttons == [totp_stage, static_stage] and "Recovery codes" in html
    forged = await _submit(client, page, html, selected_stage=str(uuid.uuid4()))
    html = await forged.text()
    assert forged.status == 200 and "Invalid stage selected." in html
    html = await (await _submit(client, page, html, selected_stage=totp_stage)).text()
    assert 'name="code"' in html and "QR code for your authenticator app" in html


def _token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match is not None, html
    return match[1]


async def _submit(client: Any, path: str, html: str, **fields: str) -> Any:
    return await client.post(
        path, data={"csrf_token": _token(html), **fields}, allow_redirects=False
    )
