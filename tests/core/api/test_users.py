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
    status, body = await api("GET", "core/users/?ordering=-username&type=internal")
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
    # `type=internal`: not the embedded outpost's service account, which every install has.
    status, body = await api("GET", "core/users/?page_size=2&page=2&type=internal")
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
    status, body = await api("GET", "core/users/?page_size=1000&type=internal")
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


async def test_computed_fields_are_authentiks(api: API, make_user: Any) -> None:
    """A new user carries what authentik's client requires: the password change date stamped
    at creation, last_updated, an avatar, and empty role lists (no roles exist)."""
    user = await make_user("ada", name="Ada Lovelace")
    assert user["password_change_date"] == user["date_joined"]
    assert user["last_updated"] == user["date_joined"]
    assert user["roles"] == [] and user["roles_obj"] == []
    assert user["avatar"].startswith("data:image/svg+xml;base64,")
    status, patched = await api("PATCH", f"core/users/{user['pk']}/", json={"name": "Ada King"})
    assert status == 200 and patched["last_updated"] > user["last_updated"]
    assert patched["password_change_date"] == user["password_change_date"]
    assert patched["avatar"] != user["avatar"]  # the initials follow the name
    status, _ = await api(
        "POST", f"core/users/{user['pk']}/set_password/", json={"password": "An0ther-secret"}
    )
    status, body = await api("GET", f"core/users/{user['pk']}/")
    assert body["password_change_date"] > user["password_change_date"]


async def test_last_login_is_stored_and_a_put_without_it_keeps_it(api: API, make_user: Any) -> None:
    user = await make_user("lars")
    when = "2026-01-02T03:04:05+00:00"
    status, body = await api("PATCH", f"core/users/{user['pk']}/", json={"last_login": when})
    assert status == 200 and body["last_login"] == "2026-01-02T03:04:05Z"
    status, body = await api("PUT", f"core/users/{user['pk']}/", json={"username": "lars"})
    assert status == 200 and body["last_login"] == "2026-01-02T03:04:05Z"
    status, body = await api("PATCH", f"core/users/{user['pk']}/", json={"last_login": None})
    assert status == 200 and body["last_login"] is None


async def test_roles_other_than_none_are_400_and_write_nothing(api: API) -> None:
    role = "7b3f1d4e-0000-4000-8000-000000000001"
    status, body = await api("POST", "core/users/", json={"username": "rolf", "roles": [role]})
    assert status == 400 and "roles" in body
    status, listing = await api("GET", "core/users/?username=rolf")
    assert listing["pagination"]["count"] == 0
    status, body = await api("POST", "core/users/", json={"username": "rolf", "roles": []})
    assert status == 201 and body["roles"] == []


async def test_me_as_a_user_who_is_not_a_superuser(
    api: API, client: Any, make_user: Any, make_group: Any, make_token: Any
) -> None:
    """`/core/users/me/` answers authentik's `SessionUser`: the user as `UserSelf`, groups as
    objects, interface settings merged from the groups' (ancestors first) and the user's."""
    from authentik_client.models import SessionUser

    base = await make_group("base", attributes={"settings": {"theme": "dark", "locale": "en"}})
    team = await make_group("team", parents=[base["pk"]], attributes={"settings": {"locale": "fr"}})
    nina = await make_user(
        "nina", name="Nina Simone", groups=[team["pk"]], attributes={"settings": {"x": 1}}
    )
    key = await make_token("nina")
    response = await client.get(
        "/api/v3/core/users/me/", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status == 200
    body = await response.json()
    SessionUser.from_dict(body)  # authentik's client parses it
    me = body["user"]
    assert me["pk"] == nina["pk"] and me["username"] == "nina" and me["is_superuser"] is False
    assert me["groups"] == [{"name": "team", "pk": team["pk"]}]
    assert me["is_current"] is True and me["roles"] == [] and me["system_permissions"] == []
    assert me["settings"] == {"theme": "dark", "locale": "fr", "x": 1}
    assert me["avatar"] == nina["avatar"] and me["uid"] == nina["uid"]
    assert body["users"] == [me] and body.get("original") is None


async def test_me_as_the_admin_parses_with_authentiks_client(api: API) -> None:
    from authentik_client.models import SessionUser

    status, body = await api("GET", "core/users/me/")
    parsed = SessionUser.from_dict(body)
    assert parsed is not None and parsed.user.is_superuser is True
    assert [g.name for g in parsed.user.groups] == ["authentik Admins"]


async def test_listing_leaves_groups_and_roles_out_when_asked(
    api: API, make_user: Any, make_group: Any
) -> None:
    """authentik's `include_groups` and `include_roles`: on by default; `false` sends the
    objects as null (the pks stay); anything but a boolean is a 400 naming the parameter."""
    from authentik_client import PaginatedUserList

    group = await make_group("listed")
    await make_user("grouped", groups=[group["pk"]])
    _, full = await api("GET", "core/users/?username=grouped")
    (user,) = full["results"]
    assert [g["name"] for g in user["groups_obj"]] == ["listed"] and user["roles_obj"] == []
    _, bare = await api(
        "GET", "core/users/?username=grouped&include_groups=false&include_roles=false"
    )
    (user,) = bare["results"]
    assert user["groups_obj"] is None and user["roles_obj"] is None
    assert user["groups"] == [group["pk"]]
    assert PaginatedUserList.from_dict(bare) is not None  # authentik's client takes the nulls
    _, one = await api("GET", "core/users/?username=grouped&include_roles=false")
    assert one["results"][0]["groups_obj"] and one["results"][0]["roles_obj"] is None
    status, problem = await api("GET", "core/users/?include_groups=maybe")
    assert status == 400 and "include_groups" in problem, problem
