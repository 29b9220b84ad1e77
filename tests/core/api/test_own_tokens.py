"""`/api/v3/core/tokens/` for non-superusers: their own API tokens and app passwords only.

Listing, creating, showing, changing, deleting and `view_key` work on the caller's own tokens;
another user's token is 404, naming another user is 403, system intents are 400. Superusers
keep seeing and managing every token.
"""

from __future__ import annotations

import json
from typing import Any

from flowkit import log_in_as

API = Any


async def _as(client: Any, key: str, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    response = await client.request(
        method, f"/api/v3/{path}", headers={"Authorization": f"Bearer {key}"}, **kwargs
    )
    text = await response.text()
    return response.status, json.loads(text) if text else None


async def test_create_list_view_key_and_delete_my_own(
    client: Any, make_user: Any, make_token: Any, api: API
) -> None:
    user = await make_user("olivia")
    key = await make_token("olivia", expiring=False)
    status, created = await _as(
        client, key, "POST", "core/tokens/", json={"identifier": "olivia-cli", "expiring": False}
    )
    assert status == 201 and created["user"] == user["pk"] and "key" not in created
    status, app_password = await _as(
        client,
        key,
        "POST",
        "core/tokens/",
        json={"identifier": "olivia-mail", "intent": "app_password", "user": user["pk"]},
    )
    assert status == 201 and app_password["intent"] == "app_password"
    status, page = await _as(client, key, "GET", "core/tokens/")
    assert status == 200
    listed = {t["identifier"] for t in page["results"]}
    assert {"olivia-cli", "olivia-mail"} <= listed
    assert all(t["user"] == user["pk"] for t in page["results"])
    status, view = await _as(client, key, "GET", "core/tokens/olivia-cli/view_key/")
    assert status == 200
    me = await client.get(
        "/api/v3/core/users/me/", headers={"Authorization": f"Bearer {view['key']}"}
    )
    assert me.status == 200 and (await me.json())["user"]["username"] == "olivia"
    status, patched = await _as(
        client, key, "PATCH", "core/tokens/olivia-cli/", json={"description": "laptop"}
    )
    assert status == 200 and patched["description"] == "laptop"
    assert (await _as(client, key, "DELETE", "core/tokens/olivia-cli/"))[0] == 204
    assert (await _as(client, key, "GET", "core/tokens/olivia-cli/"))[0] == 404
    _, events = await api("GET", "events/events/?action=secret_view")
    assert [e["user"]["username"] for e in events["results"]] == ["olivia"]


async def test_idor_another_users_token_is_404_and_untouched(
    client: Any, make_user: Any, make_token: Any, api: API
) -> None:
    await make_user("mallory")
    await make_user("victim")
    mallory = await make_token("mallory", expiring=False)
    victim = await make_token("victim", expiring=False)
    await _as(client, victim, "POST", "core/tokens/", json={"identifier": "victim-ci"})
    for method, path, body in (
        ("GET", "core/tokens/victim-ci/", None),
        ("GET", "core/tokens/victim-ci/view_key/", None),
        ("PATCH", "core/tokens/victim-ci/", {"description": "pwned"}),
        ("PUT", "core/tokens/victim-ci/", {"identifier": "victim-ci"}),
        ("DELETE", "core/tokens/victim-ci/", None),
    ):
        status, _ = await _as(client, mallory, method, path, json=body)
        assert status == 404, (method, path)
    _, page = await _as(client, mallory, "GET", "core/tokens/?identifier=victim-ci")
    assert page["results"] == []
    _, page = await _as(client, mallory, "GET", "core/tokens/?search=victim")
    assert page["results"] == []
    status, token = await api("GET", "core/tokens/victim-ci/")
    assert status == 200 and token["description"] == ""


async def test_idor_naming_another_user_is_403(
    client: Any, make_user: Any, make_token: Any, api: API
) -> None:
    await make_user("trent")
    victim = await make_user("walter")
    key = await make_token("trent", expiring=False)
    status, _ = await _as(
        client, key, "POST", "core/tokens/", json={"identifier": "for-walter", "user": victim["pk"]}
    )
    assert status == 403
    await _as(client, key, "POST", "core/tokens/", json={"identifier": "trent-own"})
    status, _ = await _as(
        client, key, "PATCH", "core/tokens/trent-own/", json={"user": victim["pk"]}
    )
    assert status == 403
    _, page = await api("GET", f"core/tokens/?user={victim['pk']}")
    assert page["results"] == []
    _, token = await api("GET", "core/tokens/trent-own/")
    assert token["user_obj"]["username"] == "trent"


async def test_system_intents_are_refused_and_hidden(
    client: Any, make_user: Any, make_token: Any, api: API, bootstrapped: Any
) -> None:
    user = await make_user("peggy")
    key = await make_token("peggy", expiring=False)
    for intent in ("recovery", "verification"):
        status, body = await _as(
            client,
            key,
            "POST",
            "core/tokens/",
            json={"identifier": f"p-{intent}", "intent": intent},
        )
        assert status == 400 and "intent" in body
    await _as(client, key, "POST", "core/tokens/", json={"identifier": "peggy-api"})
    status, _ = await _as(
        client, key, "PATCH", "core/tokens/peggy-api/", json={"intent": "recovery"}
    )
    assert status == 400
    # A recovery key made for her by an admin is not hers to list or view.
    status, _ = await api(
        "POST",
        "core/tokens/",
        json={"identifier": "peggy-recovery", "intent": "recovery", "user": user["pk"]},
    )
    assert status == 201
    _, page = await _as(client, key, "GET", "core/tokens/")
    assert "peggy-recovery" not in {t["identifier"] for t in page["results"]}
    assert (await _as(client, key, "GET", "core/tokens/peggy-recovery/view_key/"))[0] == 404


async def test_unauthenticated_is_401_and_session_writes_need_csrf(
    client: Any, bootstrapped: Any, make_user: Any
) -> None:
    assert (await client.get("/api/v3/core/tokens/")).status == 401
    response = await client.post("/api/v3/core/tokens/", json={"identifier": "anon"})
    assert response.status == 401
    await make_user("sybil")
    await log_in_as(client, bootstrapped, "sybil")
    assert (await client.get("/api/v3/core/tokens/")).status == 200
    response = await client.post("/api/v3/core/tokens/", json={"identifier": "sybil-x"})
    assert response.status == 403
    csrf = next(c.value for c in client.session.cookie_jar if c.key == "authentik_csrf")
    response = await client.post(
        "/api/v3/core/tokens/", json={"identifier": "sybil-x"}, headers={"X-authentik-CSRF": csrf}
    )
    assert response.status == 201


async def test_superuser_still_sees_and_manages_every_token(
    api: API, client: Any, make_user: Any, make_token: Any
) -> None:
    other = await make_user("uma")
    key = await make_token("uma", expiring=False)
    await _as(client, key, "POST", "core/tokens/", json={"identifier": "uma-own"})
    status, made = await api(
        "POST",
        "core/tokens/",
        json={"identifier": "for-uma", "user": other["pk"], "intent": "recovery"},
    )
    assert status == 201 and made["user"] == other["pk"]
    _, page = await api("GET", f"core/tokens/?user={other['pk']}")
    assert {t["identifier"] for t in page["results"]} >= {"uma-own", "for-uma"}
    assert (await api("GET", "core/tokens/uma-own/view_key/"))[0] == 200
    assert (await api("DELETE", "core/tokens/uma-own/"))[0] == 204
