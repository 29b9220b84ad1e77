"""User login stage: session length, "stay signed in" (remember me), as authentik does it."""

from __future__ import annotations

from typing import Any

import pytest
from flowkit import make_flow

from tessera.core.identity import sessions, util
from tessera.core.store import crud

PASSWORD = "pw-remember-123"
DAY = 86400


async def _setup(
    db: Any,
    api: Any,
    make_user: Any,
    login: dict[str, Any],
    identification: dict[str, Any] | None = None,
) -> str:
    slug = "remember-" + util.new_uuid()[:8]
    await make_flow(
        db,
        slug,
        [("identification", identification or {}), ("password", {}), ("user_login", login)],
    )
    user = await make_user(slug)
    await api("POST", f"core/users/{user['pk']}/set_password/", json={"password": PASSWORD})
    return slug


async def _to_login(client: Any, slug: str, **identify: Any) -> Any:
    """Identify and give the password; the response after the password."""
    path = f"/api/v3/flows/executor/{slug}/"
    client.session.cookie_jar.clear()
    assert (await client.get(path)).status == 200
    answer = await client.post(path, json={"uid_field": slug, **identify})
    assert (await answer.json())["component"] == "ak-stage-password"
    return await client.post(path, json={"password": PASSWORD})


def _max_age(response: Any) -> str:
    """The session cookie's Max-Age ("" for a browser session cookie)."""
    cookie = response.cookies["authentik_session"]
    assert response.cookies["authentik_csrf"]["max-age"] == cookie["max-age"]
    return str(cookie["max-age"])


async def _expires_in(db: Any, response: Any) -> float:
    key = response.cookies["authentik_session"].value
    async with db.read() as tx:
        row = await crud.find(tx, sessions.TABLE, key_digest=sessions.digest(key))
    assert row is not None
    return float((row["expires"] - util.now()).total_seconds())


async def test_default_is_a_browser_session_and_nothing_is_asked(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    slug = await _setup(bootstrapped, api, make_user, {})
    response = await _to_login(client, slug)
    assert (await response.json())["component"] == "xak-flow-redirect"
    assert _max_age(response) == ""  # seconds=0: the cookie ends with the browser
    # ...while the server still ends the session after sessions.duration_hours (24 by default)
    assert 23 * 3600 < await _expires_in(bootstrapped, response) <= 24 * 3600


async def test_session_duration_sets_max_age_without_asking(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    slug = await _setup(bootstrapped, api, make_user, {"session_duration": "hours=2;minutes=30"})
    response = await _to_login(client, slug)
    assert (await response.json())["component"] == "xak-flow-redirect"
    assert _max_age(response) == str(9000)
    assert 8990 < await _expires_in(bootstrapped, response) <= 9000


@pytest.mark.parametrize(("remember", "max_age"), [(True, str(30 * DAY)), (False, "")])
async def test_offset_asks_and_remember_me_extends_the_session(
    client: Any, bootstrapped: Any, api: Any, make_user: Any, remember: bool, max_age: str
) -> None:
    slug = await _setup(bootstrapped, api, make_user, {"remember_me_offset": "days=30"})
    question = await _to_login(client, slug)
    body = await question.json()
    assert body["component"] == "ak-stage-user-login" and body["response_errors"] == {}
    assert body["pending_user"] == slug
    assert (await client.get("/api/v3/core/users/me/")).status == 401
    path = f"/api/v3/flows/executor/{slug}/"
    answer = await client.post(
        path, json={"component": "ak-stage-user-login", "remember_me": remember}
    )
    assert (await answer.json())["component"] == "xak-flow-redirect"
    assert _max_age(answer) == max_age
    assert (await client.get("/api/v3/core/users/me/")).status == 200


async def test_remembered_session_is_duration_plus_offset(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    login = {"session_duration": "hours=1", "remember_me_offset": "days=1"}
    slug = await _setup(bootstrapped, api, make_user, login)
    await _to_login(client, slug)
    path = f"/api/v3/flows/executor/{slug}/"
    answer = await client.post(path, json={"remember_me": True})
    assert _max_age(answer) == str(DAY + 3600)
    assert DAY + 3590 < await _expires_in(bootstrapped, answer) <= DAY + 3600
    await _to_login(client, slug)
    answer = await client.post(path, json={"remember_me": False})
    assert _max_age(answer) == "3600"


async def test_garbage_remember_me_is_a_field_error(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    slug = await _setup(bootstrapped, api, make_user, {"remember_me_offset": "days=30"})
    await _to_login(client, slug)
    path = f"/api/v3/flows/executor/{slug}/"
    for bad in ("maybe", {"$ne": 1}, [True], 2):
        response = await client.post(path, json={"remember_me": bad})
        assert response.status == 200
        body = await response.json()
        assert (
            body["component"] == "ak-stage-user-login" and "remember_me" in body["response_errors"]
        )
    assert (await client.get("/api/v3/core/users/me/")).status == 401


async def test_identification_page_carries_the_choice(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    slug = await _setup(
        bootstrapped,
        api,
        make_user,
        {"remember_me_offset": "weeks=2"},
        identification={"enable_remember_me": True},
    )
    path = f"/api/v3/flows/executor/{slug}/"
    client.session.cookie_jar.clear()
    assert (await (await client.get(path)).json())["enable_remember_me"] is True
    yes = await _to_login(client, slug, remember_me=True)
    assert (await yes.json())["component"] == "xak-flow-redirect"  # not asked again
    assert _max_age(yes) == str(14 * DAY)
    no = await _to_login(client, slug, remember_me=False)
    assert (await no.json())["component"] == "xak-flow-redirect"
    assert _max_age(no) == ""
    unsaid = await _to_login(client, slug)  # no answer on the first page: asked at the end
    assert (await unsaid.json())["component"] == "ak-stage-user-login"


async def test_remember_me_on_identification_is_ignored_unless_enabled(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    slug = await _setup(bootstrapped, api, make_user, {"remember_me_offset": "weeks=2"})
    response = await _to_login(client, slug, remember_me=True)
    assert (await response.json())["component"] == "ak-stage-user-login"


async def test_remember_me_does_not_log_in_an_unauthenticated_user(
    client: Any, bootstrapped: Any, make_user: Any
) -> None:
    """A flow whose password stage is missing (a misconfiguration): the question must not be a
    way past authentication, whatever the answer."""
    slug = "remember-noauth"
    await make_flow(
        bootstrapped,
        slug,
        [
            ("identification", {"enable_remember_me": True}),
            ("user_login", {"remember_me_offset": "days=1"}),
        ],
    )
    await make_user("victim")
    path = f"/api/v3/flows/executor/{slug}/"
    await client.get(path)
    body = await (await client.post(path, json={"uid_field": "victim"})).json()
    assert body["component"] == "ak-stage-access-denied"
    await client.get(path + "?query=restart%3D1")
    body = await (await client.post(path, json={"uid_field": "victim", "remember_me": True})).json()
    assert body["component"] == "ak-stage-access-denied"
    assert (await client.get("/api/v3/core/users/me/")).status == 401


async def test_stored_integer_durations_still_work(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    """Stage rows written before authentik's strings hold seconds as integers."""
    slug = await _setup(
        bootstrapped, api, make_user, {"session_duration": 3600, "remember_me_offset": DAY}
    )
    await _to_login(client, slug)
    answer = await client.post(f"/api/v3/flows/executor/{slug}/", json={"remember_me": True})
    assert _max_age(answer) == str(DAY + 3600)
    status, page = await api("GET", f"stages/user_login/?search={slug}")
    assert status == 200
    found = [s for s in page["results"] if s["name"].startswith(slug)]
    assert found and found[0]["session_duration"] == "seconds=3600"
    assert found[0]["remember_me_offset"] == f"seconds={DAY}"
