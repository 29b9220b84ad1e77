"""`/api/v3/core/applications/` for users who are not superusers: the list and retrieve show
only the applications the caller may open (their policy bindings, as the portal decides), the
pagination counts that narrowed list, writes stay refused; superusers' `superuser_full_list` and
`for_user`; `check_access/`; bad query parameters are 400 (or 404 for a page), never 500."""

from __future__ import annotations

import json
from typing import Any

import oauth2kit
from flowkit import log_in_as

API = Any
MEMBERS_RULE = 'ak_message("members only")\nreturn False\n'


async def _as(client: Any, key: str, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    response = await client.request(method, f"/api/v3/{path}", headers=headers, **kw)
    text = await response.text()
    return response.status, json.loads(text) if text else None


async def _world(api: API, make_user: Any, make_group: Any) -> dict[str, Any]:
    """alice (in `staff`) and bob; four applications:
    `open` (no bindings), `staff-only` (group binding), `nobody` (a failing policy) and
    `alice-only` (user binding), plus `rule` (an expression policy that denies with a message)."""
    alice = await make_user("alice")
    bob = await make_user("bob")
    staff = await make_group("staff", users=[alice["pk"]])
    apps = {}
    for slug in ("open", "staff-only", "nobody", "alice-only", "rule"):
        status, app = await api(
            "POST",
            "core/applications/",
            json={"name": slug, "slug": slug, "meta_launch_url": f"https://{slug}.example.com"},
        )
        assert status == 201, app
        apps[slug] = app
    _, deny = await api("POST", "policies/dummy/", json={"name": "deny", "result": False})
    _, rule = await api(
        "POST", "policies/expression/", json={"name": "rule", "expression": MEMBERS_RULE}
    )
    for target, body in (
        ("staff-only", {"group": staff["pk"]}),
        ("nobody", {"policy": deny["pk"]}),
        ("alice-only", {"user": alice["pk"]}),
        ("rule", {"policy": rule["pk"]}),
    ):
        status, binding = await api(
            "POST", "policies/bindings/", json={"target": apps[target]["pk"], "order": 0, **body}
        )
        assert status == 201, binding
    return {"alice": alice, "bob": bob, "apps": apps}


def _slugs(body: Any) -> list[str]:
    return [a["slug"] for a in body["results"]]


async def test_plain_user_lists_only_the_applications_they_may_open(
    client: Any, api: API, make_user: Any, make_group: Any, make_token: Any
) -> None:
    await _world(api, make_user, make_group)
    alice = await make_token("alice", expiring=False)
    bob = await make_token("bob", expiring=False)
    status, body = await _as(client, alice, "GET", "core/applications/")
    assert status == 200, body
    assert _slugs(body) == ["alice-only", "open", "staff-only"]
    assert body["pagination"]["count"] == 3
    # The same object shape as the superuser's listing.
    _, full = await api("GET", "core/applications/?superuser_full_list=true")
    assert body["results"][1] == next(a for a in full["results"] if a["slug"] == "open")
    status, body = await _as(client, bob, "GET", "core/applications/")
    assert status == 200 and _slugs(body) == ["open"]
    assert body["pagination"] == {
        "next": 0,
        "previous": 0,
        "count": 1,
        "current": 1,
        "total_pages": 1,
        "start_index": 1,
        "end_index": 1,
    }


async def test_pagination_counts_the_narrowed_list(
    client: Any, api: API, make_user: Any, make_group: Any, make_token: Any
) -> None:
    await _world(api, make_user, make_group)
    key = await make_token("alice", expiring=False)
    seen = []
    for page in (1, 2, 3):
        status, body = await _as(client, key, "GET", f"core/applications/?page_size=1&page={page}")
        assert status == 200, body
        assert body["pagination"]["count"] == 3 and body["pagination"]["total_pages"] == 3
        assert body["pagination"]["next"] == (page + 1 if page < 3 else 0)
        seen += _slugs(body)
    assert seen == ["alice-only", "open", "staff-only"]
    status, body = await _as(client, key, "GET", "core/applications/?page_size=1&page=4")
    assert status == 404 and "detail" in body
    # Filters and search apply before the policies: still only what alice may open.
    status, body = await _as(client, key, "GET", "core/applications/?search=o")
    assert status == 200 and _slugs(body) == ["alice-only", "open", "staff-only"]
    status, body = await _as(client, key, "GET", "core/applications/?slug=nobody")
    assert status == 200 and body["results"] == [] and body["pagination"]["count"] == 0


async def test_superuser_full_list_for_user_and_own_list(
    client: Any, api: API, make_user: Any, make_group: Any
) -> None:
    world = await _world(api, make_user, make_group)
    status, body = await api("GET", "core/applications/?superuser_full_list=true")
    assert status == 200 and body["pagination"]["count"] == 5
    assert _slugs(body) == ["alice-only", "nobody", "open", "rule", "staff-only"]
    # Without the flag a superuser gets their own list, as in authentik.
    status, body = await api("GET", "core/applications/")
    assert status == 200 and _slugs(body) == ["open"]
    status, body = await api("GET", f"core/applications/?for_user={world['alice']['pk']}")
    assert status == 200 and _slugs(body) == ["alice-only", "open", "staff-only"]
    status, body = await api("GET", f"core/applications/?for_user={world['bob']['pk']}")
    assert status == 200 and _slugs(body) == ["open"]
    # The full list wins over for_user, as in authentik.
    query = f"superuser_full_list=true&for_user={world['bob']['pk']}"
    status, body = await api("GET", f"core/applications/?{query}")
    assert status == 200 and body["pagination"]["count"] == 5
    status, body = await api("GET", "core/applications/?superuser_full_list=false")
    assert status == 200 and _slugs(body) == ["open"]


async def test_plain_user_cannot_widen_their_list(
    client: Any, api: API, make_user: Any, make_group: Any, make_token: Any
) -> None:
    world = await _world(api, make_user, make_group)
    key = await make_token("bob", expiring=False)
    status, body = await _as(client, key, "GET", "core/applications/?superuser_full_list=true")
    assert status == 200 and _slugs(body) == ["open"]
    pk = world["alice"]["pk"]
    status, body = await _as(client, key, "GET", f"core/applications/?for_user={pk}")
    assert status == 400 and body == {"for_user": ["User not found"]}
    # The same answer for a user that does not exist: nothing learnt about who exists.
    status, missing = await _as(client, key, "GET", "core/applications/?for_user=999999")
    assert status == 400 and missing == body
    status, body = await _as(
        client, key, "GET", f"core/applications/?for_user={world['bob']['pk']}"
    )
    assert status == 200 and _slugs(body) == ["open"]


async def test_bad_query_parameters_are_400_never_500(
    client: Any, api: API, make_user: Any, make_group: Any, make_token: Any
) -> None:
    await _world(api, make_user, make_group)
    key = await make_token("alice", expiring=False)
    for query, field in (
        ("for_user=abc", "for_user"),
        ("for_user=99999999999999999999999", "for_user"),
        ("for_user=%00", "for_user"),
        ("superuser_full_list=maybe", "superuser_full_list"),
        ("only_with_launch_url=yes please", "only_with_launch_url"),
        ("page=abc", "page"),
        ("page_size=-1", "page_size"),
    ):
        for status, body in (
            await api("GET", f"core/applications/?{query}"),
            await _as(client, key, "GET", f"core/applications/?{query}"),
        ):
            assert status == 400 and field in body, (query, body)
    status, body = await api("GET", "core/applications/?for_user=999999")
    assert status == 400 and body == {"for_user": ["User not found"]}
    status, body = await _as(client, key, "GET", "core/applications/?ordering=;drop&search=%27")
    assert status == 200 and body["pagination"]["count"] == 0


async def test_only_with_launch_url(
    client: Any, api: API, make_user: Any, make_group: Any, make_token: Any
) -> None:
    await _world(api, make_user, make_group)
    await api("POST", "core/applications/", json={"name": "api-only", "slug": "api-only"})
    key = await make_token("bob", expiring=False)
    status, body = await _as(client, key, "GET", "core/applications/")
    assert _slugs(body) == ["api-only", "open"]
    status, body = await _as(client, key, "GET", "core/applications/?only_with_launch_url=true")
    assert status == 200 and _slugs(body) == ["open"] and body["pagination"]["count"] == 1


async def test_retrieve_of_an_application_the_user_may_not_open_is_404(
    client: Any, api: API, make_user: Any, make_group: Any, make_token: Any
) -> None:
    world = await _world(api, make_user, make_group)
    key = await make_token("bob", expiring=False)
    status, body = await _as(client, key, "GET", "core/applications/open/")
    assert status == 200 and body["slug"] == "open"
    open_pk = world["apps"]["open"]["pk"]
    assert (await _as(client, key, "GET", f"core/applications/{open_pk}/"))[0] == 200
    status, denied = await _as(client, key, "GET", "core/applications/staff-only/")
    assert status == 404
    # Indistinguishable from an application that does not exist.
    status, missing = await _as(client, key, "GET", "core/applications/no-such-app/")
    assert status == 404 and missing == denied
    staff_pk = world["apps"]["staff-only"]["pk"]
    assert (await _as(client, key, "GET", f"core/applications/{staff_pk}/"))[0] == 404
    # The superuser retrieves any application, whatever its policies.
    status, body = await api("GET", "core/applications/nobody/")
    assert status == 200 and body["slug"] == "nobody"


async def test_writes_by_a_plain_user_are_403_and_change_nothing(
    client: Any, api: API, make_user: Any, make_group: Any, make_token: Any
) -> None:
    await _world(api, make_user, make_group)
    key = await make_token("alice", expiring=False)
    attempts = (
        ("POST", "core/applications/", {"name": "mine", "slug": "mine"}),
        ("PATCH", "core/applications/open/", {"name": "hijacked"}),
        ("PUT", "core/applications/open/", {"name": "hijacked", "slug": "open"}),
        ("DELETE", "core/applications/open/", None),
        ("PATCH", "core/applications/staff-only/", {"meta_launch_url": "https://evil.example"}),
        ("DELETE", "core/applications/nobody/", None),
    )
    for method, path, payload in attempts:
        status, body = await _as(client, key, method, path, json=payload)
        assert status == 403 and "detail" in body, (method, path, body)
    _, full = await api("GET", "core/applications/?superuser_full_list=true")
    assert _slugs(full) == ["alice-only", "nobody", "open", "rule", "staff-only"]
    assert all(a["name"] == a["slug"] for a in full["results"])


async def test_session_user_lists_their_applications_and_cannot_write(
    client: Any, api: API, bootstrapped: Any, make_user: Any, make_group: Any
) -> None:
    await _world(api, make_user, make_group)
    await log_in_as(client, bootstrapped, "alice")
    response = await client.get("/api/v3/core/applications/")
    assert response.status == 200
    assert _slugs(await response.json()) == ["alice-only", "open", "staff-only"]
    assert (await client.get("/api/v3/core/applications/nobody/")).status == 404
    assert (await client.get("/api/v3/core/applications/staff-only/")).status == 200
    csrf = next(c.value for c in client.session.cookie_jar if c.key == "authentik_csrf")
    for headers in ({}, {"X-authentik-CSRF": csrf}):
        response = await client.patch(
            "/api/v3/core/applications/open/", json={"name": "x"}, headers=headers
        )
        assert response.status == 403 and "detail" in await response.json()


async def test_anonymous_and_forged_tokens_are_refused(client: Any) -> None:
    for path in (
        "core/applications/",
        "core/applications/open/",
        "core/applications/open/check_access/",
    ):
        assert (await client.get(f"/api/v3/{path}")).status == 401
        status, body = await _as(client, "forged", "GET", path)
        assert status == 401 and "detail" in body


async def test_check_access_for_the_caller_and_for_another_user(
    client: Any, api: API, make_user: Any, make_group: Any, make_token: Any
) -> None:
    world = await _world(api, make_user, make_group)
    alice = await make_token("alice", expiring=False)
    path = "core/applications/{}/check_access/"
    status, body = await _as(client, alice, "GET", path.format("staff-only"))
    assert status == 200 and body == {"passing": True, "messages": [], "log_messages": []}
    # A plain user sees the verdict only (no policy messages), and for_user is ignored.
    status, body = await _as(client, alice, "GET", path.format("rule"))
    assert status == 200 and body == {"passing": False, "messages": [], "log_messages": []}
    bob_pk = world["bob"]["pk"]
    status, body = await _as(
        client, alice, "GET", path.format("alice-only") + f"?for_user={bob_pk}"
    )
    assert status == 200 and body["passing"] is True
    # The superuser: their own access, another user's, with the policies' messages.
    status, body = await api("GET", path.format("staff-only"))
    assert status == 200 and body["passing"] is False
    status, body = await api("GET", path.format("staff-only") + f"?for_user={world['alice']['pk']}")
    assert status == 200 and body["passing"] is True
    status, body = await api("GET", path.format("rule"))
    assert status == 200 and body["passing"] is False and body["messages"] == ["members only"]
    assert body["log_messages"] == []
    # By pk as well as by slug; unknown applications and users; bad for_user.
    pk = world["apps"]["open"]["pk"]
    status, body = await api("GET", path.format(pk))
    assert status == 200 and body["passing"] is True
    assert (await api("GET", path.format("no-such-app")))[0] == 404
    status, body = await api("GET", path.format("open") + "?for_user=999999")
    assert status == 400 and body == {"for_user": ["User not found"]}
    status, body = await api("GET", path.format("open") + "?for_user=abc")
    assert status == 400 and "for_user" in body


async def test_portal_and_api_agree(
    client: Any, api: API, bootstrapped: Any, make_user: Any, make_group: Any
) -> None:
    await _world(api, make_user, make_group)
    await log_in_as(client, bootstrapped, "alice")
    page = await (await client.get("/if/user/")).text()
    listed = _slugs(await (await client.get("/api/v3/core/applications/")).json())
    for slug in ("open", "staff-only", "alice-only", "nobody", "rule"):
        assert (f"https://{slug}.example.com" in page) == (slug in listed), slug


async def test_openapi_describes_the_list_parameters_and_check_access(client: Any) -> None:
    schema = await (await client.get("/api/v3/schema/")).json()
    names = {p["name"] for p in schema["paths"]["/core/applications/"]["get"]["parameters"]}
    assert {"superuser_full_list", "for_user", "only_with_launch_url"} <= names
    op = schema["paths"]["/core/applications/{pk}/check_access/"]["get"]
    assert {p["name"] for p in op["parameters"]} >= {"for_user"}


async def test_only_with_launch_url_counts_the_launch_url_a_provider_suggests(api: API) -> None:
    await oauth2kit.make_provider(api, "served")  # redirect URI https://app.example.com/cb
    await api("POST", "core/applications/", json={"name": "api-only", "slug": "api-only"})
    status, body = await api(
        "GET", "core/applications/?only_with_launch_url=true&superuser_full_list=true"
    )
    assert status == 200 and _slugs(body) == ["served"] and body["pagination"]["count"] == 1
