"""Attacks on the LDAP outpost's calls: each is refused with a JSON body, never a 500, and
touches nothing. No token, a user's or an admin's token, another outpost's token, a provider
without an application, unknown providers, oversized and malformed bodies, session ids that are
not this provider's live sessions, and hostile filters."""

from __future__ import annotations

from typing import Any

import pytest
from ldapcorekit import Served, make_ldap_provider, serve, user_with_password
from proxyadminkit import bearer, make_outpost, outpost_token

from tessera.core import store
from tessera.core.identity import sessions
from tessera.core.providers.ldap import calls
from tessera.core.store import crud

CALLS = [
    ("POST", "bind", {"username": "alice", "password": "x"}),
    ("POST", "unbind", {"session_id": "a" * 64}),
    ("GET", "directory", None),
    ("POST", "search", {"session_id": "a" * 64}),
    ("POST", "password", {"session_id": "a" * 64, "new_password": "x"}),
]


@pytest.fixture
async def two(api: Any) -> tuple[Served, Served]:
    first = await serve(api, "first")
    second = await serve(api, "second")
    await user_with_password(api, "alice")
    return first, second


async def test_no_token_a_users_token_and_an_admins_token_are_refused(
    two: tuple[Served, Served], api: Any, make_token: Any, admin_headers: dict[str, str]
) -> None:
    served = two[0]
    user_key = await make_token("alice", intent="api")
    for method, what, body in CALLS:
        kw: dict[str, Any] = {"json": body} if body is not None else {}
        path = f"outposts/ldap/{served.pk}/{what}/"
        status, answer = await api(method, path, headers={"X-Nothing": "1"}, **kw)
        assert status == 401 and "detail" in answer, (what, answer)
        status, answer = await api(method, path, headers={"Authorization": "Basic eA=="}, **kw)
        assert status == 401 and "detail" in answer, (what, answer)
        status, answer = await api(method, path, headers=bearer("x" * 600), **kw)
        assert status == 401 and "detail" in answer, (what, answer)
        status, answer = await api(method, path, headers=bearer(user_key), **kw)
        assert status == 403 and "detail" in answer, (what, answer)
        status, answer = await api(method, path, headers=admin_headers, **kw)
        assert status == 403 and "detail" in answer, (what, answer)


async def test_another_outposts_token_finds_nothing(two: tuple[Served, Served]) -> None:
    first, second = two
    for method, what, body in CALLS:
        status, answer = await first.call(method, what, body, key=second.key)
        assert status == 404 and answer == {"detail": "Not found."}, (what, answer)
    status, answer = await first.call(
        "GET", "check_access", key=second.key, params={"app_slug": "first", "session_id": "a" * 64}
    )
    assert status == 404, answer


async def test_a_proxy_outpost_and_a_provider_without_application_are_not_served(
    api: Any,
) -> None:
    lone = await make_ldap_provider(api, "lone", application=False)
    outpost = await make_outpost(api, "ldap-lone", [lone["pk"]], type="ldap")
    lone_served = Served(api, lone, outpost, await outpost_token(api, outpost))
    status, answer = await lone_served.bind("alice", "x")
    assert status == 404, answer
    proxy = await make_outpost(api, "web", [])
    proxy_served = Served(api, lone, proxy, await outpost_token(api, proxy))
    status, answer = await proxy_served.bind("alice", "x")
    assert status == 404, answer


async def test_unknown_providers_are_404(two: tuple[Served, Served], api: Any) -> None:
    served = two[0]
    for lookup in ("999999", "0", "-1", "abc", "1e3", "9" * 40):
        status, answer = await api(
            "POST",
            f"outposts/ldap/{lookup}/bind/",
            headers=bearer(served.key),
            json={"username": "a", "password": "b"},
        )
        assert status == 404 and "detail" in answer, (lookup, answer)


async def test_oversized_and_malformed_bodies(two: tuple[Served, Served], client: Any) -> None:
    served = two[0]
    path = f"/api/v3/outposts/ldap/{served.pk}/bind/"
    headers = {**bearer(served.key), "Content-Type": "application/json"}
    big = b'{"username": "alice", "password": "' + b"x" * (calls.MAX_BODY + 10) + b'"}'
    cases = [
        (big, headers, 413),
        (b"{not json", headers, 400),
        (b"[1, 2]", headers, 400),
        (b'{"username": "alice"}', headers, 400),
        (b'{"username": "", "password": "x"}', headers, 400),
        (b'{"username": "alice", "password": "x", "admin": true}', headers, 400),
        (b'{"username": "a\\u0000b", "password": "x"}', headers, 400),
        (b'{"username": "alice", "password": "' + b"p" * 4097 + b'"}', headers, 400),
        (b"username=alice", {**bearer(served.key), "Content-Type": "text/plain"}, 415),
    ]
    for raw, sent, expected in cases:
        response = await client.post(path, data=raw, headers=sent)
        assert response.status == expected, (raw[:40], response.status, await response.text())
        assert response.content_type == "application/json"


async def test_session_ids_that_are_not_this_providers_live_sessions(
    two: tuple[Served, Served], api: Any, bootstrapped: store.Store
) -> None:
    first, second = two
    theirs = (await second.bound("alice"))["session_id"]
    mine = (await first.bound("alice"))["session_id"]
    for bad in ("z" * 64, "A" * 64, "a" * 63, "", "../" * 20, mine + "0"):
        status, answer = await first.call("POST", "search", {"session_id": bad})
        assert status == 400 and "session_id" in answer, (bad, answer)
    for other in ("a" * 64, theirs):
        status, answer = await first.call("POST", "search", {"session_id": other})
        assert status == 403 and "detail" in answer, answer
        status, answer = await first.call(
            "POST", "password", {"session_id": other, "new_password": "hijacked-1"}
        )
        assert status == 403, answer
        status, answer = await first.call("POST", "unbind", {"session_id": other})
        assert status == 204  # nothing to end here; the other provider's session is untouched
    async with bootstrapped.read() as tx:
        assert await crud.find(tx, "sessions", key_digest=theirs) is not None
    # A session ended, or its user deactivated, no longer searches.
    status, _ = await first.call("POST", "search", {"session_id": mine})
    assert status == 200
    status, users = await api("GET", "core/users/?username=alice")
    await api("PATCH", f"core/users/{users['results'][0]['pk']}/", json={"is_active": False})
    status, answer = await first.call("POST", "search", {"session_id": mine})
    assert status == 403, answer
    async with bootstrapped.transaction() as tx:
        await sessions.end_digest(tx, mine)
    status, answer = await first.call("POST", "search", {"session_id": mine})
    assert status == 403, answer


async def test_hostile_filters_are_400(two: tuple[Served, Served], api: Any) -> None:
    served = two[0]
    status, users = await api("GET", "core/users/?username=alice")
    await api(
        "PUT",
        f"providers/ldap/{served.pk}/search_access/",
        json={"users": [users["results"][0]["pk"]]},
    )
    session = (await served.bound("alice"))["session_id"]
    for text in (
        "(" * 1000,
        "(&" + "(uid=a)" * 2000 + ")",
        "(uid=\\zz)",
        "(uid=\\c3)",
        "(uid=a\x00b)",
        "(&(uid=a)",
        "(uid=a))",
        "(=a)",
        "x" * (16 * 1024 + 1),
    ):
        status, answer = await served.call(
            "POST", "search", {"session_id": session, "filter": text}
        )
        assert status == 400, (text[:20], answer)
        assert {"filter", "non_field_errors"} & set(answer), (text[:20], answer)
