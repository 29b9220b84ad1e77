"""`POST /api/v3/outposts/ldap/<pk>/bind/`: one call runs the provider's bind flow (the default
authentication flow: identification, password, MFA validation, user login) and the
application's policies, with the flow's semantics: `login` and `login_failed` events, the login
throttle, reputation, a core session whose digest the answer names."""

from __future__ import annotations

import logging
from typing import Any

import pyotp
import pytest
from helpers import SECRET_KEY
from ldapcorekit import PASSWORD, Served, serve, user_with_password

from tessera.core import identity, store
from tessera.core.crypto import Keyring
from tessera.core.identity import sessions
from tessera.core.store import crud


@pytest.fixture
async def served(api: Any) -> Served:
    return await serve(api, "jellyfin")


async def _events(db: store.Store, action: str) -> list[dict[str, Any]]:
    async with db.read() as tx:
        rows = await crud.rows(tx, "events", [crud.Filter("action", "eq", action)])
    return rows


async def test_a_good_bind_answers_the_user_their_groups_and_a_session(
    served: Served, api: Any, bootstrapped: store.Store
) -> None:
    status, group = await api("POST", "core/groups/", json={"name": "media"})
    await user_with_password(api, "alice", name="Alice", email="alice@example.com")
    status, users = await api("GET", "core/users/?username=alice")
    alice = users["results"][0]
    await api("POST", f"core/groups/{group['pk']}/add_user/", json={"pk": alice["pk"]})
    result = await served.bound("alice")
    assert result["user"]["username"] == "alice" and result["user"]["email"] == "alice@example.com"
    assert result["user"]["groups"] == [group["pk"]]
    assert [g["name"] for g in result["groups"]] == ["media"]
    assert result["groups"][0]["users"] == [alice["pk"]]
    assert result["has_search_permission"] is False
    assert len(result["session_id"]) == 64 and result["expires"]
    async with bootstrapped.read() as tx:
        session = await crud.find(tx, "sessions", key_digest=result["session_id"])
        noted = await crud.find(tx, "ldap_sessions", session_digest=result["session_id"])
    assert session is not None and session["user_pk"] == alice["pk"]
    assert noted is not None and noted["provider"] == served.pk
    logins = await _events(bootstrapped, "login")
    assert [e["user"]["username"] for e in logins] == ["alice"]
    assert logins[0]["context"]["auth_method"] == "password"
    assert logins[0]["context"]["flow"] == "default-authentication-flow"


async def test_akadmin_may_search_the_whole_directory(served: Served, api: Any) -> None:
    await user_with_password(api, "root-ish")
    status, users = await api("GET", "core/users/?username=akadmin")
    akadmin = users["results"][0]
    await api(
        "POST",
        f"core/users/{akadmin['pk']}/set_password/",
        json={"password": PASSWORD},
    )
    assert (await served.bound("akadmin"))["has_search_permission"] is True
    assert (await served.bound("root-ish"))["has_search_permission"] is False


async def test_a_wrong_password_is_invalid_credentials_and_login_failed(
    served: Served, api: Any, bootstrapped: store.Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await user_with_password(api, "bob")
    status, body = await served.bind("bob", "not-the-Password-canary-7731")
    assert status == 401 and body["reason"] == "invalid_credentials", body
    status, body = await served.bind("nobody-here", "not-the-Password-canary-7731")
    assert status == 401 and body["reason"] == "invalid_credentials", body
    failed = await _events(bootstrapped, "login_failed")
    assert sorted(e["context"]["username"] for e in failed) == ["bob", "nobody-here"]
    async with bootstrapped.read() as tx:
        every = await crud.all_rows(tx, "events")
    # SECURITY: the password is in no event and no log line.
    assert "canary-7731" not in repr(every)
    assert "canary-7731" not in caplog.text


async def test_a_totp_code_after_the_password_passes_the_second_factor(
    served: Served, api: Any, bootstrapped: store.Store
) -> None:
    user = await user_with_password(api, "carol")
    totp = await _totp_device(bootstrapped, user["pk"])
    status, body = await served.bind("carol")
    assert status == 401 and body["reason"] == "mfa_required", body
    status, body = await served.bind("carol", f"{PASSWORD};000000")
    assert status == 401 and body["reason"] == "invalid_credentials", body
    result = await served.bound("carol", f"{PASSWORD};{totp.now()}")
    assert result["user"]["username"] == "carol"
    logins = await _events(bootstrapped, "login")
    assert logins[-1]["context"]["auth_method"] == "auth_mfa"
    failed = await _events(bootstrapped, "login_failed")
    assert [e["context"].get("reason") for e in failed] == ["invalid second factor"]


async def test_a_static_code_is_used_up(
    served: Served, api: Any, bootstrapped: store.Store
) -> None:
    user = await user_with_password(api, "dave")
    keyring = Keyring(SECRET_KEY)
    async with bootstrapped.transaction() as tx:
        device = await identity.devices.create_static(tx, keyring, user["pk"])
        await identity.devices.set_static_codes(tx, keyring, device, ["abcd1234", "wxyz6789"])
        await identity.devices.confirm(tx, device["pk"])
    assert (await served.bound("dave", f"{PASSWORD};abcd1234"))["user"]["username"] == "dave"
    status, body = await served.bind("dave", f"{PASSWORD};abcd1234")
    assert status == 401 and body["reason"] == "invalid_credentials", body


async def test_a_password_with_a_semicolon_is_whole_unless_a_code_follows(
    served: Served, api: Any
) -> None:
    status, user = await api("POST", "core/users/", json={"username": "erin"})
    for password in ("semi;colon;pw", "ends;12345", "code-like;12345678x"):
        await api("POST", f"core/users/{user['pk']}/set_password/", json={"password": password})
        assert (await served.bound("erin", password))["user"]["username"] == "erin"


async def test_without_mfa_support_a_code_suffix_is_part_of_the_password(api: Any) -> None:
    served = await serve(api, "nomfa", mfa_support=False)
    status, user = await api("POST", "core/users/", json={"username": "frank"})
    await api(
        "POST", f"core/users/{user['pk']}/set_password/", json={"password": "pw-frank;123456"}
    )
    assert (await served.bound("frank", "pw-frank;123456"))["user"]["username"] == "frank"


async def test_a_deactivated_user_is_access_denied_only_with_the_right_password(
    served: Served, api: Any
) -> None:
    user = await user_with_password(api, "gina")
    status, _ = await api("PATCH", f"core/users/{user['pk']}/", json={"is_active": False})
    assert status == 200
    status, body = await served.bind("gina")
    assert status == 403 and body["reason"] == "access_denied", body
    status, body = await served.bind("gina", "wrong-password-1")
    assert status == 401 and body["reason"] == "invalid_credentials", body


async def test_the_applications_policy_denies_and_ends_the_session(
    served: Served, api: Any, bootstrapped: store.Store
) -> None:
    await user_with_password(api, "hank")
    await user_with_password(api, "ivy")
    status, group = await api("POST", "core/groups/", json={"name": "jellyfin-users"})
    status, users = await api("GET", "core/users/?username=ivy")
    await api(
        "POST", f"core/groups/{group['pk']}/add_user/", json={"pk": users["results"][0]["pk"]}
    )
    status, apps = await api("GET", "core/applications/?slug=jellyfin")
    status, binding = await api(
        "POST",
        "policies/bindings/",
        json={"target": apps["results"][0]["pk"], "group": group["pk"], "order": 0},
    )
    assert status == 201, binding
    status, body = await served.bind("hank")
    assert status == 403 and body["reason"] == "access_denied", body
    async with bootstrapped.read() as tx:
        hank = await identity.users.find_by_username(tx, "hank")
        assert hank is not None
        left = await crud.rows(tx, "sessions", [crud.Filter("user_pk", "eq", hank["pk"])])
    assert left == []
    assert (await served.bound("ivy"))["user"]["username"] == "ivy"


async def test_too_many_failures_are_throttled_as_local_logins(
    served: Served, api: Any, bootstrapped: store.Store, settings: Any
) -> None:
    await user_with_password(api, "jack")
    limit = settings.login_throttle.per_username
    for _ in range(limit):
        status, body = await served.bind("jack", "guess-wrong")
        assert status == 401, body
    status, body = await served.bind("jack")  # the right password, but too late
    assert status == 429 and body["reason"] == "throttled", body
    suspicious = await _events(bootstrapped, "suspicious_request")
    assert suspicious and suspicious[-1]["context"]["reason"] == "too many failed logins"


async def test_the_client_address_given_is_the_events_and_the_throttles(
    served: Served, api: Any, bootstrapped: store.Store
) -> None:
    await user_with_password(api, "kim")
    await served.bind("kim", "wrong", remote_ip="192.0.2.44")
    await served.bound("kim")
    failed = await _events(bootstrapped, "login_failed")
    assert failed[-1]["client_ip"] == "192.0.2.44"


async def test_a_flow_asking_what_ldap_cannot_give_is_a_flow_error(api: Any, db: Any) -> None:
    from flowkit import make_flow

    await make_flow(
        db,
        "bind-with-prompt",
        [
            ("identification", {}),
            ("password", {}),
            ("prompt", {"fields": [{"field_key": "color"}]}),
            ("user_login", {}),
        ],
    )
    served = await serve(api, "prompted", bind_flow="bind-with-prompt")
    await user_with_password(api, "lee")
    status, body = await served.bind("lee")
    assert status == 401 and body["reason"] == "flow_error", body


async def _totp_device(db: store.Store, user_pk: int) -> pyotp.TOTP:
    keyring = Keyring(SECRET_KEY)
    async with db.transaction() as tx:
        device = await identity.devices.create_totp(tx, keyring, user_pk, 6)
        await identity.devices.confirm(tx, device["pk"])
    return pyotp.TOTP(identity.devices.secret(keyring, device))


async def test_the_session_ends_like_any_other(served: Served, api: Any, bootstrapped: Any) -> None:
    await user_with_password(api, "mo")
    result = await served.bound("mo")
    async with bootstrapped.transaction() as tx:
        assert await sessions.end_digest(tx, result["session_id"])
        assert await crud.find(tx, "ldap_sessions", session_digest=result["session_id"]) is None
