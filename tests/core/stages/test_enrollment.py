"""The default enrollment flow: off until an admin enables it, then prompt, write and log in."""

from __future__ import annotations

from typing import Any

from tessera.core.store import crud

ENROLL = "/api/v3/flows/executor/default-enrollment-flow/"
FORM = {
    "username": "newbie",
    "name": "New Bie",
    "email": "newbie@example.com",
    "password": "a-good-passphrase",
    "password_repeat": "a-good-passphrase",
}


async def _enable(db: Any) -> None:
    async with db.transaction() as tx:
        policy = await crud.get(tx, "policies", name="default-enrollment-flow-disabled")
        await crud.delete(tx, "policy_bindings", policy=policy["pk"])


async def test_enrollment_is_off_by_default(client: Any) -> None:
    body = await (await client.get(ENROLL)).json()
    assert body["component"] == "ak-stage-access-denied"


async def test_enrol_then_logged_in(client: Any, bootstrapped: Any, api: Any) -> None:
    await _enable(bootstrapped)
    body = await (await client.get(ENROLL)).json()
    assert body["component"] == "ak-stage-prompt"
    body = await (await client.post(ENROLL, json=FORM)).json()
    assert body == {"component": "xak-flow-redirect", "to": "/if/user/"}
    me = await (await client.get("/api/v3/core/users/me/")).json()
    assert me["user"]["username"] == "newbie" and me["user"]["email"] == "newbie@example.com"
    assert me["user"]["is_superuser"] is False
    _, events = await api("GET", "events/events/?action=login")
    assert events["pagination"]["count"] == 1
    _, created = await api("GET", "events/events/?action=model_created")
    (event,) = [e for e in created["results"] if e["context"].get("flow")]
    assert event["context"]["model"]["name"] == "newbie"
    _, password_set = await api("GET", "events/events/?action=password_set")
    assert password_set["pagination"]["count"] == 1
    assert "a-good-passphrase" not in str(created) + str(password_set)


async def test_taken_username_is_a_field_error(client: Any, bootstrapped: Any) -> None:
    await _enable(bootstrapped)
    await client.get(ENROLL)
    body = await (await client.post(ENROLL, json={**FORM, "username": "AKADMIN"})).json()
    assert body["component"] == "ak-stage-prompt" and "username" in body["response_errors"]
    body = await (await client.post(ENROLL, json={**FORM, "username": "fresh-name"})).json()
    assert body["component"] == "xak-flow-redirect"
    me = await client.get("/api/v3/core/users/me/")
    assert (await me.json())["user"]["username"] == "fresh-name"
    client.session.cookie_jar.clear()
    me = await client.get("/api/v3/core/users/me/")
    assert me.status == 401


async def test_a_username_the_user_model_refuses_is_a_field_error_not_a_500(
    client: Any, bootstrapped: Any, api: Any
) -> None:
    await _enable(bootstrapped)
    await client.get(ENROLL)
    reply = await client.post(ENROLL, json={**FORM, "username": "u" * 300})
    assert reply.status == 200
    body = await reply.json()
    assert body["component"] == "ak-stage-prompt" and "username" in body["response_errors"]
    _, found = await api("GET", "core/users/?search=uuuu")
    assert found["pagination"]["count"] == 0
    body = await (await client.post(ENROLL, json=FORM)).json()
    assert body["component"] == "xak-flow-redirect"


async def test_extra_fields_cannot_set_attributes_the_form_does_not_ask(
    client: Any, bootstrapped: Any, api: Any
) -> None:
    await _enable(bootstrapped)
    await client.get(ENROLL)
    await client.post(ENROLL, json={**FORM, "attributes.role": "admin", "is_superuser": True})
    _, users = await api("GET", "core/users/?username=newbie")
    assert users["results"][0]["attributes"] == {}
    assert users["results"][0]["is_superuser"] is False


async def test_password_change_flow_for_the_logged_in_user(
    client: Any, api: Any, make_user: Any
) -> None:
    user = await make_user("changer")
    await api("POST", f"core/users/{user['pk']}/set_password/", json={"password": "old-pass-123"})
    login = "/api/v3/flows/executor/default-authentication-flow/"
    change = "/api/v3/flows/executor/default-password-change/"
    assert (await (await client.get(change)).json())["component"] == "ak-stage-access-denied"
    await client.get(login)
    await client.post(login, json={"uid_field": "changer"})
    await client.post(login, json={"password": "old-pass-123"})
    csrf = {
        "X-authentik-CSRF": next(
            c.value for c in client.session.cookie_jar if c.key == "authentik_csrf"
        )
    }
    assert (await (await client.get(change, headers=csrf)).json())["component"] == "ak-stage-prompt"
    body = await (
        await client.post(
            change,
            headers=csrf,
            json={"password": "new-pass-456", "password_repeat": "new-pass-456"},
        )
    ).json()
    assert body["component"] == "xak-flow-redirect"
    client.session.cookie_jar.clear()
    await client.get(login)
    await client.post(login, json={"uid_field": "changer"})
    done = await (await client.post(login, json={"password": "new-pass-456"})).json()
    assert done["component"] == "xak-flow-redirect"
    _, events = await api("GET", "events/events/?action=password_set")
    # one from the admin API, one from the flow, which names the user who changed it
    flow_events = [e for e in events["results"] if e["context"].get("flow")]
    assert [e["user"]["username"] for e in flow_events] == ["changer"]
