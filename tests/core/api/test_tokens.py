"""`/api/v3/core/tokens/` and API authentication: view_key, expiry, 401 and 403."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from helpers import BOOTSTRAP_TOKEN

API = Any


async def test_create_view_key_and_use_token(api: API, client: Any) -> None:
    status, token = await api(
        "POST", "core/tokens/", json={"identifier": "my-token", "expiring": False}
    )
    assert status == 201, token
    assert (
        token["intent"] == "api"
        and token["expires"] is None
        and token["user_obj"]["username"] == "akadmin"
    )
    assert "key" not in token
    status, view = await api("GET", "core/tokens/my-token/view_key/")
    assert status == 200 and len(view["key"]) == 60
    response = await client.get(
        "/api/v3/core/users/me/", headers={"Authorization": f"Bearer {view['key']}"}
    )
    assert response.status == 200
    status, events = await api("GET", "events/events/?action=secret_view")
    assert events["pagination"]["count"] == 1
    assert view["key"] not in str(events)


async def test_expiring_token_gets_default_expiry(api: API) -> None:
    status, token = await api("POST", "core/tokens/", json={"identifier": "short"})
    assert status == 201
    expires = dt.datetime.fromisoformat(token["expires"])
    assert dt.timedelta(minutes=25) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(minutes=30)


async def test_expired_token_is_refused(api: API, client: Any) -> None:
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
    status, _ = await api("POST", "core/tokens/", json={"identifier": "old", "expires": past})
    assert status == 201
    _, view = await api("GET", "core/tokens/old/view_key/")
    response = await client.get(
        "/api/v3/core/users/me/", headers={"Authorization": f"Bearer {view['key']}"}
    )
    assert response.status == 401
    assert (await response.json())["detail"]


async def test_missing_and_wrong_credentials_are_401(client: Any) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer " + BOOTSTRAP_TOKEN[:-1]},
        {"Authorization": "Bearer " + "x" * 5000},
    ):
        response = await client.get("/api/v3/core/users/", headers=headers)
        assert response.status == 401, headers
        assert response.content_type == "application/json"


async def test_non_superuser_token_is_403_on_admin_endpoints(
    api: API, client: Any, make_user: Any, make_token: Any
) -> None:
    await make_user("mallory")
    key = await make_token("mallory", expiring=False)
    headers = {"Authorization": f"Bearer {key}"}
    response = await client.get("/api/v3/core/users/me/", headers=headers)
    assert response.status == 200
    for method, path in (
        ("GET", "core/users/"),
        ("POST", "core/groups/"),
        ("GET", "events/events/"),
        ("GET", "crypto/certificatekeypairs/"),
    ):
        response = await client.request(method, f"/api/v3/{path}", headers=headers, json={})
        assert response.status == 403, path


async def test_privilege_escalation_by_joining_admin_group_is_403(
    api: API, client: Any, make_user: Any, make_token: Any
) -> None:
    user = await make_user("trudy")
    key = await make_token("trudy", expiring=False)
    _, groups = await api("GET", "core/groups/?name=authentik Admins")
    admin_group = groups["results"][0]["pk"]
    response = await client.patch(
        f"/api/v3/core/users/{user['pk']}/",
        json={"groups": [admin_group]},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status == 403
    _, fresh = await api("GET", f"core/users/{user['pk']}/")
    assert fresh["groups"] == []


async def test_inactive_user_token_is_401(
    api: API, client: Any, make_user: Any, make_token: Any
) -> None:
    user = await make_user("ghost")
    key = await make_token("ghost", expiring=False)
    await api("PATCH", f"core/users/{user['pk']}/", json={"is_active": False})
    response = await client.get(
        "/api/v3/core/users/me/", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status == 401


async def test_recovery_intent_token_cannot_call_the_api(api: API, client: Any) -> None:
    await api("POST", "core/tokens/", json={"identifier": "rec", "intent": "recovery"})
    _, view = await api("GET", "core/tokens/rec/view_key/")
    response = await client.get(
        "/api/v3/core/users/me/", headers={"Authorization": f"Bearer {view['key']}"}
    )
    assert response.status == 401


async def test_database_holds_no_usable_token(api: API, bootstrapped: Any) -> None:
    await api("POST", "core/tokens/", json={"identifier": "dumped", "expiring": False})
    _, view = await api("GET", "core/tokens/dumped/view_key/")
    async with bootstrapped.read() as tx:
        rows = (await tx.conn.execute(sa.text("SELECT * FROM tokens"))).all()
    dump = repr(rows)
    assert view["key"] not in dump and BOOTSTRAP_TOKEN not in dump


async def test_duplicate_identifier_and_unknown_user(api: API) -> None:
    await api("POST", "core/tokens/", json={"identifier": "twice"})
    status, body = await api("POST", "core/tokens/", json={"identifier": "twice"})
    assert status == 400 and "identifier" in body
    status, body = await api("POST", "core/tokens/", json={"identifier": "nobody", "user": 987654})
    assert status == 400 and "user" in body


async def test_user_obj_is_the_full_user_and_parses_with_authentiks_client(
    api: API, make_user: Any
) -> None:
    from authentik_client.models import Token

    user = await make_user("tess", name="Tess", email="tess@example.com")
    status, token = await api(
        "POST", "core/tokens/", json={"identifier": "tess-sync", "user": user["pk"]}
    )
    assert status == 201
    assert token["user_obj"] == user
    Token.from_dict(token)


async def test_managed_cannot_be_set_through_the_api(api: API) -> None:
    body = {"identifier": "fake-outpost", "managed": "goauthentik.io/outpost/x"}
    status, answer = await api("POST", "core/tokens/", json=body)
    assert status == 400 and "managed" in answer
    status, _ = await api("GET", "core/tokens/fake-outpost/")
    assert status == 404
    status, token = await api("POST", "core/tokens/", json={"identifier": "plain"})
    assert status == 201 and token["managed"] is None
    status, answer = await api("PATCH", "core/tokens/plain/", json={"managed": "mine"})
    assert status == 400 and "managed" in answer
    status, token = await api("PATCH", "core/tokens/plain/", json={"description": "d"})
    assert status == 200 and token["managed"] is None


async def test_an_update_keeps_the_expiry_unless_it_names_one(api: API) -> None:
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).replace(microsecond=0)
    body = {"identifier": "kept", "expires": later.isoformat()}
    status, token = await api("POST", "core/tokens/", json=body)
    assert status == 201
    status, token = await api("PATCH", "core/tokens/kept/", json={"description": "d"})
    assert dt.datetime.fromisoformat(token["expires"]) == later
    status, token = await api("PUT", "core/tokens/kept/", json={"identifier": "kept"})
    assert dt.datetime.fromisoformat(token["expires"]) == later
    # An explicit null is kept, as authentik keeps it: no date, the token does not expire.
    status, token = await api("PATCH", "core/tokens/kept/", json={"expires": None})
    assert status == 200 and token["expires"] is None and token["expiring"] is True
    status, token = await api("PATCH", "core/tokens/kept/", json={"expiring": False})
    assert token["expires"] is None and token["expiring"] is False
