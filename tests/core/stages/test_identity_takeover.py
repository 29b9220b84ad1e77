"""Names that find another user (issue 22, items 8 and 9): a user may not take another user's
email address or name themselves after it, an address changed in a flow with an email stage is
proven first, and identification by an address finds the address's owner."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest
from flowkit import call, csrf_headers, log_in_as
from mailkit import Inbox

from tessera.core import app, config, store
from tessera.core.identity import util
from tessera.core.store import crud

SETTINGS = "/api/v3/flows/executor/default-user-settings-flow/"
ENROLL = "/api/v3/flows/executor/default-enrollment-flow/"
LOGIN = "/api/v3/flows/executor/default-authentication-flow/"
TAKEN_EMAIL = [{"string": "This email address is already in use.", "code": "invalid"}]
TAKEN_NAME = [{"string": "This username is already taken.", "code": "invalid"}]


async def _email_of(api: Any, username: str) -> str:
    _, found = await api("GET", f"core/users/?username={username}")
    return str(found["results"][0]["email"])


async def _settings(client: Any, **form: str) -> dict[str, Any]:
    await call(client, SETTINGS)
    return await call(client, SETTINGS, form)


async def test_email_change_to_other_users_address_cannot_take_over_subject(
    client: Any, api: Any, bootstrapped: store.Store, make_user: Any
) -> None:
    await make_user("victim", email="victim@example.com")
    await make_user("mallory", email="mallory@example.com")
    await log_in_as(client, bootstrapped, "mallory")
    for address in ("victim@example.com", "VICTIM@Example.COM"):
        body = await _settings(client, username="mallory", name="M", email=address)
        assert body["component"] == "ak-stage-prompt", body
        assert body["response_errors"] == {"email": TAKEN_EMAIL}
    assert await _email_of(api, "mallory") == "mallory@example.com"
    # Her own address in another case, or a fresh one, is hers to set.
    body = await _settings(client, username="mallory", name="M", email="Mallory@example.com")
    assert body["component"] == "xak-flow-redirect", body


async def test_username_change_to_other_users_address_is_refused(
    client: Any, api: Any, bootstrapped: store.Store, make_user: Any
) -> None:
    await make_user("victim", email="victim@example.com")
    await make_user("mallory", email="mallory@example.com")
    await log_in_as(client, bootstrapped, "mallory")
    body = await _settings(client, username="Victim@example.com", name="M", email="m@example.com")
    assert body["response_errors"] == {"username": TAKEN_NAME}
    _, found = await api("GET", "core/users/?username=mallory")
    assert found["pagination"]["count"] == 1


async def test_email_set_to_another_users_username_is_refused(
    client: Any, api: Any, bootstrapped: store.Store, make_user: Any
) -> None:
    """The other way round: an address equal to a username would win identification by
    address (which finds the address's owner first)."""
    await make_user("ops@example.com")
    await make_user("mallory", email="mallory@example.com")
    await log_in_as(client, bootstrapped, "mallory")
    body = await _settings(client, username="mallory", name="M", email="OPS@example.com")
    assert body["response_errors"] == {"email": TAKEN_EMAIL}
    status, problem = await api(
        "POST", "core/users/", json={"username": "eve", "email": "ops@example.com"}
    )
    assert (status, problem) == (400, {"email": ["This email address is already in use."]})


async def test_api_refuses_a_username_that_is_another_users_address(
    api: Any, make_user: Any
) -> None:
    victim = await make_user("victim", email="victim@example.com")
    mallory = await make_user("mallory")
    status, body = await api(
        "POST", "core/users/", json={"username": "VICTIM@example.com", "name": "x"}
    )
    assert (status, body) == (400, {"username": ["This username is already taken."]})
    status, body = await api(
        "PATCH", f"core/users/{mallory['pk']}/", json={"username": "victim@example.com"}
    )
    assert (status, body) == (400, {"username": ["This username is already taken."]})
    # A user may keep a username equal to their own address; admins may still share addresses.
    status, _ = await api(
        "PATCH", f"core/users/{victim['pk']}/", json={"username": "victim@example.com"}
    )
    assert status == 200
    status, _ = await api("PATCH", f"core/users/{mallory['pk']}/", json={"email": "x@example.com"})
    assert status == 200
    status, _ = await api("POST", "core/users/", json={"username": "x2", "email": "x@example.com"})
    assert status == 201


async def _open_enrollment(db: store.Store) -> None:
    async with db.transaction() as tx:
        policy = await crud.get(tx, "policies", name="default-enrollment-flow-disabled")
        await crud.delete(tx, "policy_bindings", policy=policy["pk"])


async def test_enrollment_cannot_take_another_users_address_or_name_after_it(
    client: Any, api: Any, bootstrapped: store.Store, make_user: Any
) -> None:
    await make_user("victim", email="victim@example.com")
    await _open_enrollment(bootstrapped)
    answers = {
        "name": "M",
        "password": "a-Passw0rd-long",
        "password_repeat": "a-Passw0rd-long",
    }
    for username, email, field in (
        ("victim@example.com", "m@example.com", "username"),
        ("mallory", "Victim@example.com", "email"),
    ):
        client.session.cookie_jar.clear()
        await call(client, ENROLL)
        body = await call(client, ENROLL, {**answers, "username": username, "email": email})
        assert body["component"] == "ak-stage-prompt", body
        assert field in body["response_errors"], body
    _, page = await api("GET", "core/users/?email=victim@example.com")
    assert [u["username"] for u in page["results"]] == ["victim"]


async def test_login_by_address_finds_the_address_owner_not_a_lookalike_username(
    client: Any, api: Any, bootstrapped: store.Store, make_user: Any
) -> None:
    """A username equal to another user's address (left from before the rule, or written by
    anything but these writers) does not take the address owner's login."""
    owner = await make_user("owner", email="boss@example.com")
    await api("POST", f"core/users/{owner['pk']}/set_password/", json={"password": "owner-pw-1"})
    async with bootstrapped.transaction() as tx:
        await crud.insert(
            tx,
            "users",
            {
                "username": "boss@example.com",
                "username_folded": "boss@example.com",
                "uuid": util.new_uuid(),
                "name": "squatter",
                "email": "",
                "password": "",
                "is_active": True,
                "attributes": {},
                "date_joined": util.now(),
            },
        )
    await call(client, LOGIN)
    body = await call(client, LOGIN, {"uid_field": "Boss@example.com"})
    assert body["component"] == "ak-stage-password"
    body = await call(client, LOGIN, {"password": "owner-pw-1"})
    assert body["component"] == "xak-flow-redirect", body
    me = await client.get("/api/v3/core/users/me/")
    assert (await me.json())["user"]["username"] == "owner"


async def test_failed_logins_count_against_the_resolved_user_whatever_was_typed(
    aiohttp_client: Any, make_settings: Any, bootstrapped: store.Store, api: Any, make_user: Any
) -> None:
    settings = make_settings(login_throttle={"per_ip": 100, "per_username": 3})
    client = await aiohttp_client(app.create_app(settings, bootstrapped, run_tasks=False))
    user = await make_user("tess", email="tess@example.com")
    await api("POST", f"core/users/{user['pk']}/set_password/", json={"password": "right-pw-1"})
    for typed in ("tess", "TESS@example.com", "Tess"):
        client.session.cookie_jar.clear()
        await call(client, LOGIN)
        await call(client, LOGIN, {"uid_field": typed})
        body = await call(client, LOGIN, {"password": "wrong"})
        assert body["component"] == "ak-stage-password", body
    client.session.cookie_jar.clear()
    await call(client, LOGIN)
    await call(client, LOGIN, {"uid_field": "tess@example.com"})
    body = await call(client, LOGIN, {"password": "right-pw-1"})
    assert body["component"] == "ak-stage-access-denied" and "Too many" in body["error_message"]


# An email stage in the settings flow: a new address is proven before it is saved -------------


@pytest.fixture
async def mailing_client(
    aiohttp_client: Any, make_settings: Any, bootstrapped: store.Store, inbox: tuple[Inbox, int]
) -> Any:
    settings: config.Settings = make_settings(
        email={"host": "127.0.0.1", "port": inbox[1], "from": "sso@example.com"},
        web={"public_url": "https://sso.example.com"},
    )
    return await aiohttp_client(app.create_app(settings, bootstrapped, run_tasks=True))


async def _add_email_stage(db: store.Store) -> None:
    """default-user-settings-flow becomes prompt, email, user_write."""
    async with db.transaction() as tx:
        flow = await crud.get(tx, "flows", slug="default-user-settings-flow")
        stage = await crud.insert(
            tx,
            "stages",
            {
                "pk": util.new_uuid(),
                "name": "settings-confirm-address",
                "kind": "email",
                "config": {"subject": "Confirm your address"},
                "created": util.now(),
            },
        )
        await crud.insert(
            tx,
            "flow_stage_bindings",
            {"pk": util.new_uuid(), "target": flow["pk"], "stage": stage["pk"], "order": 15},
        )


async def test_an_address_change_is_saved_only_after_its_link_is_opened(
    mailing_client: Any,
    api: Any,
    bootstrapped: store.Store,
    make_user: Any,
    inbox: tuple[Inbox, int],
) -> None:
    await make_user("nora", email="nora@example.com")
    await _add_email_stage(bootstrapped)
    await log_in_as(mailing_client, bootstrapped, "nora")
    body = await _settings(mailing_client, username="nora", name="N", email="new@example.com")
    assert body["component"] == "ak-stage-email", body
    handler = inbox[0]
    await handler.arrived(1)
    assert handler.messages[0]["To"] == "new@example.com"  # the address to prove
    assert await _email_of(api, "nora") == "nora@example.com"  # not saved yet
    query = urllib.parse.quote(f"flow_token={handler.link()}")
    answer = await mailing_client.get(
        f"{SETTINGS}?query={query}", headers=csrf_headers(mailing_client)
    )
    body = await answer.json()
    assert body["component"] == "xak-flow-redirect", body
    assert await _email_of(api, "nora") == "new@example.com"


async def test_a_link_to_a_typed_address_proves_only_that_address(
    mailing_client: Any,
    bootstrapped: store.Store,
    make_user: Any,
    inbox: tuple[Inbox, int],
) -> None:
    """The link sent to a new address carries no authentication: opened in another browser it
    neither logs anyone in nor changes the account."""
    await make_user("olga", email="olga@example.com")
    await _add_email_stage(bootstrapped)
    await log_in_as(mailing_client, bootstrapped, "olga")
    await _settings(mailing_client, username="olga", name="O", email="attacker@example.com")
    handler = inbox[0]
    await handler.arrived(1)
    mailing_client.session.cookie_jar.clear()  # the attacker's browser
    query = urllib.parse.quote(f"flow_token={handler.link()}")
    body = await (await mailing_client.get(f"{SETTINGS}?query={query}")).json()
    assert body["component"] == "ak-stage-access-denied", body
    me = await mailing_client.get("/api/v3/core/users/me/")
    assert me.status in (401, 403)


async def test_enrollment_cannot_take_a_system_account_name(
    client: Any, api: Any, bootstrapped: store.Store
) -> None:
    """The client_credentials account of a provider is found by its name on first use: a user
    who enrolled as `ak-<slug>-client_credentials` first would become the client's identity."""
    await _open_enrollment(bootstrapped)
    answers = {
        "name": "M",
        "email": "m@example.com",
        "password": "a-Passw0rd-long",
        "password_repeat": "a-Passw0rd-long",
    }
    for username in ("ak-wiki-client_credentials", "AK-Outpost-1", "authentik-bootstrap"):
        client.session.cookie_jar.clear()
        await call(client, ENROLL)
        body = await call(client, ENROLL, {**answers, "username": username})
        assert body["component"] == "ak-stage-prompt", body
        assert "reserved" in body["response_errors"]["username"][0]["string"], body
    # Internal users only: the embedded outpost's service account is the system's `ak-` user.
    _, page = await api("GET", "core/users/?search=ak-&type=internal")
    assert page["results"] == []
