"""`/api/v3/core/groups/`: nesting through several parents, superuser inheritance, membership
actions, cycles, and the computed lists (`children`, `*_obj`)."""

from __future__ import annotations

from typing import Any

API = Any


async def test_nested_groups_and_superuser_inheritance(
    api: API, make_user: Any, make_group: Any
) -> None:
    admins = await make_group("admins", is_superuser=True)
    ops = await make_group("ops", parents=[admins["pk"]])
    user = await make_user("ivy", groups=[ops["pk"]])
    assert user["is_superuser"] is True
    status, body = await api("GET", f"core/groups/{ops['pk']}/")
    assert status == 200 and body["parents"] == [admins["pk"]] and body["children"] == []
    assert body["users"] == [user["pk"]]
    assert [u["username"] for u in body["users_obj"]] == ["ivy"]
    status, body = await api("GET", f"core/groups/{admins['pk']}/")
    assert body["children"] == [ops["pk"]] and body["parents"] == []


async def test_superuser_comes_through_any_of_several_parents(
    api: API, make_user: Any, make_group: Any
) -> None:
    staff = await make_group("staff")
    admins = await make_group("admins", is_superuser=True)
    ops = await make_group("ops", parents=[staff["pk"], admins["pk"]])
    oncall = await make_group("oncall", parents=[ops["pk"]])
    user = await make_user("kim", groups=[oncall["pk"]])
    assert user["is_superuser"] is True
    status, body = await api("GET", f"core/groups/{ops['pk']}/?include_parents=true")
    assert sorted(body["parents"]) == sorted([staff["pk"], admins["pk"]])
    assert sorted(p["name"] for p in body["parents_obj"]) == ["admins", "staff"]
    assert all(p["group_uuid"] == p["pk"] for p in body["parents_obj"])
    # Dropping the superuser parent drops the inherited flag.
    status, _ = await api("PATCH", f"core/groups/{ops['pk']}/", json={"parents": [staff["pk"]]})
    assert status == 200
    status, body = await api("GET", f"core/users/{user['pk']}/")
    assert body["is_superuser"] is False


async def test_children_are_listed_truthfully(api: API, make_group: Any) -> None:
    top = await make_group("top")
    left = await make_group("left", parents=[top["pk"]])
    right = await make_group("right", parents=[top["pk"]])
    both = await make_group("both", parents=[left["pk"], right["pk"]])
    status, body = await api("GET", f"core/groups/{top['pk']}/?include_children=true")
    assert sorted(body["children"]) == sorted([left["pk"], right["pk"]])
    assert sorted(c["name"] for c in body["children_obj"]) == ["left", "right"]
    status, body = await api("GET", "core/groups/?search=left")
    (found,) = body["results"]
    assert found["children"] == [both["pk"]] and found["parents"] == [top["pk"]]
    # Nested lists not asked for are null, as in authentik; the id lists are always there.
    assert found["children_obj"] is None and found["parents_obj"] is None
    assert found["roles"] == [] and found["roles_obj"] == []
    assert found["inherited_roles_obj"] is None
    status, body = await api("GET", "core/groups/?search=left&include_users=false")
    assert body["results"][0]["users_obj"] is None


async def test_cycle_in_parents_is_refused(api: API, make_group: Any) -> None:
    a = await make_group("a")
    b = await make_group("b", parents=[a["pk"]])
    c = await make_group("c", parents=[b["pk"]])
    side = await make_group("side")
    status, body = await api(
        "PATCH", f"core/groups/{a['pk']}/", json={"parents": [side["pk"], c["pk"]]}
    )
    assert status == 400 and "parents" in body
    status, body = await api("PATCH", f"core/groups/{a['pk']}/", json={"parents": [a["pk"]]})
    assert status == 400 and "parents" in body
    status, body = await api("GET", f"core/groups/{a['pk']}/")
    assert body["parents"] == []
    # A diamond is no cycle.
    status, body = await api(
        "PATCH", f"core/groups/{c['pk']}/", json={"parents": [b["pk"], a["pk"]]}
    )
    assert status == 200 and sorted(body["parents"]) == sorted([a["pk"], b["pk"]])


async def test_dangling_parent_users_and_roles_are_400(api: API) -> None:
    missing = "00000000-0000-4000-8000-000000000001"
    status, body = await api("POST", "core/groups/", json={"name": "x", "parents": [missing]})
    assert status == 400 and "parents" in body
    status, body = await api("POST", "core/groups/", json={"name": "x", "users": [999999]})
    assert status == 400 and "users" in body
    status, body = await api("POST", "core/groups/", json={"name": "x", "parents": ["nope"]})
    assert status == 400 and list(body) == ["parents.0"]
    # No roles exist yet: naming one is naming an object that does not exist.
    status, body = await api("POST", "core/groups/", json={"name": "x", "roles": [missing]})
    assert status == 400 and "roles" in body
    status, body = await api("GET", "core/groups/?search=x")
    assert body["results"] == []
    status, body = await api("POST", "core/groups/", json={"name": "x", "roles": []})
    assert status == 201 and body["roles"] == []


async def test_duplicate_name_is_400(api: API, make_group: Any) -> None:
    await make_group("dup")
    status, body = await api("POST", "core/groups/", json={"name": "dup"})
    assert status == 400 and "name" in body


async def test_add_and_remove_user(api: API, make_user: Any, make_group: Any) -> None:
    group = await make_group("team")
    user = await make_user("jack")
    status, _ = await api("POST", f"core/groups/{group['pk']}/add_user/", json={"pk": user["pk"]})
    assert status == 204
    status, body = await api("GET", f"core/users/{user['pk']}/")
    assert body["groups"] == [group["pk"]]
    status, body = await api("GET", "core/groups/?members_by_username=jack")
    assert [g["name"] for g in body["results"]] == ["team"]
    status, _ = await api(
        "POST", f"core/groups/{group['pk']}/remove_user/", json={"pk": user["pk"]}
    )
    assert status == 204
    status, body = await api("GET", f"core/users/{user['pk']}/")
    assert body["groups"] == []
    status, body = await api("POST", f"core/groups/{group['pk']}/add_user/", json={"pk": 424242})
    assert status == 400 and "pk" in body


async def test_deleting_a_parent_detaches_its_children(api: API, make_group: Any) -> None:
    parent = await make_group("parent")
    other = await make_group("other")
    child = await make_group("child", parents=[parent["pk"], other["pk"]])
    status, _ = await api("DELETE", f"core/groups/{parent['pk']}/")
    assert status == 204
    status, body = await api("GET", f"core/groups/{child['pk']}/")
    assert status == 200 and body["parents"] == [other["pk"]]
