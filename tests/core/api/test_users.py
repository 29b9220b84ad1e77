"""`/api/v3/core/users/` on SQLite and PostgreSQL: CRUD, actions, filters, bad input."""

from __future__ import annotations

from typing import Any

API = Any


async def test_create_retrieve_update_delete(api: API) -> None:
    status, user = await api(
        "POST",
        "core/users/",
        json={"username": "alice", "name": "Alice", "email": "alice@example.com"},
    )
    assert status == 201, user
    assert user["username"] == "alice"
    assert user["path"] == "users" and user["type"] == "internal" and user["is_active"] is True
    assert user["groups"] == [] and user["is_superuser"] is False
    assert "password" not in user
    status, got = await api("GET", f"core/users/{user['pk']}/")
    assert status == 200 and got == user
    status, patched = await api("PATCH", f"core/users/{user['pk']}/", json={"name": "Alice L."})
    assert (
        status == 200 and patched["name"] == "Alice L." and patched["email"] == "alice@example.com"
    )
    status, put = await api("PUT", f"core/users/{user['pk']}/", json={"username": "alice2"})
    assert status == 200 and put["username"] == "alice2" and put["name"] == ""
    status, _ = await api("DELETE", f"core/users/{user['pk']}/")
    assert status == 204
    status, body = await api("GET", f"core/users/{user['pk']}/")
    assert status == 404 and body == {"detail": "Not found."}


async def test_me_returns_the_caller(api: API) -> None:
    status, body = await api("GET", "core/users/me/")
    assert status == 200
    assert body["user"]["username"] == "akadmin" and body["user"]["is_superuser"] is True


async def test_set_password_writes_event_without_the_password(api: API, make_user: Any) -> None:
    user = await make_user("bob")
    status, _ = await api(
        "POST", f"core/users/{user['pk']}/set_password/", json={"password": "Sup3r-secret-pw"}
    )
    assert status == 204
    status, events = await api("GET", "events/events/?action=password_set")
    assert status == 200 and events["pagination"]["count"] == 1
    assert "Sup3r-secret-pw" not in str(events)


async def test_duplicate_username_is_400_naming_the_field(api: API, make_user: Any) -> None:
    await make_user("carol")
    status, body = await api("POST", "core/users/", json={"username": "carol"})
    assert status == 400 and "username" in body


async def test_duplicate_username_differing_in_case_is_refused(api: API, make_user: Any) -> None:
    await make_user("dave")
    status, body = await api("POST", "core/users/", json={"username": "DAVE"})
    assert status == 400 and "username" in body


async def test_duplicate_username_differing_in_non_ascii_case_is_refused(
    api: API, make_user: Any
) -> None:
    await make_user("Émile")
    status, body = await api("POST", "core/users/", json={"username": "éMILE"})
    assert status == 400 and "username" in body


async def test_unknown_field_wrong_type_and_overlong_are_400(api: API) -> None:
    status, body = await api("POST", "core/users/", json={"username": "eve", "is_admin": True})
    assert status == 400 and body == {"is_admin": ["Unexpected field."]}
    status, body = await api("POST", "core/users/", json={"username": "eve", "is_active": "maybe"})
    assert status == 400 and "is_active" in body
    status, body = await api("POST", "core/users/", json={"username": "e" * 151})
    assert status == 400 and "username" in body
    status, body = await api("POST", "core/users/", json={})
    assert status == 400 and body == {"username": ["This field is required."]}


async def test_nul_bytes_and_lone_surrogates_are_refused(
    api: API, client: Any, admin_headers: Any
) -> None:
    status, body = await api("POST", "core/users/", json={"username": "nul\u0000byte"})
    assert status == 400
    raw = b'{"username": "surrogate\\ud800"}'
    response = await client.post(
        "/api/v3/core/users/",
        data=raw,
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    assert response.status == 400
    status, body = await api("GET", "core/users/?search=%00")
    assert status == 400


async def test_dangling_group_reference_is_400_and_writes_nothing(api: API) -> None:
    missing = "7b3f1d4e-0000-4000-8000-000000000000"
    status, body = await api("POST", "core/users/", json={"username": "frank", "groups": [missing]})
    assert status == 400 and "groups" in body
    status, listing = await api("GET", "core/users/?username=frank")
    assert listing["pagination"]["count"] == 0


async def test_filters_search_ordering(api: API, make_user: Any, make_group: Any) -> None:
    group = await make_group("staff")
    await make_user("gina", email="gina@example.com", groups=[group["pk"]])
    await make_user("hank", is_active=False, path="users/contractors")
    status, body = await api("GET", "core/users/?groups_by_name=staff")
    assert [u["username"] for u in body["results"]] == ["gina"]
    status, body = await api("GET", "core/users/?is_active=false")
    assert [u["username"] for u in body["results"]] == ["hank"]
    status, body = await api("GET", "core/users/?path_startswith=users/con")
    assert [u["username"] for u in body["results"]] == ["hank"]
    status, body = await api("GET", "core/users/?search=GINA@")
    assert [u["username"] for u in body["results"]] == ["gina"]
    status, body = await api("GET", "core/users/?ordering=-username")
    assert [u["username"] for u in body["results"]] == ["hank", "gina", "akadmin"]
    status, body = await api("GET", "core/users/?is_active=perhaps")
    assert status == 400 and "is_active" in body


async def test_search_wildcards_are_literal(api: API, make_user: Any) -> None:
    await make_user("under_score")
    await make_user("underXscore")
    status, body = await api("GET", "core/users/?search=under_")
    assert [u["username"] for u in body["results"]] == ["under_score"]
    status, body = await api("GET", "core/users/?search=%25")
    assert body["results"] == []


async def test_pagination_shape_and_cap(api: API, make_user: Any) -> None:
    for i in range(5):
        await make_user(f"user{i}")
    status, body = await api("GET", "core/users/?page_size=2&page=2")
    assert status == 200
    assert body["pagination"] == {
        "next": 3,
        "previous": 1,
        "count": 6,
        "current": 2,
        "total_pages": 3,
        "start_index": 3,
        "end_index": 4,
    }
    status, body = await api("GET", "core/users/?page_size=1000")
    assert status == 200 and len(body["results"]) == 6
    status, body = await api("GET", "core/users/?page=99")
    assert status == 404
    status, body = await api("GET", "core/users/?page=abc")
    assert status == 400 and "page" in body


async def test_huge_integer_lookup_is_404_not_500(api: API) -> None:
    status, _ = await api("GET", f"core/users/{2**70}/")
    assert status == 404
    status, _ = await api("GET", "core/users/not-a-number/")
    assert status == 404


async def test_serialized_users_validate_against_the_wire_model(
    api: API, make_user: Any, make_group: Any
) -> None:
    from tessera.core import wire

    group = await make_group("validators", attributes={"k": [1, 2]})
    await make_user("vera", groups=[group["pk"]], attributes={"nested": {"a": None}})
    status, body = await api("GET", "core/users/")
    for user in body["results"]:
        wire.core.User.model_validate(user)
